"""Which trials have a live worker, and what happens to those that have not.

- A claimed trial's worker records a heartbeat every interval (``Heartbeat``); a trial whose
  heartbeat went stale is failed by whoever runs next (``sweep``), retried once with the same
  parameters and its MLflow run closed as KILLED (``on_stale``).
- A claim whose answer was lost leaves a RUNNING trial with no heartbeat at all: an orphan,
  failed by the sweep after a long margin, never retried (it has no parameters).
- The claim lock serializes "count the trials, then ask for one" among a study's workers.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.retry import batched, note_outage, seconds_since_outage

ALIVE_ENV = "TUNER_ALIVE_FILE"  # touched at every claim and epoch: a liveness probe reads it


def mark_alive() -> None:
    """Touch ``$TUNER_ALIVE_FILE`` (if set): the worker's main loop is making progress. A
    container's liveness probe restarts a worker whose file has not changed for longer than an
    epoch can take (Kubernetes: ``deploy/k8s/workers.yaml``)."""
    path = os.environ.get(ALIVE_ENV)
    if path:
        with contextlib.suppress(OSError):
            Path(path).touch()


class TakenOver(Exception):
    """The trial was finished by someone else: another worker found its heartbeat stale (this
    worker stalled past the grace period), failed it and queued a retry. Its result is dropped."""


class Heartbeat:
    """Records the trial's heartbeat every interval while the block runs (Optuna's RDB
    heartbeat API); an outage is noted and the next beat sent as soon as the storage is back."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)()
        if interval is None:  # heartbeats off, or a gRPC proxy client (it has none)
            return self

        def beat() -> None:
            wait = interval
            while True:
                try:
                    self._storage.record_heartbeat(self._trial_id)
                    wait = interval
                except Exception:  # the storage is gone: beat again as soon as it is back
                    note_outage()
                    wait = min(interval, 1.0)
                if self._stop.wait(wait):
                    return

        self._thread = threading.Thread(target=beat, name="tuner-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextlib.contextmanager
def claim_lock(storage: Any, url: str, study_name: str) -> Iterator[None]:
    """Serialize "count the trials, then ask for one" among all workers of a study.

    With it, a study gets exactly its target number of trials however many workers race for
    the last ones. PostgreSQL: an advisory lock (released if the worker dies). SQLite: a lock
    file beside the database (the workers share a machine). Others: no lock; the study may
    overshoot its target by up to (workers - 1) trials.
    """
    if url.startswith("postgresql"):
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except SQLAlchemyError:
                    conn.invalidate()  # the session is gone, and its lock with it
    elif url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".lock")
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    else:
        yield


def on_stale(tracker_uri: str) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Heartbeat-stale callback: re-queue the dead worker's trial once, close its MLflow run."""
    retry = _Retry(max_retry=1)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from tuner.errors import brief
        from tuner.log import log
        from tuner.tracking import Tracker

        retry(study, trial)
        try:
            Tracker(tracker_uri).kill_trial_run(study, trial, records.STALE_REASON)
        except Exception as e:  # MLflow down: `tuner check --repair` closes it later
            log.warning("could not close trial %d's run: %s", trial.number, brief(e, 500))

    return callback


def rdb(storage: Any) -> Any:
    """The RDB storage under Optuna's cache wrapper (``study._storage`` of a loaded study),
    which carries the heartbeat settings and the engine."""
    return getattr(storage, "_backend", storage)


def stale_running(study: optuna.Study, storage: Any) -> list[int]:
    """RUNNING trials whose heartbeat is older than the grace period (their worker is gone, or
    the database was down); read only, nothing is changed."""
    storage = rdb(storage)
    grace = getattr(storage, "grace_period", None)
    if grace is None or not hasattr(storage, "_get_stale_trial_ids"):
        return []
    ids = set(storage._get_stale_trial_ids(study._study_id))
    return [t.number for t in study.get_trials(states=(TrialState.RUNNING,)) if t._trial_id in ids]


