"""The study invariant, checked once for tests and for ``tuner check`` after an incident.

With no worker running, a healthy study has: no Optuna trial and no MLflow run left RUNNING
(its parent run aside while the study is unfinished: it awaits workers); trial numbers unique
and contiguous; every finished trial linked to exactly one MLflow child run of the study's
parent run, and that run linked back, with the status its state maps to; no more COMPLETE +
PRUNED trials than its target; a finite best value. An unfinished study (made by `tuner create`,
or stopped) is healthy: the report notes it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

from tuner import liveness, records
from tuner import study as studies
from tuner.liveness import retried_trial_number
from tuner.tracking import INTERRUPTED_STATUS, RUN_STATUS, Tracker


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the study's state, not a fault
    trials: int = 0
    runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(study: Any, tracker: Tracker, *, repair: bool = False) -> Report:
    """Check the invariant. With ``repair`` (the study's storage must have heartbeats on): fail
    trials whose worker is gone (stale heartbeat: retried; orphan claims), then close MLflow runs
    whose trial is no longer running, runs of no trial, a second parent run, and the parent run
    of an idle study."""
    report = Report()
    if repair:
        _fail_stale(study, report)
    trials = study.get_trials(deepcopy=False)
    report.trials = len(trials)
    problems = report.problems

    numbers = sorted(t.number for t in trials)
    if numbers != list(range(len(trials))):
        problems.append(f"trial numbers are not unique and contiguous: {numbers}")
    storage = liveness.rdb(study._storage)
    gone = set(liveness.stale_running(study, storage))
    for t in trials:
        if t.state == TrialState.RUNNING:
            why = (
                " and its worker is gone (no heartbeat): tuner check --repair"
                if t.number in gone
                else ""
            )
            problems.append(f"trial {t.number} is RUNNING{why}")

    parent = study.user_attrs.get(records.PARENT_RUN)
    exp_id = study.user_attrs.get(records.EXPERIMENT)
    if parent is None or exp_id is None:
        if any(t.state != TrialState.WAITING for t in trials):
            problems.append("the study has no MLflow experiment or parent run")
        else:  # stopped while it was being made: a resume makes them
            report.notes.append(
                "not started: stopped before its MLflow records were made; the same `tuner "
                "run` command starts it"
            )
        return report
    found = tracker.client.search_runs(
        [exp_id], filter_string=f"tags.`{records.PARENT_RUN_TAG}` = '{parent}'", max_results=50_000
    )
    runs = [
        r for r in found if r.data.tags.get(records.ROLE_TAG) != "retrain"
    ]  # not `tuner retrain`'s
    _other_parents(study, tracker, exp_id, parent, report, repair)
    report.runs = len(runs)
    by_id = {r.info.run_id: r for r in runs}
    per_number = Counter(r.data.tags.get(records.TRIAL_NUMBER_TAG) for r in runs)
    # A trial whose worker died before it could write the run's id is linked by the run's tags.
    by_number = {r.data.tags.get(records.TRIAL_NUMBER_TAG): r.info.run_id for r in runs}
    for number, n in per_number.items():
        if n > 1:
            problems.append(f"trial {number} has {n} MLflow runs")

    finished = [t for t in trials if t.state.is_finished()]
    # Trials whose worker died or was stopped have a retry that names them.
    retried = {retried_trial_number(t) for t in trials} - {None}
    linked = set()
    for t in finished:
        reason = str(t.user_attrs.get(records.REASON, ""))
        never_started = (records.ORPHAN_REASON, records.BUDGET_SPENT_REASON)
        if reason in never_started or reason.startswith(records.NOT_STARTED):
            # never started (an orphan claim, opening it failed, no budget): no run of its own;
            # (a retry made by an older version copied its original's attributes, whose run is
            # not this trial's)
            continue
        run_id = t.user_attrs.get(records.RUN_ID) or by_number.get(str(t.number))
        run = by_id.get(run_id) if run_id else None
        if run is None:
            lacks = t.user_attrs.get(records.UNRECORDED)
            why = f" (MLflow was down: it lacks {lacks})" if lacks else ""
            problems.append(f"trial {t.number} ({t.state.name}) has no MLflow run{why}")
            continue
        if t.user_attrs.get(records.UNRECORDED):
            lacks = t.user_attrs[records.UNRECORDED]
            problems.append(f"trial {t.number}'s run lacks {lacks} (MLflow was down)")
        linked.add(run_id)
        if run.data.tags.get(records.TRIAL_NUMBER_TAG) != str(t.number):
            problems.append(f"run {run_id} does not link back to trial {t.number}")
        expected = _expected_status(t, retried)
        if run.info.status == "RUNNING" and repair:
            reason = t.user_attrs.get(records.REASON) or "closed by tuner check --repair"
            tracker.close_run(run.info.run_id, expected, reason)
            report.repaired.append(f"closed run {run_id} of trial {t.number} as {expected}")
        elif run.info.status != expected:
            problems.append(
                f"trial {t.number} is {t.state.name} but its run {run_id} is {run.info.status}"
            )
    numbers_known = {str(t.number) for t in trials}
    running = {str(t.number) for t in trials if t.state == TrialState.RUNNING}
    for run in runs:
        number = run.data.tags.get(records.TRIAL_NUMBER_TAG)
        if number not in numbers_known:  # a closed one is history; a RUNNING one, a leak
            if run.info.status == "RUNNING" and repair:
                tracker.close_run(run.info.run_id, INTERRUPTED_STATUS, "no such trial")
                report.repaired.append(f"closed run {run.info.run_id} of no trial ({number})")
            elif run.info.status == "RUNNING":
                problems.append(
                    f"run {run.info.run_id} is RUNNING and names trial {number}, which is not here"
                )
            continue
        if number in running:
            continue  # its trial is live, or reported RUNNING above: its run stays open
        if run.info.run_id not in linked and run.info.status == "RUNNING":
            if repair:
                tracker.close_run(run.info.run_id, INTERRUPTED_STATUS, "no live trial")
                report.repaired.append(f"closed orphan run {run.info.run_id}")
            else:
                problems.append(f"run {run.info.run_id} is RUNNING without a live trial")
    c = studies.counts(study, trials)  # as read after the repair's sweep
    target = study.user_attrs.get(records.TARGET)
    done = c["complete"] + c["pruned"]
    left = studies.budget_left(study, trials)
    unfinished = not studies.target_reached(study, c, left=left)  # a worker would run more
    parent_run = tracker.client.get_run(parent)
    if parent_run.info.status == "RUNNING" and not c["running"]:
        if repair:
            status = INTERRUPTED_STATUS if unfinished else "FINISHED"
            tracker.client.set_terminated(parent, status)
            report.repaired.append(f"closed parent run {parent} as {status}")
        elif unfinished:  # made by `tuner create`, or its last worker stopped without closing it
            report.notes.append(
                f"parent run {parent} is open, awaiting workers (`tuner check --repair` closes "
                "it if none will come)"
            )
        else:
            problems.append(f"parent run {parent} is RUNNING though the study is done")
    if unfinished and target != records.NO_TRIAL_TARGET:
        report.notes.append(
            f"unfinished: {done} of {target} trials complete or pruned, {c['waiting']} waiting; "
            "the same `tuner run` command, or a `tuner worker`, continues it"
        )
    elif unfinished:
        report.notes.append(
            f"unfinished: {studies.epochs_used(study)} of {study.user_attrs.get(records.BUDGET)} "
            "epochs of the budget used; the same `tuner run` command, or a `tuner worker`, "
            "continues it"
        )
    elif target is not None and done > target and left != 0:
        # two workers without the claim lock (through a gRPC proxy) may each take the last one
        problems.append(f"{done} complete or pruned trials, target {target}")
    best = studies.best_trial(study)
    value = None if best is None else studies.value(best)
    if c["complete"] and (value is None or not math.isfinite(value)):
        problems.append("the best value is not finite")
    return report


def _fail_stale(study: Any, report: Report) -> None:
    """Fail the RUNNING trials whose worker is gone, and queue their retries, before any run is
    closed. A fresh process cannot tell whether the database was just down (then every
    heartbeat is old through no fault of the workers), so it waits one grace period for live
    workers to beat again, rather than skip the sweep."""
    import time

    from tuner.retry import seconds_since_outage

    storage = liveness.rdb(study._storage)
    interval = getattr(storage, "heartbeat_interval", None)
    if interval is None or not study.get_trials(states=(TrialState.RUNNING,)):
        return
    wait = (storage.grace_period or 0) + interval - seconds_since_outage()
    if wait > 0:
        report.repaired.append(f"waited {wait:.0f} s for live workers' heartbeats")
        time.sleep(wait)
    # read after the wait: a trial that finished meanwhile was not failed by this repair
    running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    orphans = liveness.sweep(study, storage)
    now_running = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
    for number in running:
        if number in orphans:
            report.repaired.append(f"failed orphan trial {number} (no heartbeat ever)")
        elif number not in now_running:
            report.repaired.append(f"failed stale trial {number}, queued its retry")


def _other_parents(
    study: Any, tracker: Tracker, exp_id: str, parent: str, report: Report, repair: bool
) -> None:
    """A second top-level run in the study's experiment (two `tuner create` racing once left
    one RUNNING, where no check looked): closed by a repair."""
    tops = tracker.client.search_runs(
        [exp_id], filter_string="attributes.status = 'RUNNING'", max_results=50_000
    )
    for run in tops:
        if run.info.run_id == parent or run.data.tags.get(records.ROLE_TAG) != "study":
            continue  # the study's own, a child, or a run a user made there himself
        if repair:
            tracker.close_run(run.info.run_id, INTERRUPTED_STATUS, "a second parent run")
            report.repaired.append(f"closed second parent run {run.info.run_id}")
        else:
            report.problems.append(
                f"run {run.info.run_id} is a second parent run of study {study.study_name!r}, "
                "RUNNING"
            )


def _expected_status(trial: Any, retried: set[Any]) -> str:
    # A trial failed by the heartbeat (its worker died) carries no reason of its own: the dead
    # worker could not write one. Interrupted trials say so. Both map to KILLED.
    reason = trial.user_attrs.get(records.REASON)
    # A worker killed while recording its end may have left its reason on the trial, failed then
    # as stale: the retry tells.
    if trial.state == TrialState.FAIL and (
        reason is None or reason.startswith(records.INTERRUPTED_REASON) or trial.number in retried
    ):
        return INTERRUPTED_STATUS
    return RUN_STATUS[trial.state.name]
