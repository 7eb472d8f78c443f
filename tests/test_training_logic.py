"""Training decisions without training: verdicts, best epochs, output scales."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tuner.data import Scaler, output_scale
from tuner.tracking import RUN_STATUS
from tuner.training import Start, best_of, verdict


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


# -- a residual model against its start (training.Start) ---------------------------------------


def test_window_losses_average_to_the_objective() -> None:
    from tuner.data import Targets
    from tuner.training import window_losses

    rng = np.random.default_rng(0)
    err = rng.normal(size=(50, 4))  # scaled units: 2 steps x 2 targets, step-major
    scale = np.array([2.0, 10.0, 2.0, 10.0])
    targets = Targets(["a b", "c"], units=np.array([4.0, 20.0]))
    mae = window_losses(err, "val_mae_original", scale, "mse")
    assert mae is not None and math.isclose(mae.mean(), np.abs(err * scale).mean())
    rmse = window_losses(err, "val_rmse_original", scale, "mse")
    assert rmse is not None and math.isclose(
        math.sqrt(rmse.mean()), np.sqrt(((err * scale) ** 2).mean())
    )
    one = window_losses(err, "val_mae_c", scale, "mse", targets)
    assert one is not None and math.isclose(one.mean(), np.abs(err[:, [1, 3]] * 10).mean())
    nmae = window_losses(err, "val_nmae", scale, "mse", targets)
    per = np.abs(err * scale).reshape(50, 2, 2).mean(axis=(0, 1)) / [4.0, 20.0]
    assert nmae is not None and math.isclose(nmae.mean(), per.mean())
    huber = window_losses(np.array([[0.5, -3.0]]), "val_loss", scale[:2], "huber")
    assert huber is not None and huber.tolist() == [(0.125 + 2.5) / 2]
    assert window_losses(err, "val_loss", scale, "mae") is not None
    assert window_losses(err, "val_accuracy", scale, "mse") is None


def test_improvement_p_by_hand_and_its_edges() -> None:
    from scipy import stats

    from tuner.training import improvement_p

    # n = 4: lag 1; differences -1, -.5, -.5, -1 (mean -.75): variance .0625 at lag 0, -.015625
    # at lag 1 (Bartlett weight 1/2): .046875; t = -.75 / sqrt(.046875 / 4) on 3 df
    expected = stats.t.cdf(-0.75 / math.sqrt(0.046875 / 4), df=3)
    trained, start = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5, 3.5, 5.0])
    assert math.isclose(improvement_p(trained, start, 1), expected, rel_tol=1e-12)
    rng = np.random.default_rng(1)
    start = rng.gamma(2.0, size=200)
    assert improvement_p(start, start, 1) == 1.0, "no difference: no gain"
    assert improvement_p(start - 0.1, start, 1) == 0.0, "better on every window by the same"
    assert improvement_p(start + 0.1, start, 1) == 1.0
    assert improvement_p(start[:1] - 1, start[:1], 1) == 1.0, "one window proves nothing"
    # independent differences: about the paired t-test's p-value
    d = rng.normal(-0.05, 0.5, size=200)
    paired = stats.ttest_rel(start + d, start, alternative="less").pvalue
    assert 0.5 * paired < improvement_p(start + d, start, 1) < 2 * paired
    # the same differences, each persisting over 4 neighbouring windows: less evidence than
    # as many independent ones, and a 4-step horizon's overlap counts them so
    runs = np.repeat(rng.normal(-0.1, 0.5, size=50), 4)
    assert improvement_p(start + runs, start, 1) > improvement_p(
        start + rng.permutation(runs), start, 1
    )
    assert improvement_p(start + runs, start, 8) > improvement_p(start + runs, start, 1)


class ScriptedModel:
    """Keras' side of a Start: fixed predictions, weights to get and set."""

    def __init__(self, pred: np.ndarray, weights: list[np.ndarray]) -> None:
        self.pred, self.weights = pred, weights

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        return self.pred[: len(x)]

    def get_weights(self) -> list[np.ndarray]:
        return self.weights

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [w.copy() for w in weights]


