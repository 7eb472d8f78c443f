"""The trial loop: claim a trial, open it (sample, start its run), train, close it (record its
end in MLflow, then in Optuna); survive what a trial does.

A worker runs trials of one study until the study has its target number (COMPLETE, PRUNED,
RUNNING or WAITING; FAIL trials do not count and are replaced), or until its own ``max_trials``
or ``timeout``. Failure semantics:

- a trial's own error (NaN loss, out of memory, a runtime error): FAIL with the reason, go on;
  ``outcome.MAX_CONSECUTIVE_ERRORS`` of this worker's trials failing in a row stop it;
- SIGTERM / SIGINT: the trial in flight is FAIL, re-queued with the same parameters, its run
  KILLED; the worker returns (``signals``);
- a worker killed hard: its heartbeat stops; whoever runs next fails the trial, re-queues it once
  and closes its MLflow run (``liveness``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import liveness, outcome, records
from tuner import study as studies
from tuner.data import Dataset
from tuner.device import keras_backend
from tuner.errors import FatalError, brief
from tuner.liveness import TakenOver
from tuner.log import log
from tuner.outcome import Outcome
from tuner.processes import worker_name
from tuner.records import StudySpec
from tuner.retry import batched, retrying, unretried
from tuner.sampling import sample
from tuner.signals import Interrupted, StopRequest
from tuner.space import Space
from tuner.strategies import FirstObjective, prunes_from
from tuner.tracking import INTERRUPTED_STATUS, Tracker, TrialRun
from tuner.training import keep_level


@dataclass
class Worker:
    study: optuna.Study
    storage: Any
    storage_url: str
    space: Space
    spec: StudySpec
    dataset: Dataset
    tracker: Tracker
    on_trial_end: Callable[[optuna.trial.FrozenTrial], None] | None = None
    stop: StopRequest = field(default_factory=StopRequest)
    name: str = field(default_factory=worker_name)  # on each trial it runs (records.WORKER)
    ran: int = 0
    exhausted: bool = False  # the sampler has nothing left to try (a used-up grid)
    reserved: int | None = None  # epochs of the study's budget the claimed trial may use
    judged: int = 0  # the study's trials judged against their start when it was claimed

    def run(self, *, max_trials: int | None = None, timeout: float | None = None) -> int:
        """Run trials until the study (or this worker) is done; returns how many it ran."""
        started = time.monotonic()
        while (max_trials is None or self.ran < max_trials) and not self.exhausted:
            if timeout is not None and time.monotonic() - started >= timeout:
                break
            liveness.mark_alive()
            with contextlib.ExitStack() as claimed:
                # A signal arriving from here to the start of training is held, then raised
                # inside run_trial, whose handler fails and re-queues the trial.
                with self.stop.held(raise_at_end=False):
                    # retried whole, as the claim: a queued retry must not be queued twice
                    retrying(self._sweep, "failing stale trials")
                    trial = retrying(self._claim, "claiming a trial")  # lock and all
                    if trial is not None:
                        # From here a dead worker's trial is found by its stale heartbeat.
                        claimed.enter_context(liveness.Heartbeat(self.storage, trial._trial_id))
                        try:
                            run, config = self._open(trial)
                        except BaseException as e:
                            claimed.close()  # else the trial never goes stale: RUNNING forever
                            _abandon(self.study, trial, e)
                            raise
                if trial is None:
                    if self._others_running():
                        continue  # one of them may turn out stale and need its retry run
                    break
                try:
                    self.run_trial(trial, run, config)
                finally:
                    with self.stop.held(raise_at_end=False):
                        claimed.close()  # the heartbeat beats until Optuna has the end
                        _free_memory()
            self.ran += 1
        self.stop.raise_pending()
        return self.ran

    @functools.cached_property
    def _runs(self) -> tuple[str, str]:
        """The study's MLflow experiment and parent run: set once by its creation, read once."""
        attrs = self.study.user_attrs
        return attrs[records.EXPERIMENT], attrs[records.PARENT_RUN]

    def _others_running(self) -> bool:
        """The target is claimed, but other workers' trials are running: wait one heartbeat
        interval and say so, since a worker that dies now leaves a trial that needs a retry.
        Without heartbeats no one could tell; the worker leaves."""
        interval = getattr(self.storage, "heartbeat_interval", None)
        if interval is None:
            return False
        if not studies.counts(self.study)["running"]:
            return False
        self.stop.raise_pending()
        time.sleep(interval)
        return True

    def _sweep(self) -> None:
        with unretried(self.storage):
            liveness.sweep(self.study, self.storage)

    def _claim(self) -> optuna.Trial | None:
        """The next trial (a re-queued one first), or None when the study has its target.

        Retried as a whole by the caller, the lock taken again: an error that cut the storage
        may have taken the lock's connection with it."""
        lock = liveness.claim_lock(self.storage, self.storage_url, self.study.study_name)
        with lock, unretried(self.storage):
            # An epoch budget is shared: the epochs this trial may use are reserved under the
            # lock, so workers racing for the last epochs cannot overshoot it. Read before
            # `ask`: a call that fails after it would re-run the claim and leave an orphan.
            # One read of the trials and one of the study's attributes serve the whole claim
            # (each read is a storage round trip and, for the trials, a refresh of the cache).
            trials = self.study.get_trials(deepcopy=False)
            if liveness.requeue_lost(self.study, trials):
                trials = self.study.get_trials(deepcopy=False)  # with the queued retries
            attrs = self.study.user_attrs
            self.judged = outcome.judged(trials)
            left = studies.budget_left(self.study, trials, attrs)
            c = studies.counts(self.study, trials)
            if studies.target_reached(self.study, c, left=left, attrs=attrs):
                # Queued trials can never run once the budget is spent and no running trial
                # can give epochs back (a pruned or interrupted one uses less than it reserved).
                if left == 0 and not c["running"]:
                    studies.fail_waiting(self.study, records.BUDGET_SPENT_REASON)
                return None
            trial = self.study.ask()
            self.reserved = (
                None if left is None else min(left, self.space.capped_epochs(self.spec.max_epochs))
            )
            if self.reserved is not None:
                reserved = self.reserved
                retrying(  # on its own: a retry must not claim a second trial
                    lambda: trial.set_user_attr(records.EPOCHS, reserved),
                    "reserving the trial's epochs",
                )
        return trial

    def _open(self, trial: optuna.Trial) -> tuple[TrialRun, Any]:
        """Sample the trial and open its MLflow run (if MLflow answers; else later)."""
        frozen = liveness.frozen(self.study, trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        seed = outcome.trial_seed(self.space.seed, trial.number, retry_of)
        ds = self.dataset
        defaults = {} if ds.default_window is None else {"window": ds.default_window}
        backend = keras_backend()
        with batched(self.storage, trial._trial_id):  # its parameters and settings: one commit
            config = sample(
                trial, self.space, max_epochs=self.spec.max_epochs, seed=seed, defaults=defaults
            )
            if self.reserved is not None and self.reserved < config.epochs:  # the budget's last
                config = dataclasses.replace(config, epochs=max(1, self.reserved))
            # judged against its start after those judged so far (trials running at once on
            # other workers may share a rank: the study then spends a little over KEEP_LEVEL)
            if config.residual != "none":
                config = dataclasses.replace(config, keep_level=keep_level(self.judged + 1))
            fused = config.fused_kernel(backend, self.space.task)
            attrs: dict[str, Any] = {
                records.CUDNN: fused,
                records.BACKEND: backend,
                records.SEED: seed,
                records.SAMPLER_SEED: self.space.sampler_seed(),
                records.EPOCHS: config.epochs,  # what `tuner reproduce` runs it with again
                records.WORKER: self.name,
            }
            if config.residual != "none":  # `tuner reproduce` judges it at this level again
                attrs[records.KEEP_LEVEL] = config.keep_level
            _set_attrs(trial, attrs)
        tags = {records.CUDNN_TAG: str(fused).lower(), records.BACKEND_TAG: backend}
        if retry_of is not None:
            tags[records.RETRY_OF_TAG] = str(retry_of)

        def link(run_id: str) -> None:  # at once, or when MLflow is back
            try:
                trial.set_user_attr(records.RUN_ID, run_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # failed as stale meanwhile: on_stale found the run by its tags

        experiment, parent = self._runs
        run = TrialRun(
            self.tracker,
            experiment,
            parent,
            self.study.study_name,
            trial.number,
            config.as_params(),
            tags,
            on_created=link,
        )
        return run, config

    def run_trial(self, trial: optuna.Trial, run: TrialRun, config: Any) -> TrialState:
        """Train an opened trial, then record its end: in MLflow first, then in Optuna.

        The caller's heartbeat beats until Optuna has the end, so a worker that dies at any
        point before leaves a stale trial, which the next worker fails, retries and whose run it
        closes as KILLED (``liveness.on_stale``), whatever MLflow had already been told.
        """
        try:
            self.stop.raise_pending()
            result = self._train(trial, config, run)
        except TakenOver:
            return _taken_over(trial, run)
        except Interrupted as e:
            with self.stop.held():
                self._interrupted(trial, run, e)
            raise
        with self.stop.held():
            try:
                return self._close(trial, run, result)
            except TakenOver:
                return _taken_over(trial, run)

    def _interrupted(self, trial: optuna.Trial, run: TrialRun, e: Interrupted) -> None:
        """FAIL the trial and queue its retry under the claim lock: a claim sees both or neither
        (a kill between them is mended by the next claim: ``liveness.requeue_lost``)."""
        reason = f"{records.INTERRUPTED_REASON}{e.signame}"
        run.end("FAIL", {}, reason, status=INTERRUPTED_STATUS, seconds=3.0)
        with contextlib.ExitStack() as lock:
            retrying(  # a fresh lock per try: a failed one cannot be entered again
                lambda: lock.enter_context(
                    liveness.claim_lock(self.storage, self.storage_url, self.study.study_name)
                ),
                "taking the claim lock",
            )
            try:
                attrs = {records.REASON: reason, records.INTERRUPTED: trial.number}
                self._tell(trial, TrialState.FAIL, None, attrs)
            except TakenOver:
                raise e from None  # the stale path re-queued it, closed its run
            liveness.requeue(self.study, trial.number)

    def _close(self, trial: optuna.Trial, run: TrialRun, result: Outcome) -> TrialState:
        missing = run.end(result.state.name, result.metrics, result.reason)  # waits for MLflow
        attrs = result.attrs()
        if run.run_id is not None:
            attrs[records.RUN_ID] = run.run_id
        if missing:  # MLflow stayed down past the bound: say what its records lack
            attrs[records.UNRECORDED] = "; ".join(missing)
        value: float | list[float] | None = result.value
        if result.value is not None and self.space.costs:  # several objectives: costs follow
            value = self._values(result)
        self._tell(trial, result.state, value, attrs)
        if result.best and run.run_id is not None and not missing:
            try:  # the UI's mark moves to this run; a study's close settles any race
                self.tracker.mark_best(self._runs[1], run.run_id)
            except Exception as e:
                log.warning("trial %d's run was not marked best: %s", trial.number, brief(e))
        if result.error:
            self._check_streak(result.reason)
        if self.on_trial_end is not None:
            self.on_trial_end(liveness.frozen(self.study, trial.number))
        return result.state

    def _check_streak(self, reason: str | None) -> None:
        trials = self.study.get_trials(deepcopy=False)
        if outcome.failure_streak(trials, self.name) >= outcome.MAX_CONSECUTIVE_ERRORS:
            raise FatalError(
                f"{outcome.MAX_CONSECUTIVE_ERRORS} trials in a row failed; the last: {reason}"
            )

    def _tell(
        self,
        trial: optuna.Trial,
        state: TrialState,
        value: float | list[float] | None,
        attrs: dict[str, Any],
    ) -> None:
        """Record the trial's end (``liveness.record_end``: ``TakenOver`` if another worker
        finished it first); a used-up grid stops this worker."""
        if liveness.record_end(self.study, trial, state, value, attrs):
            self.exhausted = True

    def _train(self, trial: optuna.Trial, config: Any, run: TrialRun) -> Outcome:
        """Train; trial errors become a FAIL outcome here."""
        from tuner.fitting import fit, model_card
        from tuner.footprint import OverLimit, limits

        objective = self.space.objective
        report = EpochReport(trial, run, objective, prunes_from(self.space.pruner), self.stop)
        try:
            done = fit(
                self.dataset,
                config,
                objective=objective,
                direction=self.space.direction,
                report=report,
                limits=limits(),
            )
        except (FatalError, TakenOver):
            raise
        except OverLimit as e:  # pruned before it is built: the sampler learns to avoid it
            return Outcome(TrialState.PRUNED, reason=str(e))
        except Exception as e:  # a trial's own error: OOM, bad runtime config, ...
            log.debug("trial %d failed", trial.number, exc_info=True)
            return outcome.of_error(e)
        # The model ends with the best epoch's weights (restore_best_weights), so its validation
        # scores (best_{objective} among them) are that epoch's: no second pass. Summary metrics
        # get names of their own, so they never add points to an epoch curve.
        result = outcome.of_training(done.result, done.summary())
        if result.value is not None and "latency_ms" in self.space.costs:
            try:
                result.metrics["latency_ms"] = done.latency_ms(config.batch_size)
            except Exception as e:  # predicting failed (out of memory, ...): a trial error
                log.debug("trial %d's latency failed", trial.number, exc_info=True)
                return outcome.of_error(e)
        if result.value is None:
            return result
        result.best = self._is_best(result.value)
        if not result.best and not self._on_front(result):
            return result
        # The test split is evaluated for the trials that were best when they completed, and
        # recorded; it is never reported to Optuna, so it never steers the search.
        result.metrics.update(done.test(config.batch_size))
        card = model_card(self.dataset, config, done.arrays.scaler, self.spec.data)
        uri = run.log_model(done.saved_model(), card)
        try:
            if uri is not None:
                trial.set_user_attr(records.MODEL_URI, uri)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise TakenOver() from None
        if result.best:
            self._log_figure(run, done, config.batch_size)
        return result

    def _values(self, result: Outcome) -> list[float]:
        """A finished trial's objectives: its value, then each cost from its metrics."""
        assert result.value is not None
        return [result.value, *(float(result.metrics[c]) for c in self.space.costs)]

    def _on_front(self, result: Outcome) -> bool:
        """Several objectives: whether no finished trial beats this one on every objective
        (then its model is kept too, for `tuner predict --trial N`)."""
        if not self.space.costs or result.value is None:
            return False
        values = self._values(result)
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return not any(
            t.values is not None and outcome.dominates(t.values, values, self.space.directions)
            for t in done
        )

    def _log_figure(self, run: TrialRun, done: Any, batch_size: int) -> None:
        """The best model's figure (``fitting.best_figure``) on its run and the study's; a
        figure that cannot be drawn is only a warning."""
        from tuner.fitting import best_figure

        season = (self.study.user_attrs.get(records.BASELINES) or {}).get("period")
        try:
            name, figure = best_figure(done, self.dataset, season, batch_size)
        except Exception as e:
            log.warning("the figure of trial %d was not drawn: %s", run.number, brief(e))
            return
        run.log_image(figure, f"plots/best_{name}.png")  # the study's run: when it goes idle

    def _is_best(self, value: float | None) -> bool:
        best = studies.best_trial(self.study)
        assert value is not None
        return outcome.is_better(
            value, None if best is None else studies.value(best), self.space.direction
        )


@dataclass
class EpochReport:
    """What each epoch of a trial tells the world (training's ``report`` callback): a liveness
    mark, the MLflow curve point, the objective to Optuna, and the pruner's answer."""

    trial: optuna.Trial
    run: TrialRun
    objective: str
    prune_from: int | None  # the first epoch the pruner could prune at (None: never)
    stop: StopRequest

    def __call__(self, epoch: int, logs: dict[str, float]) -> bool:
        # A stop signal is held while the storage is written (raised inside the driver it
        # would break the call into a storage error and a retry), then raised at the end.
        with self.stop.held():
            return self._report(epoch, logs)

    def _report(self, epoch: int, logs: dict[str, float]) -> bool:
        liveness.mark_alive()
        self.run.log_epoch(epoch, logs)  # never raises: kept and sent later if MLflow is down
        value = logs.get(self.objective)
        if value is None or not math.isfinite(value):
            return False
        study = self.trial.study
        several = len(study.directions) > 1  # Optuna's report refuses: pruned on the first
        try:
            if several:
                study._storage.set_trial_intermediate_value(self.trial._trial_id, epoch, value)
            else:
                self.trial.report(value, epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise TakenOver() from None
        if self.prune_from is None or epoch < self.prune_from:
            return False  # the pruner cannot prune yet (or ever): not worth a round trip
        if several:
            frozen = study._storage.get_trial(self.trial._trial_id)
            return bool(study.pruner.prune(FirstObjective(study), frozen))  # type: ignore[arg-type]
        return bool(self.trial.should_prune())


def _abandon(study: optuna.Study, trial: optuna.Trial, error: BaseException) -> None:
    """Fail a claimed trial that could not be opened (sampling or recording its settings
    raised), saying why; if the storage cannot take it, its stopped heartbeat lets the next
    worker fail and retry it."""
    reason = f"{records.NOT_STARTED}{type(error).__name__}: {brief(error)}"
    with contextlib.suppress(Exception):
        trial.set_user_attr(records.REASON, reason[:500])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _taken_over(trial: optuna.Trial, run: TrialRun) -> TrialState:
    reason = (
        f"trial {trial.number} was failed as stale by another worker (no heartbeat within the "
        "grace period); its result is dropped and its retry queued"
    )
    log.warning("%s", reason)
    run.end("FAIL", {}, reason, status=INTERRUPTED_STATUS, seconds=10.0)  # as on_stale did
    return TrialState.FAIL


def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _free_memory() -> None:
    from tuner.fitting import free_memory

    free_memory()
