"""Training decisions without training: verdicts, best epochs, output scales."""

from __future__ import annotations

import math

import numpy as np

from tuner.data import Scaler, output_scale
from tuner.tracking import RUN_STATUS
from tuner.training import best_of, verdict


def test_verdict_catches_nan_and_inf_in_loss_or_objective() -> None:
    assert verdict({"loss": 0.1, "val_loss": 0.2}, "val_loss") is None
    assert verdict({"loss": math.nan, "val_loss": 0.2}, "val_loss") == "diverged"
    assert verdict({"loss": 0.1, "val_loss": math.inf}, "val_loss") == "diverged"
    assert verdict({"loss": 0.1}, "val_loss") == "diverged", "a missing objective is not a result"


def test_best_of_follows_the_direction() -> None:
    history = [{"v": 3.0}, {"v": 1.0}, {"v": 2.0}, {"v": 1.0}]
    assert best_of(history, "v", "minimize") == (1.0, 1)
    assert best_of(history, "v", "maximize") == (3.0, 0)


def test_output_scale_is_step_major() -> None:
    scaler = Scaler("standard", center=np.zeros(3), scale=np.array([1.0, 2.0, 3.0]))
    assert output_scale(scaler, [2, 1], horizon=2).tolist() == [3.0, 2.0, 3.0, 2.0]


def test_every_finished_state_maps_to_its_own_terminal_mlflow_status() -> None:
    from mlflow.entities import RunStatus
    from optuna.trial import TrialState

    assert set(RUN_STATUS) == {s.name for s in TrialState if s.is_finished()}
    assert len(set(RUN_STATUS.values())) == len(RUN_STATUS), "one-to-one"
    statuses = [RunStatus.from_string(v) for v in RUN_STATUS.values()]
    assert all(RunStatus.is_terminated(s) for s in statuses)
