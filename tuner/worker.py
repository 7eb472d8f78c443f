"""The trial loop: claim a trial, sample, build, train, report, record; survive what a trial does.

A worker runs trials of one study until the study has its target number (COMPLETE, PRUNED,
RUNNING or WAITING; FAIL trials do not count and are replaced), or until its own ``max_trials``
or ``timeout``. Failure semantics (see DESIGN.md):

- a trial's own error (NaN loss, out of memory, a runtime error): FAIL with the reason, go on;
  ``MAX_CONSECUTIVE_ERRORS`` errors in a row stop the worker (a bug, not a bad config);
- SIGTERM / SIGINT: the trial in flight is FAIL, re-queued with the same parameters, its run
  KILLED; the worker returns;
- a worker killed hard: its heartbeat stops; whoever runs next fails the trial, re-queues it once
  and closes its MLflow run (``on_stale``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import study as studies
from tuner.data import Dataset, Sequences
from tuner.errors import FatalError, brief
from tuner.retry import note_outage, retrying
from tuner.sampling import sample
from tuner.space import Space
from tuner.tracking import INTERRUPTED_STATUS, Tracker, TrialRun

MAX_CONSECUTIVE_ERRORS = 5
RUN_ID_ATTR = "mlflow_run_id"
UNRECORDED_ATTR = "mlflow_unrecorded"  # what MLflow lacks of a trial (it was down too long)

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# We run our own loop (claim lock, signals) and our own heartbeat thread, not Study.optimize.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


class TakenOver(Exception):
    """The trial was finished by someone else: another worker found its heartbeat stale (this
    worker stalled past the grace period), failed it and queued a retry. Its result is dropped."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived (a BaseException, so no ``except Exception`` swallows it)."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