def _start(y: np.ndarray, start_pred: np.ndarray) -> tuple[Start, ScriptedModel]:
    model = ScriptedModel(start_pred, [np.zeros(2)])
    start = Start(
        [np.zeros(2)],
        {"val_loss": 0.5, "val_mae_original": 1.0},
        np.zeros(0),
        np.zeros((len(y), 3, 1)),
        y,
        "val_mae_original",
        np.ones(1),
        "mse",
        None,
        1,
    )
    losses = start.window_losses(model)
    assert losses is not None
    start.losses = losses
    return start, model


def test_a_residual_model_goes_back_to_its_start_unless_it_beats_it_beyond_noise() -> None:
    from tuner.training import TrainResult

    rng = np.random.default_rng(2)
    y = rng.normal(size=(300, 1))
    start, model = _start(y, y + rng.normal(0, 1.0, size=y.shape))
    # trained: a little better on average, not beyond noise
    model.pred, model.weights = y + rng.normal(0, 0.98, size=y.shape), [np.ones(2)]
    result = TrainResult(best_value=0.78, best_epoch=3)
    start.judge(model, result)
    assert result.start_p is not None and result.start_p >= 0.05
    assert result.start_logs == {"val_loss": 0.5, "val_mae_original": 1.0}
    assert result.best_value == 1.0 and model.weights[0].tolist() == [0.0, 0.0]
    # trained: half the error everywhere: kept
    model.pred, model.weights = y + rng.normal(0, 0.5, size=y.shape), [np.ones(2)]
    kept = TrainResult(best_value=0.4, best_epoch=3)
    start.judge(model, kept)
    assert kept.start_p is not None and kept.start_p < 0.05
    assert (
        kept.start_logs is None and kept.best_value == 0.4 and model.weights[0].tolist() == [1, 1]
    )


def test_a_model_back_at_its_start_reports_the_start_s_scores() -> None:
    from tuner.fitting import Fit
    from tuner.training import TrainResult

    history = [{"val_mae_original": 0.9, "loss": 1.0}, {"val_mae_original": 0.8, "loss": 0.9}]
    back = TrainResult(history, best_value=1.0, best_epoch=1, start_p=0.3)
    back.start_logs = {"val_mae_original": 1.0, "val_loss": 0.5}
    model = type("M", (), {"count_params": lambda self: 7})()
    no_arrays: Any = None  # summary() reads neither the data nor the model's weights
    out = Fit(back, model, no_arrays).summary()
    assert out["back_to_start"] == 1.0 and out["start_pvalue"] == 0.3 and "best_epoch" not in out
    assert out["best_val_mae_original"] == 1.0 and out["best_val_loss"] == 0.5
    kept = Fit(TrainResult(history, best_value=0.8, best_epoch=1, start_p=0.01), model, no_arrays)
    out = kept.summary()
    assert "back_to_start" not in out and out["best_epoch"] == 1.0
    assert out["best_val_mae_original"] == 0.8 and out["start_pvalue"] == 0.01


def test_a_study_spends_its_keep_level_over_the_trials_it_judges() -> None:
    from tuner.config import KEEP_LEVEL
    from tuner.training import keep_level

    levels = [keep_level(k) for k in range(1, 10_001)]
    assert levels == sorted(levels, reverse=True)
    assert sum(levels) < KEEP_LEVEL  # however many: below it in all
    assert sum(levels) > 0.9999 * KEEP_LEVEL  # and none of it left unspent
    with pytest.raises(ValueError, match="judged counts from 1"):
        keep_level(0)


def test_a_start_judges_at_its_own_level() -> None:
    from tuner.training import TrainResult

    rng = np.random.default_rng(2)
    y = rng.normal(size=(300, 1))
    start, model = _start(y, y + rng.normal(0, 1.0, size=y.shape))
    model.pred, model.weights = y + rng.normal(0, 0.85, size=y.shape), [np.ones(2)]
    at_05 = TrainResult(best_value=0.7, best_epoch=3)
    start.judge(model, at_05)
    assert at_05.start_p is not None and 0.001 < at_05.start_p < 0.05, at_05.start_p
    assert at_05.start_logs is None, "kept at 0.05"
    start.level = at_05.start_p / 2  # a later trial of the study: it needs more evidence
    later = TrainResult(best_value=0.7, best_epoch=3)
    start.judge(model, later)
    assert later.start_p == at_05.start_p and later.start_logs is not None
    assert later.best_value == 1.0 and model.weights[0].tolist() == [0.0, 0.0]
