"""A trial's own faults, through a real worker on the embedded store: the trial ends FAIL with
its reason, the worker goes on, and the study invariant holds."""

from __future__ import annotations

import optuna
import pytest
from conftest import CO2_OPTIONS
from mlflow import MlflowClient
from optuna.trial import TrialState

from tuner import training
from tuner.check import check
from tuner.cli import main
from tuner.storage import embedded
from tuner.tracking import Tracker

pytestmark = pytest.mark.slow

SPACE = """
task: forecast
epochs: 2
seed: 5
sampler: random
pruner: none
params:
  units: {low: 4, high: 8}
  window: {low: 4, high: 8}
  batch_size: 64
"""


def test_out_of_memory_fails_the_trial_and_the_worker_goes_on(space_file, co2_csv) -> None:
    """Scenario 10: the framework's own out-of-memory error, raised inside a real fit."""
    import tensorflow as tf

    real, calls = training.train, []

    def train(*args, report, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second trial runs out of memory after its first epoch

            def report(epoch, logs):
                raise tf.errors.ResourceExhaustedError(
                    None, None, "OOM when allocating tensor with shape[64,8,32] on GPU:0"
                )

        return real(*args, report=report, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(training, "train", train)
    try:
        space = space_file(SPACE)
        argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s"]
        assert main([*argv, "--trials", "3"]) == 0
        worker = ["worker", "--data", str(co2_csv), "--trials-per-process", "0", "-q"]
        assert main(worker) == 0
    finally:
        mp.undo()
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    states = [t.state for t in study.get_trials()]
    assert states == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    failed = study.trials[1]
    reason = failed.user_attrs["reason"]
    assert reason.startswith("out of memory: ResourceExhaustedError: OOM when allocating"), reason
    run = MlflowClient(tracking).get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["tuner.reason"] == reason
    report = check(study, Tracker(tracking))
    assert report.ok, report.problems