@dataclass
class Worker:
    study: optuna.Study
    storage: Any
    storage_url: str
    space: Space
    spec: dict[str, Any]
    dataset: Dataset
    tracker: Tracker
    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None
    ran: int = 0
    errors_in_a_row: int = 0  # carried from one trial process to the next
    exhausted: bool = False  # the sampler has nothing left to try (a used-up grid)
    reserved: int | None = None  # epochs of the study's budget the claimed trial may use
    shared_test: int | None = None  # forecast test windows shared with the baselines

    @property
    def experiment_id(self) -> str:
        return self.study.user_attrs[studies.EXPERIMENT_ATTR]

    @property
    def parent_run_id(self) -> str:
        return self.study.user_attrs[studies.PARENT_RUN_ATTR]

    def run(self, *, max_trials: int | None = None, timeout: float | None = None) -> int:
        """Run trials until the study (or this worker) is done; returns how many it ran."""
        started = time.monotonic()
        while max_trials is None or self.ran < max_trials:
            if timeout is not None and time.monotonic() - started >= timeout:
                break
            if self.exhausted:
                break
            # A signal arriving from here to the start of training is held, then raised inside
            # run_trial, whose handler fails and re-queues the trial.
            with _deferred_signals(raise_at_end=False):
                retrying(lambda: studies.sweep(self.study, self.storage), "failing stale trials")
                trial = retrying(self._claim, "claiming a trial")
                if trial is not None:
                    # From here a dead worker's trial is found by its stale heartbeat.
                    heartbeat = _Heartbeat(self.storage, trial._trial_id)
                    heartbeat.start()
                    try:
                        run, config = self._open(trial)
                    except BaseException as e:
                        heartbeat.stop()  # else the trial never goes stale: RUNNING forever
                        _abandon(self.study, trial, e)
                        raise
            if trial is None:
                if self._others_running():
                    continue  # one of them may turn out stale and need its retry run
                break
            self.run_trial(trial, run, heartbeat, config)
            self.ran += 1
        _raise_pending()
        return self.ran

    def _others_running(self) -> bool:
        """The target is claimed, but other workers' trials are running: wait one heartbeat
        interval and say so, since a worker that dies now leaves a trial that needs a retry.
        Without heartbeats no one could tell; the worker leaves."""
        interval = getattr(self.storage, "heartbeat_interval", None)
        if interval is None:
            return False
        running = retrying(lambda: studies.counts(self.study)["running"], "counting trials")
        if not running:
            return False
        _raise_pending()
        time.sleep(interval)
        return True

    def _claim(self) -> optuna.Trial | None:
        """The next trial (a re-queued one first), or None when the study has its target."""
        from tuner.storage import claim_lock

        with claim_lock(self.storage, self.storage_url, self.study.study_name):
            # An epoch budget is shared: the epochs this trial may use are reserved under the
            # lock, so workers racing for the last epochs cannot overshoot it. Read before
            # `ask`: a call that fails after it would re-run the claim and leave an orphan.
            retrying(lambda: _requeue_lost(self.study), "re-queueing lost retries")
            left = studies.budget_left(self.study)
            if studies.target_reached(self.study, left=left):
                return None
            trial = self.study.ask()
            self.reserved = None if left is None else min(left, self._epoch_cap())
            if self.reserved is not None:
                reserved = self.reserved
                retrying(  # on its own: a retry must not claim a second trial
                    lambda: trial.set_user_attr(studies.EPOCHS_ATTR, reserved),
                    "reserving the trial's epochs",
                )
            return trial

    def _epoch_cap(self) -> int:
        cap = self.spec.get("max_epochs")
        return self.space.epochs if cap is None else min(self.space.epochs, int(cap))

    def _open(self, trial: optuna.Trial) -> tuple[TrialRun, Any]:
        """Sample the trial and open its MLflow run (if MLflow answers; else later)."""
        frozen = retrying(lambda: _frozen(self.study, trial.number), "reading the trial")
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        seed = self.space.seed + (trial.number if retry_of is None else retry_of)
        ds = self.dataset
        defaults = {"window": ds.x.shape[1]} if isinstance(ds, Sequences) else {}
        config = retrying(
            lambda: sample(
                trial,
                self.space,
                max_epochs=self.spec.get("max_epochs"),
                seed=seed,
                defaults=defaults,
            ),
            "sampling",
        )
        if self.reserved is not None and self.reserved < config.epochs:  # the budget's last
            config = dataclasses.replace(config, epochs=max(1, self.reserved))
        tags = {"tuner.cudnn_eligible": str(config.cudnn_eligible).lower()}
        if retry_of is not None:
            tags["tuner.retry_of"] = str(retry_of)
        attrs: dict[str, Any] = {
            "cudnn_eligible": config.cudnn_eligible,
            "seed": seed,
            "sampler_seed": studies.sampler_seed(self.space),
            studies.EPOCHS_ATTR: config.epochs,  # what `tuner reproduce` runs it with again
        }
        retrying(lambda: _set_attrs(trial, attrs), "recording the trial's settings")

        def link(run_id: str) -> None:  # at once, or when MLflow is back
            try:
                retrying(lambda: trial.set_user_attr(RUN_ID_ATTR, run_id), "linking the run")
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # failed as stale meanwhile: on_stale found the run by its tags

        run = TrialRun(
            self.tracker,
            self.experiment_id,
            self.parent_run_id,
            self.study.study_name,
            trial.number,
            config.as_params(),
            tags,
            on_created=link,
        )
        return run, config

    def run_trial(
        self, trial: optuna.Trial, run: TrialRun, heartbeat: _Heartbeat, config: Any
    ) -> TrialState:
        """Train an opened trial, then record its end: in MLflow first, then in Optuna.

        The heartbeat beats until Optuna has the end, so a worker that dies at any point before
        leaves a stale trial, which the next worker fails, retries and whose run it closes as
        KILLED (``on_stale``), whatever MLflow had already been told.
        """
        try:
            try:
                _raise_pending()
                state, value, metrics, reason = self._train(trial, config, run)
            except TakenOver:
                return _taken_over(trial, run)
            except Interrupted as e:
                from tuner.storage import claim_lock

                with _deferred_signals():
                    reason = f"{INTERRUPTED_REASON}{e.signame}"
                    run.end("FAIL", {}, reason, status=INTERRUPTED_STATUS, seconds=3.0)
                    # FAIL and its retry under the claim lock: a claim sees both or neither (a
                    # kill between them is mended by the next claim: `_requeue_lost`).
                    with contextlib.ExitStack() as lock:
                        retrying(  # a fresh lock per try: a failed one cannot be entered again
                            lambda: lock.enter_context(
                                claim_lock(self.storage, self.storage_url, self.study.study_name)
                            ),
                            "taking the claim lock",
                        )
                        try:
                            attrs = {"reason": reason, INTERRUPTED_ATTR: trial.number}
                            self._tell(trial, TrialState.FAIL, None, attrs)
                        except TakenOver:
                            raise e from None  # the stale path re-queued it, closed its run
                        retrying(
                            lambda: _requeue(self.study, trial.number), "re-queueing the trial"
                        )
                raise
            with _deferred_signals():
                try:
                    return self._close(trial, run, state, value, metrics, reason)
                except TakenOver:
                    return _taken_over(trial, run)
        finally:
            with _deferred_signals(raise_at_end=False):
                heartbeat.stop()
                _free_memory()

    def _close(
        self,
        trial: optuna.Trial,
        run: TrialRun,
        state: TrialState,
        value: float | None,
        metrics: dict[str, float],
        reason: str | None,
    ) -> TrialState:
        missing = run.end(state.name, metrics, reason)  # waits, within bounds, for MLflow
        attrs: dict[str, Any] = {**metrics, **({"reason": reason} if reason else {})}
        if run.run_id is not None:
            attrs[RUN_ID_ATTR] = run.run_id
        if missing:  # MLflow stayed down past the bound: say what its records lack
            attrs[UNRECORDED_ATTR] = "; ".join(missing)
        self._tell(trial, state, value, attrs)
        if self.on_trial_end is not None:
            self.on_trial_end(retrying(lambda: _frozen(self.study, trial.number), "reading"))
        return state

    def _tell(
        self, trial: optuna.Trial, state: TrialState, value: float | None, attrs: dict[str, Any]
    ) -> None:
        """Attributes, then the final state; safe to retry (a finished trial is skipped)."""

        def ours() -> bool:
            frozen = _frozen(self.study, trial.number)
            return frozen.state == state and all(
                same_value(frozen.user_attrs.get(k), v) for k, v in attrs.items()
            )

        def tell() -> None:
            try:
                _set_attrs(trial, attrs)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Finished already: by our own earlier try that lost its answer, or by another
                # worker that found this trial stale (then our attributes are not on it).
                if not ours():
                    raise TakenOver() from None
                return
            try:
                if state == TrialState.COMPLETE:
                    self.study.tell(trial, value, skip_if_finished=True)
                else:
                    self.study.tell(trial, state=state, skip_if_finished=True)
            except RuntimeError as e:
                # The grid sampler calls study.stop() once its grid is used up; outside
                # Study.optimize that raises, after the trial is recorded.
                if "stop" not in str(e):
                    raise
                self.exhausted = True
            if not ours():  # finished by another worker between our attributes and tell
                raise TakenOver()

        retrying(tell, f"recording trial {trial.number} as {state.name}")

    def _train(
        self, trial: optuna.Trial, config: Any, run: TrialRun
    ) -> tuple[TrialState, float | None, dict[str, float], str | None]:
        """Train; returns (state, value, metrics, reason). Trial errors become FAIL here."""
        from tuner.fitting import fit, model_card, shared_test_windows

        objective = self.space.objective
        self.shared_test = shared_test_windows(self.dataset, self.space)
        prune_from = studies.prunes_from(self.space.pruner)

        def report(epoch: int, logs: dict[str, float]) -> bool:
            # A stop signal is held while the storage is written (raised inside the driver it
            # would break the call into a storage error and a retry), then raised at the end.
            with _deferred_signals():
                return ask(epoch, logs)

        def ask(epoch: int, logs: dict[str, float]) -> bool:
            run.log_epoch(epoch, logs)  # never raises: kept and sent later if MLflow is down
            value = logs.get(objective)
            if value is None or not math.isfinite(value):
                return False
            try:
                retrying(lambda: trial.report(value, epoch), f"reporting epoch {epoch}")
            except optuna.exceptions.UpdateFinishedTrialError:
                raise TakenOver() from None
            if prune_from is None or epoch < prune_from:
                return False  # the pruner cannot prune yet (or ever): not worth a round trip
            return retrying(trial.should_prune, "asking the pruner")

        try:
            done = fit(
                self.dataset,
                config,
                objective=objective,
                direction=self.space.direction,
                report=report,
            )
        except (FatalError, TakenOver):
            raise
        except Exception as e:  # a trial's own error: OOM, bad runtime config, ...
            self.errors_in_a_row += 1
            reason = _trial_error(e)
            if self.errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                self._tell(trial, TrialState.FAIL, None, {"reason": reason})
                run.end("FAIL", {}, reason)
                raise FatalError(
                    f"{MAX_CONSECUTIVE_ERRORS} trials in a row failed; the last: {reason}"
                ) from e
            return TrialState.FAIL, None, {}, reason
        self.errors_in_a_row = 0

        result = done.result
        # The model ends with the best epoch's weights (restore_best_weights), so its validation
        # scores (best_{objective} among them) are that epoch's: no second pass. Summary metrics
        # get names of their own, so they never add points to an epoch curve.
        metrics = done.summary()
        if result.stopped == "diverged":
            return (
                TrialState.FAIL,
                None,
                metrics,
                f"loss not finite at epoch {result.stopped_epoch}",
            )
        if result.stopped == "pruned":
            return TrialState.PRUNED, None, metrics, f"pruned at epoch {result.stopped_epoch}"
        assert result.best_value is not None and result.best_epoch is not None
        best_value = result.best_value
        if retrying(lambda: self._is_best(best_value), "reading the best trial"):
            # The test split is evaluated for the trials that were best when they completed, and
            # recorded; it is never reported to Optuna, so it never steers the search.
            metrics.update(done.test(config.batch_size, self.shared_test))
            card = model_card(self.dataset, config, done.arrays.scaler, self.spec["data"])
            uri = self._log_model(run, done.model, card)
            try:
                if uri is not None:
                    retrying(lambda: trial.set_user_attr("model_uri", uri), "recording the model")
            except optuna.exceptions.UpdateFinishedTrialError:
                raise TakenOver() from None
        return TrialState.COMPLETE, result.best_value, metrics, None

    def _log_model(self, run: TrialRun, model: Any, preprocess: dict[str, Any]) -> str | None:
        """The model's artifacts, or None (with a message) if MLflow is down: a missing model
        file does not fail a trial that trained well."""
        if run.run_id is None:
            run.catch_up()
        if run.run_id is None:
            return None
        try:
            return self.tracker.log_model(str(run.run_id), model, preprocess)
        except Exception as e:
            print(
                f"tuner: the model of trial {run.number} was not recorded: {brief(e, 500)}",
                file=sys.stderr,
            )
            return None

    def _is_best(self, value: float) -> bool:
        best = studies.best_trial(self.study)
        if best is None or best.value is None:
            return True
        return value > best.value if self.space.direction == "maximize" else value < best.value