def sweep(study: optuna.Study, storage: Any) -> list[int]:
    """Fail the trials whose worker is gone, so they are retried and nothing stays RUNNING.

    Two kinds: a trial whose heartbeat went stale (its worker was killed; Optuna fails it and
    the storage's callback re-queues it and closes its run), and an orphan: a RUNNING trial with
    no heartbeat at all, long after it started. A worker records the first heartbeat as soon as
    it claims a trial, so an orphan is a claim whose answer was lost with the connection (the
    worker retried and got another trial). Orphans have no parameters and no run; they are
    failed, not re-queued. Returns the numbers of the orphans failed.

    Skipped for a grace period after this process saw the storage fail: then every worker's
    heartbeat is old because the database was gone, not the workers.
    """
    grace = getattr(storage, "grace_period", None) or 0
    if getattr(storage, "heartbeat_interval", None) is None:
        return []
    if seconds_since_outage() < grace + storage.heartbeat_interval:
        return []
    optuna.storages.fail_stale_trials(study)
    return _fail_orphans(study, storage, older_than=max(3.0 * grace, 120.0))


def _fail_orphans(study: optuna.Study, storage: Any, older_than: float) -> list[int]:
    from sqlalchemy import text

    query = text(
        "SELECT t.trial_id, t.number, t.datetime_start FROM trials t "
        "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "WHERE t.study_id = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL"
    )
    with storage.engine.connect() as conn:
        rows = conn.execute(query, {"study": study._study_id}).all()
    # datetime_start is the claiming worker's local clock (Optuna's choice); the margin is wide
    # enough for clock skew between machines.
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=older_than)
    failed = []
    for trial_id, number, started in rows:
        if started is None or started.replace(tzinfo=None) > cutoff:
            continue
        try:
            storage.set_trial_user_attr(trial_id, records.REASON, records.ORPHAN_REASON)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker swept it first
        failed.append(number)
    return failed


class _Retry(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry (the same parameters; ``retry_history`` names the trials it repeats),
    without the original's user attributes: they describe its run (its reason, its MLflow run,
    its scores), and an export showed a completed retry "interrupted by SIGINT"."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        import copy

        bare = copy.copy(trial)
        bare.user_attrs = {}
        super().__call__(study, bare)


retried_trial_number = _Retry.retried_trial_number  # the trial a retry repeats, or None


def requeue(study: optuna.Study, number: int) -> None:
    """Queue a retry of trial ``number`` with its parameters (``retry_history`` names it)."""
    _Retry(max_retry=None)(study, frozen(study, number))


def requeue_lost(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial] | None = None
) -> list[int]:
    """Queue the retry of every interrupted trial that has none: its worker was killed between
    recording FAIL and queueing the retry, and a new trial with new parameters would otherwise
    take the lost retry's place in the target. Runs under the claim lock. ``trials``: the
    study's trials, when the caller has read them."""
    from tuner.study import retried_numbers

    trials = study.get_trials(deepcopy=False) if trials is None else trials
    retried = retried_numbers(trials)
    # The attribute holds the trial's own number (retries made before retries started bare
    # copied their original's attributes).
    lost = [
        t.number
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get(records.INTERRUPTED) == t.number
        and t.number not in retried
    ]
    for number in lost:
        requeue(study, number)
    return lost


def frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial ``number`` as stored now (two reads, not the whole study)."""
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return study._storage.get_trial(trial_id)


def record_end(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    value: float | list[float] | None,
    attrs: dict[str, Any],
) -> bool:
    """A trial's attributes, then its final state; safe to repeat (a finished trial is skipped).
    Raises ``TakenOver`` when another worker finished it first. Returns whether the study's
    grid sampler has used up its grid."""
    from tuner.outcome import same_value

    def ours() -> bool:
        now = frozen(study, trial.number)
        return now.state == state and all(
            same_value(now.user_attrs.get(k), v) for k, v in attrs.items()
        )

    try:
        with batched(study._storage, trial._trial_id):  # one commit
            for key, v in attrs.items():
                trial.set_user_attr(key, v)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Finished already: by our own earlier call that lost its answer, or by another
        # worker that found this trial stale (then our attributes are not on it).
        if not ours():
            raise TakenOver() from None
        return False
    exhausted = False
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value, skip_if_finished=True)
        else:
            study.tell(trial, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # our state went through but its answer was lost; the retry found it finished
    except RuntimeError:
        # The grid sampler calls study.stop() once its grid is used up; outside
        # Study.optimize that raises, after the trial is recorded.
        sampler = study.sampler
        if not (isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)):
            raise
        exhausted = True
    if not ours():  # finished by another worker between our attributes and tell
        raise TakenOver()
    return exhausted
