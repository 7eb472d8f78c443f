"""A trial's outcome decided without a store, the failure streak derived from the study's records,
and the two records the stores hold (the study's spec, the model's card)."""

from __future__ import annotations

import datetime

import optuna
import pytest
from optuna.trial import TrialState

from tuner import outcome, records
from tuner.errors import FatalError, InputError
from tuner.records import ModelCard, StudySpec
from tuner.storage import make_storage
from tuner.training import TrainResult
from tuner.worker import Worker


def test_a_training_s_end_becomes_a_state_value_and_reason() -> None:
    done = outcome.of_training(TrainResult(best_value=0.5, best_epoch=2), {"epochs_run": 3.0})
    assert (done.state, done.value, done.reason) == (TrialState.COMPLETE, 0.5, None)
    pruned = outcome.of_training(TrainResult(stopped="pruned", stopped_epoch=4), {})
    assert (pruned.state, pruned.reason) == (TrialState.PRUNED, "pruned at epoch 4")
    nan = outcome.of_training(TrainResult(stopped="diverged", stopped_epoch=1), {})
    assert (nan.state, nan.reason, nan.error) == (
        TrialState.FAIL,
        "loss not finite at epoch 1",
        None,
    ), "a diverged trial is a bad configuration, not an error of the worker"
    oom = outcome.of_error(MemoryError())
    assert oom.state == TrialState.FAIL and oom.error == "MemoryError"
    assert oom.reason.startswith("out of memory: MemoryError")
    assert oom.attrs() == {records.REASON: oom.reason, records.ERROR: "MemoryError"}


def test_better_follows_the_direction_and_seeds_follow_the_original() -> None:
    assert outcome.is_better(0.1, None, "minimize")
    assert outcome.is_better(0.1, 0.2, "minimize") and not outcome.is_better(0.3, 0.2, "minimize")
    assert outcome.is_better(0.3, 0.2, "maximize")
    assert outcome.trial_seed(7, 5, None) == 12
    assert outcome.trial_seed(7, 9, retry_of=5) == 12, "a retry trains as its original did"


def _trial(number: int, state: TrialState, worker: str, error: bool = False):
    """A finished trial of ``worker``, one minute after the previous number."""
    attrs = {records.WORKER: worker, **({records.ERROR: "RuntimeError"} if error else {})}
    start = datetime.datetime(2026, 1, 1) + datetime.timedelta(minutes=number)
    return optuna.trial.FrozenTrial(
        number=number,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=start + datetime.timedelta(seconds=30),
        params={},
        distributions={},
        user_attrs=attrs,
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def test_the_failure_streak_counts_this_worker_s_own_errors_in_a_row() -> None:
    F, C = TrialState.FAIL, TrialState.COMPLETE
    trials = [
        _trial(0, F, "a", error=True),
        _trial(1, C, "a"),  # a success ends a streak
        _trial(2, F, "a", error=True),
        _trial(3, F, "b", error=True),  # another worker's errors are its own
        _trial(4, F, "a", error=True),
        _trial(5, C, "b"),
        _trial(6, F, "a", error=True),
    ]
    assert outcome.failure_streak(trials, "a") == 3
    assert outcome.failure_streak(trials, "b") == 0
    interrupted = [*trials, _trial(7, F, "a")]  # FAIL without an error: a signal, not a bug
    assert outcome.failure_streak(interrupted, "a") == 0
    assert outcome.failure_streak(trials[:0], "a") == 0


class _Run:
    run_id = "r"

    def end(self, *args, **kwargs) -> list[str]:
        return []


@pytest.mark.parametrize("split", [5, 3])
def test_five_errors_in_a_row_stop_the_worker_across_its_trial_processes(tmp_path, split) -> None:
    """The streak is read from the study: a trial process that replaces another (same worker
    name) goes on counting where its predecessor stopped (the exit-code protocol is gone)."""
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = make_storage(url, heartbeat=False)
    study = optuna.create_study(storage=storage, study_name="s")
    study.set_user_attr(records.TARGET, 100)

    def process() -> Worker:
        w = Worker(study, storage, url, None, None, None, None, name="h:1")  # type: ignore[arg-type]

        def opened(trial):  # as Worker._open records it, without sampling or MLflow
            trial.set_user_attr(records.WORKER, w.name)
            return _Run(), None

        w._open = opened  # type: ignore[method-assign]
        w._train = lambda trial, config, run: outcome.of_error(RuntimeError("boom"))  # type: ignore[method-assign]
        return w

    first = process()
    if split < 5:
        assert first.run(max_trials=split) == split  # then its process is replaced
    with pytest.raises(FatalError, match="5 trials in a row failed; the last: RuntimeError: boom"):
        process().run(max_trials=10)  # bounded: a broken streak fails, not hangs
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 5 and all(t.user_attrs[records.WORKER] == "h:1" for t in failed)


def test_the_study_spec_reads_what_an_older_or_newer_version_stored() -> None:
    spec = StudySpec(space={"params": {}}, data={"file": "d.csv"}, fingerprint="sha256:aa")
    assert StudySpec.from_dict(spec.to_dict()) == spec
    newer = {**spec.to_dict(), "a_later_field": 1}
    assert StudySpec.from_dict(newer) == spec
    older = {"space": {"params": {}}, "data": {"file": "d.csv"}, "fingerprint": "sha256:aa"}
    assert StudySpec.from_dict(older).max_epochs is None


def test_the_model_card_round_trips_and_names_what_it_lacks() -> None:
    scaler = {"kind": "standard", "center": [0.0, 1.0], "scale": [1.0, 2.0]}
    card = ModelCard(
        "forecast", 24, scaler, {"file": "d.csv"}, columns=["a", "b"], target_index=[1]
    )
    again = ModelCard.from_json(card.to_json(), "runs:/x/model")
    assert again == card and again.features == 2
    classify = ModelCard("classify", 8, scaler, {}, classes=["no", "yes"])
    assert "columns" not in classify.to_json() and classify.features == 2
    assert ModelCard.from_json(classify.to_json(), "m") == classify
    with pytest.raises(InputError, match=r"^runs:/x/model: cannot read preprocess.json"):
        ModelCard.from_json('{"task": "forecast"}', "runs:/x/model")
    with pytest.raises(InputError, match="cannot read preprocess.json"):
        ModelCard.from_json("not json", "m")