class _Heartbeat:
    """Records the trial's heartbeat every interval (Optuna's RDB heartbeat API)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)()
        if interval is None:  # heartbeats off, or a gRPC proxy client (it has none)
            return

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

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def close_study_if_idle(
    study: optuna.Study, storage: Any, storage_url: str, tracker: Tracker, *, plots: bool = True
) -> str | None:
    """When no trial of the study is running, log the study-level results on the parent run and
    close it: FINISHED if the target is reached, else KILLED (a resume reopens it).

    Serialized by the claim lock, so of several workers stopping at once one closes it and the
    others find nothing to do. Returns the status set, or None.
    """
    from tuner.storage import claim_lock

    def close() -> str | None:
        with claim_lock(storage, storage_url, study.study_name):
            c = studies.counts(study)
            parent = study.user_attrs.get(studies.PARENT_RUN_ATTR)
            if c["running"] or parent is None:
                return None
            status = "FINISHED" if studies.target_reached(study, c) else INTERRUPTED_STATUS
            try:
                if tracker.client.get_run(parent).info.status == status:
                    return None  # closed already, as it should be, by another worker
                tracker.finish_study(parent, study, status, plots=plots)
            except Exception as e:  # MLflow down: the next worker to stop, or a repair, closes it
                print(
                    f"tuner: the study's parent run was not closed: MLflow: {brief(e, 500)}; "
                    "`tuner check --repair` closes it",
                    file=sys.stderr,
                )
                return None
            return status

    return retrying(close, "closing the study's parent run")


def on_stale(tracker_uri: str) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Heartbeat-stale callback: re-queue the dead worker's trial once, close its MLflow run."""
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retry(study, trial)
        try:
            Tracker(tracker_uri).kill_trial_run(
                study, trial, "worker died (heartbeat stale); trial retried"
            )
        except Exception as e:  # MLflow down: `tuner check --repair` closes it later
            print(
                f"tuner: could not close trial {trial.number}'s run: {brief(e, 500)}",
                file=sys.stderr,
            )

    return callback


