"""The study invariant, checked once for tests and for ``tuner check`` after an incident.

With no worker running, a healthy study has: no Optuna trial and no MLflow run left RUNNING;
trial numbers unique and contiguous; every finished trial linked to exactly one MLflow child run
of the study's parent run, and that run linked back, with the status its state maps to; the
target reached by COMPLETE + PRUNED trials (or the epoch budget spent); a finite best value.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

from tuner import study as studies
from tuner.tracking import INTERRUPTED_STATUS, ROLE_TAG, RUN_STATUS, Tracker


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    trials: int = 0
    runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(study: Any, tracker: Tracker, *, repair: bool = False) -> Report:
    """Check the invariant. With ``repair`` (the study's storage must have heartbeats on): fail
    trials whose worker is gone (stale heartbeat: retried; orphan claims), then close MLflow runs
    whose trial is no longer running and the parent run of an idle study."""
    report = Report()
    if repair:
        storage = study._storage
        stale = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
        orphans = studies.sweep(study, storage)
        now_running = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
        for number in stale:
            if number in orphans:
                report.repaired.append(f"failed orphan trial {number} (no heartbeat ever)")
            elif number not in now_running:
                report.repaired.append(f"failed stale trial {number}, queued its retry")
    trials = study.get_trials(deepcopy=False)
    report.trials = len(trials)
    problems = report.problems

    numbers = sorted(t.number for t in trials)
    if numbers != list(range(len(trials))):
        problems.append(f"trial numbers are not unique and contiguous: {numbers}")
    for t in trials:
        if t.state == TrialState.RUNNING:
            problems.append(f"trial {t.number} is RUNNING")

    parent = study.user_attrs.get(studies.PARENT_RUN_ATTR)
    exp_id = study.user_attrs.get(studies.EXPERIMENT_ATTR)
    if parent is None or exp_id is None:
        problems.append("the study has no MLflow experiment or parent run")
        return report
    found = tracker.client.search_runs(
        [exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=50_000
    )
    runs = [r for r in found if r.data.tags.get(ROLE_TAG) != "retrain"]  # not `tuner retrain`'s
    report.runs = len(runs)
    by_id = {r.info.run_id: r for r in runs}
    per_number = Counter(r.data.tags.get("optuna.trial_number") for r in runs)
    # A trial whose worker died before it could write the run's id is linked by the run's tags.
    by_number = {r.data.tags.get("optuna.trial_number"): r.info.run_id for r in runs}
    for number, n in per_number.items():
        if n > 1:
            problems.append(f"trial {number} has {n} MLflow runs")

    finished = [t for t in trials if t.state.is_finished()]
    # Trials whose worker died or was stopped have a retry that names them.
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    linked = set()
    for t in finished:
        run_id = t.user_attrs.get("mlflow_run_id") or by_number.get(str(t.number))
        run = by_id.get(run_id) if run_id else None
        if run is None and t.user_attrs.get("reason") == studies.ORPHAN_REASON:
            continue  # never started: no parameters, no run
        if run is None:
            lacks = t.user_attrs.get("mlflow_unrecorded")
            why = f" (MLflow was down: it lacks {lacks})" if lacks else ""
            problems.append(f"trial {t.number} ({t.state.name}) has no MLflow run{why}")
            continue
        if t.user_attrs.get("mlflow_unrecorded"):
            lacks = t.user_attrs["mlflow_unrecorded"]
            problems.append(f"trial {t.number}'s run lacks {lacks} (MLflow was down)")
        linked.add(run_id)
        if run.data.tags.get("optuna.trial_number") != str(t.number):
            problems.append(f"run {run_id} does not link back to trial {t.number}")
        expected = _expected_status(t, retried)
        if run.info.status == "RUNNING" and repair:
            reason = t.user_attrs.get("reason") or "closed by tuner check --repair"
            tracker.close_run(run.info.run_id, expected, reason)
            report.repaired.append(f"closed run {run_id} of trial {t.number} as {expected}")
        elif run.info.status != expected:
            problems.append(
                f"trial {t.number} is {t.state.name} but its run {run_id} is {run.info.status}"
            )
    for run in runs:
        if run.info.run_id not in linked and run.info.status == "RUNNING":
            if repair:
                tracker.close_run(run.info.run_id, INTERRUPTED_STATUS, "no live trial")
                report.repaired.append(f"closed orphan run {run.info.run_id}")
            else:
                problems.append(f"run {run.info.run_id} is RUNNING without a live trial")
    parent_run = tracker.client.get_run(parent)
    if parent_run.info.status == "RUNNING" and not any(
        t.state == TrialState.RUNNING for t in trials
    ):
        if repair:
            done = studies.target_reached(study)
            tracker.client.set_terminated(parent, "FINISHED" if done else INTERRUPTED_STATUS)
            report.repaired.append(f"finished parent run {parent}")
        else:
            problems.append(f"parent run {parent} is RUNNING with no trial running")

    c = studies.counts(study)
    target = study.user_attrs.get(studies.TARGET_ATTR)
    spent = studies.budget_left(study) == 0  # an epoch budget ends a study before its target
    if (
        target is not None
        and c["complete"] + c["pruned"] != target
        and c["waiting"] == 0
        and not spent
    ):
        problems.append(f"{c['complete'] + c['pruned']} complete or pruned trials, target {target}")
    best = studies.best_trial(study)
    if c["complete"] and (best is None or best.value is None or not math.isfinite(best.value)):
        problems.append("the best value is not finite")
    return report


def _expected_status(trial: Any, retried: set[Any]) -> str:
    # A trial failed by the heartbeat (its worker died) carries no reason of its own: the dead
    # worker could not write one. Interrupted trials say so. Both map to KILLED.
    reason = trial.user_attrs.get("reason")
    # A worker killed while recording its end may have left its reason on the trial, failed then
    # as stale: the retry tells.
    if trial.state == TrialState.FAIL and (
        reason is None or reason.startswith("interrupted") or trial.number in retried
    ):
        return INTERRUPTED_STATUS
    return RUN_STATUS[trial.state.name]
