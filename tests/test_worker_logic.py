"""The worker's decisions without training: claiming up to the target, signals held during
critical sections, a trial taken over by another worker."""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from tuner import records
from tuner import study as studies
from tuner.liveness import TakenOver
from tuner.liveness import frozen as _frozen
from tuner.liveness import requeue as _requeue
from tuner.outcome import same_value
from tuner.signals import Interrupted, StopRequest
from tuner.storage import make_storage
from tuner.worker import Worker


@pytest.fixture
def worker(storage_url):
    url = storage_url
    storage = make_storage(url, heartbeat=False)
    study = optuna.create_study(storage=storage, study_name="s")
    study.set_user_attr(records.TARGET, 2)
    return Worker(study, storage, url, space=None, spec=None, dataset=None, tracker=None)  # type: ignore[arg-type]


def test_claims_stop_at_the_target_but_take_requeued_trials(worker) -> None:
    first, second = worker._claim(), worker._claim()
    assert (first.number, second.number) == (0, 1)
    assert worker._claim() is None, "target reached: no third trial"
    worker.study.tell(first, state=TrialState.FAIL)
    third = worker._claim()
    assert third is not None and third.number == 2, "a failed trial is replaced"
    worker.study.tell(second, 1.0)
    worker.study.tell(third, 1.0)
    _requeue(worker.study, 2)  # e.g. after SIGTERM: the same parameters, WAITING
    requeued = worker._claim()
    assert requeued is not None and requeued.number == 3
    assert _frozen(worker.study, 3).system_attrs["failed_trial"] == 2
    assert worker._claim() is None


def test_a_trial_failed_by_another_worker_is_taken_over(worker) -> None:
    trial = worker._claim()
    worker.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # found stale
    with pytest.raises(TakenOver):
        worker._tell(trial, TrialState.COMPLETE, 1.0, {"metric": 1.0})
    ours = worker._claim()
    ours.set_user_attr("metric", 1.0)  # our own earlier try got through but lost its answer
    worker.study.tell(ours, 2.0)
    worker._tell(ours, TrialState.COMPLETE, 2.0, {"metric": 1.0})  # nothing to redo, no error


def test_a_nan_attribute_does_not_make_our_own_trial_look_taken_over(worker) -> None:
    """Issue 10: NaN != NaN after the JSON round trip; the finished trial was closed as KILLED."""
    trial = worker._claim()
    attrs = {"test_mae": float("nan"), "curve": (1.0, float("nan")), "n": 3}
    worker._tell(trial, TrialState.COMPLETE, 2.0, attrs)
    worker._tell(trial, TrialState.COMPLETE, 2.0, attrs)  # a retry after a lost answer
    assert _frozen(worker.study, trial.number).state == TrialState.COMPLETE
    assert same_value([1.0, float("nan")], (1.0, float("nan")))
    assert not same_value(float("nan"), 1.0) and not same_value({"a": 1}, {"a": 2})


def test_signals_wait_for_the_end_of_a_critical_section() -> None:
    steps = []
    stop = StopRequest()
    with stop.handling(), pytest.raises(Interrupted) as info:
        with stop.held():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("finished the critical section")
        steps.append("not reached")
    assert steps == ["finished the critical section"]
    assert info.value.signame == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "previous handler restored"