class _Signals:
    critical = 0  # depth of sections that must not be cut (claiming, recording a trial's end)
    pending: str | None = None


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """Turn SIGTERM (docker stop) and SIGINT (Ctrl-C) into ``Interrupted`` in the main thread.

    Inside a critical section the signal is held until the section ends, so a trial is never
    left half-claimed or half-recorded. The previous handlers come back on exit.
    """

    def raise_interrupted(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if _Signals.pending is not None:
            return  # already stopping
        _Signals.pending = name
        if _Signals.critical == 0:
            raise Interrupted(name)

    _Signals.pending, _Signals.critical = None, 0
    previous = {s: signal.signal(s, raise_interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _abandon(study: optuna.Study, trial: optuna.Trial, error: BaseException) -> None:
    """Fail a claimed trial that could not be opened (sampling or recording its settings
    raised), saying why; if the storage cannot take it, its stopped heartbeat lets the next
    worker fail and retry it."""
    from tuner.check import NOT_STARTED

    reason = f"{NOT_STARTED}{type(error).__name__}: {brief(error)}"
    with contextlib.suppress(Exception):
        trial.set_user_attr("reason", reason[:500])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


INTERRUPTED_REASON = "interrupted by "  # + the signal's name: the trial is retried as it was
INTERRUPTED_ATTR = "interrupted"  # the number of a trial stopped by a signal (to be retried)


def same_value(stored: Any, ours: Any) -> bool:
    """Whether an attribute read back from the storage is the one written: NaN is NaN (a NaN
    metric once made a healthy COMPLETE trial count as taken over), a list may come back for a
    tuple."""
    if isinstance(stored, float) and isinstance(ours, float):
        return stored == ours or (math.isnan(stored) and math.isnan(ours))
    if isinstance(stored, (list, tuple)) and isinstance(ours, (list, tuple)):
        return len(stored) == len(ours) and all(map(same_value, stored, ours))
    if isinstance(stored, dict) and isinstance(ours, dict):
        return stored.keys() == ours.keys() and all(same_value(stored[k], ours[k]) for k in ours)
    return bool(stored == ours)


@contextlib.contextmanager
def _deferred_signals(*, raise_at_end: bool = True) -> Iterator[None]:
    """Hold SIGTERM/SIGINT for the section; then raise it, or keep it for ``_raise_pending``."""
    _Signals.critical += 1
    try:
        yield
    finally:
        _Signals.critical -= 1
    if raise_at_end:
        _raise_pending()


def pending_signal() -> str | None:
    """The stop signal this worker received, if any."""
    return _Signals.pending


def _raise_pending() -> None:
    if _Signals.critical == 0 and _Signals.pending is not None:
        raise Interrupted(_Signals.pending)


def _taken_over(trial: optuna.Trial, run: TrialRun) -> TrialState:
    reason = (
        f"trial {trial.number} was failed as stale by another worker (no heartbeat within the "
        "grace period); its result is dropped and its retry queued"
    )
    print(f"tuner: {reason}", file=sys.stderr)
    run.end("FAIL", {}, reason, status=INTERRUPTED_STATUS, seconds=10.0)  # as on_stale did
    return TrialState.FAIL


def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _requeue(study: optuna.Study, number: int) -> None:
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)(study, _frozen(study, number))


def _requeue_lost(study: optuna.Study) -> list[int]:
    """Queue the retry of every interrupted trial that has none: its worker was killed between
    recording FAIL and queueing the retry, and a new trial with new parameters would otherwise
    take the lost retry's place in the target. Runs under the claim lock."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    # The attribute holds the trial's own number: a retry copies its original's attributes.
    lost = [
        t.number
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get(INTERRUPTED_ATTR) == t.number
        and t.number not in retried
    ]
    for number in lost:
        _requeue(study, number)
    return lost


def _frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return study._storage.get_trial(trial_id)


def _free_memory() -> None:
    """Free the trial's graphs and tensors: clear the framework's session, collect garbage.

    After the first trial, what survives (the frameworks' modules, the data, the study's cache)
    is frozen out of the collector (``gc.freeze``), so later collections walk only what later
    trials made: with TensorFlow loaded, a full collection took ~0.4 s a trial here, walking
    the long-lived objects around the trial's garbage rather than the garbage itself."""
    keras = sys.modules.get("keras")
    if keras is not None:  # None: no trial trained in this process (or a stand-in trained)
        try:
            keras.backend.clear_session(free_memory=False)  # the collection is ours, below
        except Exception:  # keras half-imported: a stop signal cut its import; the process ends
            pass
    gc.collect()
    if not _Collector.frozen:
        gc.freeze()
        _Collector.frozen = True


class _Collector:
    frozen = False


def _trial_error(e: BaseException) -> str:
    """The reason a trial failed, one line; out of memory says so whatever the backend calls it
    (TensorFlow's ResourceExhaustedError, XLA's RESOURCE_EXHAUSTED, a host MemoryError)."""
    reason = type(e).__name__ + (f": {brief(e, 500)}" if str(e).strip() else "")
    text = str(e)
    if (
        isinstance(e, MemoryError)
        or type(e).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "out of memory" in text.lower()
    ):
        return f"out of memory: {reason} (a smaller batch_size, units or window needs less)"
    return reason