def test_a_used_up_grid_stops_the_worker_after_recording_the_trial(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/grid.db"
    storage = make_storage(url, heartbeat=False)
    study = optuna.create_study(
        storage=storage, sampler=optuna.samplers.GridSampler({"units": [8]}), study_name="g"
    )
    study.set_user_attr(records.TARGET, 5)
    worker = Worker(study, storage, url, space=None, spec=None, dataset=None, tracker=None)  # type: ignore[arg-type]
    trial = worker._claim()
    trial.suggest_categorical("units", [8])
    worker._tell(trial, TrialState.COMPLETE, 1.0, {"m": 1.0})
    assert worker.exhausted
    assert _frozen(study, 0).state == TrialState.COMPLETE


class _Run:
    """Stands in for a trial's MLflow run: records how it was closed."""

    run_id = "run-0"

    def __init__(self) -> None:
        self.closed: list[tuple[str, str | None]] = []

    def end(self, state, metrics, reason=None, status=None, *, seconds=None) -> list[str]:
        self.closed.append((state, status))
        return []


def test_a_signal_while_claiming_fails_and_requeues_the_claimed_trial(worker, monkeypatch) -> None:
    runs = _Run()
    worker.study.set_user_attr(records.EXPERIMENT, "1")
    worker.study.set_user_attr(records.PARENT_RUN, "p")

    def open_and_get_signalled(trial):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives inside the claim's critical section
        return runs, None

    monkeypatch.setattr(worker, "_open", open_and_get_signalled)
    monkeypatch.setattr("tuner.worker._free_memory", lambda: None)
    with worker.stop.handling(), pytest.raises(Interrupted):
        worker.run()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["reason"] == "interrupted by SIGTERM"
    assert runs.closed == [("FAIL", "KILLED")]


def test_a_trial_that_cannot_be_opened_fails_and_its_heartbeat_stops(tmp_path, monkeypatch) -> None:
    """Issue 10: the heartbeat went on beating when opening raised, so the trial stayed RUNNING
    and never went stale."""
    import threading

    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = make_storage(url)  # with heartbeats
    study = optuna.create_study(storage=storage, study_name="s")
    study.set_user_attr(records.TARGET, 1)
    w = Worker(study, storage, url, space=None, spec=None, dataset=None, tracker=None)  # type: ignore[arg-type]

    def broken(trial):
        raise RuntimeError("sampler exploded at postgresql://u:secret@db/x")

    monkeypatch.setattr(w, "_open", broken)
    with pytest.raises(RuntimeError):
        w.run()
    assert not [t for t in threading.enumerate() if t.name == "tuner-heartbeat"]
    [trial] = study.get_trials()
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["reason"]
    assert reason.startswith("could not start: RuntimeError: sampler exploded"), reason
    assert "secret" not in reason


def test_error_text_is_masked_wherever_it_is_shown() -> None:
    """Issue 10: a password inside a driver's error reached the terminal in three places."""
    from tuner.errors import brief
    from tuner.outcome import error_text as _trial_error

    e = ValueError('cannot connect to "postgresql+psycopg://tuner:s3cr/t:x@db:5432/optuna"\nmore')
    assert brief(e) == 'cannot connect to "postgresql+psycopg://tuner:***@db:5432/optuna"'
    assert "s3cr" not in _trial_error(e)
    libpq = brief(ValueError("dsn host=db password=hunter2 user=u?password=x"))
    assert libpq == "dsn host=db password=*** user=u?password=***", libpq
    assert brief(KeyError()) == "KeyError"


def test_an_interrupted_trial_whose_retry_was_lost_is_retried_by_the_next_claim(worker) -> None:
    """Issue 10: killed between recording FAIL and queueing the retry, a trial's retry was lost
    and a new trial with new parameters took its place in the target."""
    INTERRUPTED_ATTR = records.INTERRUPTED

    first = worker._claim()
    first.set_user_attr(INTERRUPTED_ATTR, first.number)
    worker.study.tell(first, state=TrialState.FAIL)  # ... and the worker died here
    retry = worker._claim()
    assert retry is not None
    frozen = _frozen(worker.study, retry.number)
    assert frozen.system_attrs["failed_trial"] == first.number, "the lost retry, not a new trial"
    worker.study.tell(retry, state=TrialState.FAIL)  # the retry fails for its own reason:
    assert INTERRUPTED_ATTR not in frozen.user_attrs  # a retry starts bare: no mark of its own
    third = worker._claim()
    assert _frozen(worker.study, third.number).system_attrs.get("failed_trial") is None


def test_queued_trials_a_spent_budget_can_never_run_are_failed_with_the_reason(worker) -> None:
    """Issue 11: a budget spent before the textbook starts ran left them WAITING for good."""
    from tuner.records import StudySpec
    from tuner.space import parse_space

    worker.space = parse_space({"epochs": 5}, source="s.yaml")
    worker.spec = StudySpec(space={}, data={}, fingerprint="-")
    worker.study.set_user_attr(records.BUDGET, 3)
    worker.study.set_user_attr(records.TARGET, 10)
    for units in (8, 16):
        worker.study.enqueue_trial({"units": units})
    first = worker._claim()
    assert first is not None and worker.reserved == 3
    first.set_user_attr(records.EPOCHS_RUN, 3)
    worker.study.tell(first, 1.0)
    assert worker._claim() is None, "the budget is spent"
    states = {t.number: t.state for t in worker.study.get_trials()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL}
    assert _frozen(worker.study, 1).user_attrs["reason"] == records.BUDGET_SPENT_REASON


def test_the_worker_marks_itself_alive_for_a_liveness_probe(worker, tmp_path, monkeypatch) -> None:
    """Kubernetes restarts a worker whose main loop stopped: it touches $TUNER_ALIVE_FILE at
    every claim and epoch (deploy/k8s/workers.yaml's probe reads its age)."""
    from tuner.liveness import ALIVE_ENV

    alive = tmp_path / "alive"
    monkeypatch.setenv(ALIVE_ENV, str(alive))
    worker.study.set_user_attr(records.TARGET, 0)  # nothing to run: one pass of the loop
    assert worker.run() == 0
    assert alive.exists()


def test_a_budget_reservation_is_on_the_trial_before_the_claim_lock_is_released(
    worker, monkeypatch
) -> None:
    """Another worker takes the lock the moment it is released: the claimed trial's reserved
    epochs must already count against the budget, or both reserve the last epochs."""
    import contextlib

    from tuner import liveness
    from tuner.records import StudySpec
    from tuner.space import parse_space

    worker.space = parse_space({"epochs": 5}, source="s.yaml")
    worker.spec = StudySpec(space={}, data={}, fingerprint="-")
    worker.study.set_user_attr(records.BUDGET, 8)
    seen_at_release: list[int] = []
    real_lock = liveness.claim_lock

    @contextlib.contextmanager
    def watched(*args):
        with real_lock(*args):
            yield
            seen_at_release.append(studies.budget_left(worker.study))

    monkeypatch.setattr(liveness, "claim_lock", watched)
    first = worker._claim()
    assert first is not None and worker.reserved == 5
    assert seen_at_release == [3], "the 5 epochs were reserved while the lock was held"


def test_queued_trials_wait_while_a_running_trial_may_give_epochs_back(worker) -> None:
    """A running trial's reservation can come back (pruned, interrupted): the queued trials are
    failed only once nothing runs and the budget is still spent."""
    from tuner.records import StudySpec
    from tuner.space import parse_space

    worker.space = parse_space({"epochs": 5}, source="s.yaml")
    worker.spec = StudySpec(space={}, data={}, fingerprint="-")
    worker.study.set_user_attr(records.BUDGET, 5)
    worker.study.set_user_attr(records.TARGET, 10)
    running = worker._claim()  # reserves all 5 epochs
    worker.study.enqueue_trial({"units": 8})
    assert worker._claim() is None
    assert [t.state for t in worker.study.get_trials()][-1] == TrialState.WAITING
    running.set_user_attr(records.EPOCHS_RUN, 2)  # pruned after 2: 3 epochs come back
    worker.study.tell(running, state=TrialState.PRUNED)
    queued = worker._claim()
    assert queued is not None and worker.reserved == 3, "the queued trial runs"


def test_a_residual_trial_keeps_its_training_at_the_level_left_by_those_judged_before(
    worker, monkeypatch
) -> None:
    """The k-th residual trial a study judges keeps below ``keep_level(k)`` (a study hands back
    its best trial on validation: 0.05 for each let a trial kept by chance be the one picked),
    recorded so that `tuner reproduce` judges it at the same level."""
    from types import SimpleNamespace

    from tuner.config import KEEP_LEVEL
    from tuner.space import parse_space
    from tuner.training import keep_level

    raw = {"task": "forecast", "params": {"residual": ["ridge", "none"], "window": 8}}
    worker.space = parse_space(raw, source="s.yaml")
    worker.spec = SimpleNamespace(max_epochs=None)
    worker.dataset = SimpleNamespace(default_window=None)
    worker.study.set_user_attr(records.TARGET, 5)
    worker.study.set_user_attr(records.EXPERIMENT, "1")
    worker.study.set_user_attr(records.PARENT_RUN, "p")
    monkeypatch.setattr("tuner.worker.TrialRun", lambda *args, **kwargs: None)

    def opened(residual: str):
        worker.study.enqueue_trial({"residual": residual})
        trial = worker._claim()
        _, config = worker._open(trial)
        return trial, config

    first, config = opened("ridge")
    assert config.keep_level == keep_level(1)
    assert _frozen(worker.study, first.number).user_attrs[records.KEEP_LEVEL] == keep_level(1)
    first.set_user_attr(records.START_PVALUE, 0.2)  # judged: went back to its start
    worker.study.tell(first, 1.0)
    plain, config = opened("none")  # never judged: nothing recorded, nothing spent
    assert config.keep_level == KEEP_LEVEL
    assert records.KEEP_LEVEL not in _frozen(worker.study, plain.number).user_attrs
    worker.study.tell(plain, 1.0)
    second, config = opened("ridge")
    assert config.keep_level == keep_level(2) < keep_level(1)
    assert _frozen(worker.study, second.number).user_attrs[records.KEEP_LEVEL] == keep_level(2)
