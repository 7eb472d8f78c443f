"""Create or join an Optuna study, and read where it stands: trial counts, target, budget.

The resolved spec (``records.StudySpec``: space, data options, caps) and a fingerprint of the
data live on the study as user attributes, so a worker anywhere needs only the storage URL, the
study name and the data file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.errors import InputError
from tuner.records import StudySpec

if TYPE_CHECKING:
    from tuner.space import Space

# Trials that count towards the target: finished with a result, or still to finish.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def create_or_resume(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: Space,
    spec: StudySpec,
    target: int | None,
) -> tuple[optuna.Study, bool]:
    """Create the study with its spec, or resume it if it exists with the same spec.

    Returns the study and whether it was created. ``target``: its trial target (None: a new
    study's default, a resumed study's own). Enqueues the space's ``start_with`` trials, the
    first ``target`` of them (a resume with a larger target enqueues the next ones). Raises
    ``InputError`` if the study exists with another space or other data.
    """
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(records.SPEC)
        if stored is None:
            raise InputError(f"study {name!r} exists but was not created by tuner", field="--study")
        if spec.window_auto and _without_window(stored.get("space")) == _without_window(spec.space):
            spec = replace(spec, space=stored["space"])  # the window range it was resolved to
        if _defaulted_before(stored.get("space"), spec.space):
            spec = replace(spec, space=stored["space"])  # the objective it was created with
        # The sampler and pruner may change on resume; the space's parameters and the data not.
        # The options first: a changed --horizon also changes the data's fingerprint, and the
        # options name what changed. The file's name may change: its content may not.
        for key, what in (
            ("data", "data options"),
            ("fingerprint", "data"),
            ("space", "search space"),
        ):
            ours, theirs = stored.get(key), getattr(spec, key)
            if key == "data":
                ours, theirs = _data_now(ours), _data_now(theirs)
                ours, theirs = _without_file(ours), _without_file(theirs)
            if _without_strategy(ours) != _without_strategy(theirs):
                raise InputError(
                    f"study {name!r} exists with different {what}"
                    f"{_differences(_without_strategy(ours), _without_strategy(theirs))}; "
                    "resume it with the same inputs or name a new study with --study",
                    field="--study",
                )
        before = int(existing.user_attrs.get(records.TARGET) or 0)
        if target is None:  # the same command again: its target, not the default's
            target = before or records.DEFAULT_TRIALS
        _note_resume_changes(stored, spec, before, target)
        existing.set_user_attr(records.SPEC, spec.to_dict())
        existing.set_user_attr(records.TARGET, target)
        resumed = load(storage, name)[0]
        for params in space.start_with[before:target]:  # those a smaller target left out
            resumed.enqueue_trial(params, skip_if_exists=True)
        return resumed, False

    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=space.directions,  # type: ignore[arg-type]
            sampler=space.make_sampler(),
            pruner=space.make_pruner(spec.max_epochs),
        )
    except optuna.exceptions.DuplicatedStudyError:  # created meanwhile (a storage with no lock)
        return create_or_resume(storage, name, space, spec, target)
    target = records.DEFAULT_TRIALS if target is None else target
    study.set_user_attr(records.SPEC, spec.to_dict())
    study.set_user_attr(records.TARGET, target)
    if space.costs:
        study.set_metric_names(list(space.objectives))
    for params in space.start_with[:target]:  # --trials 1 runs one trial, the first of them
        study.enqueue_trial(params, skip_if_exists=True)
    return study, True


def _note_resume_changes(stored: dict[str, Any], spec: StudySpec, before: int, target: int) -> None:
    """What a resume may change and the user should know it did: a lower trial target, and
    the epoch cap (trials trained under different caps are ranked together)."""
    from tuner.log import log

    if target < before != records.NO_TRIAL_TARGET:
        log.info("note: the study's trial target goes down from %d to %d", before, target)
    cap = stored.get("max_epochs")
    if cap != spec.max_epochs:
        log.info(
            "note: trials now train up to %s epochs (--max-epochs), the study's earlier ones up "
            "to %s: they are ranked together",
            spec.max_epochs or "the space's",
            cap or "the space's",
        )


def _without_window(value: Any) -> Any:
    """A stored space without its window range and sampler/pruner (compared on resume)."""
    value = _without_strategy(value)
    if isinstance(value, dict) and isinstance(value.get("params"), dict):
        params = {k: v for k, v in value["params"].items() if k != "window"}
        starts = [
            {k: v for k, v in e.items() if k != "window"} if isinstance(e, dict) else e
            for e in value.get("start_with") or []
        ]
        return {**value, "params": params, "start_with": starts}
    return value


def _defaulted_before(stored: Any, space: dict[str, Any]) -> bool:
    """Whether ``stored`` is ``space`` but for the objective this version chose for it: a
    study of several targets created before ``val_nmae`` existed named no objective and keeps
    the one it was created with."""
    return (
        isinstance(stored, dict)
        and "objective" not in stored
        and space.get("objective") == "val_nmae"
        and _without_strategy(stored)
        == _without_strategy({k: v for k, v in space.items() if k != "objective"})
    )


def _differences(stored: Any, now: Any, limit: int = 3) -> str:
    """``" (time: 'year' then, None now)"``: what differs between two stored mappings, the
    first ``limit`` keys; nothing when they are not both mappings (a data fingerprint)."""
    if not isinstance(stored, dict) or not isinstance(now, dict):
        return ""
    stored, now = _flat(stored), _flat(now)
    keys = [k for k in {**stored, **now} if stored.get(k) != now.get(k)]
    shown = [f"{k}: {_brief(stored.get(k))} then, {_brief(now.get(k))} now" for k in keys[:limit]]
    more = f"; {len(keys) - limit} more" if len(keys) > limit else ""
    return f" ({'; '.join(shown)}{more})" if shown else ""


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``params.units``), so a difference names its leaf."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _brief(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _data_now(stored: Any) -> Any:
    """Stored data options as this version writes them (an older study's spec lacks the
    options added since, which take their defaults)."""
    from tuner.data import DataOptions

    if not isinstance(stored, dict) or "file" not in stored:
        return stored
    try:
        return DataOptions.from_spec(stored, stored["file"]).to_spec()
    except TypeError:  # an option this version does not know: compared as it is
        return stored


def _without_file(value: Any) -> Any:
    return {k: v for k, v in value.items() if k != "file"} if isinstance(value, dict) else value


def _without_strategy(value: Any) -> Any:
    if isinstance(value, dict) and "params" in value:
        return {k: v for k, v in value.items() if k not in ("sampler", "pruner")}
    return value


def load(storage: optuna.storages.BaseStorage, name: str) -> tuple[optuna.Study, StudySpec]:
    """Join an existing study with the sampler and pruner its spec names."""
    from tuner.space import parse_space
    from tuner.strategies import SAMPLER_STREAM

    try:
        plain = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise InputError(
            f"no study {name!r} in this storage; studies: {', '.join(known) or 'none'}",
            field="--study",
        ) from None
    raw = plain.user_attrs.get(records.SPEC)
    if raw is None:
        raise InputError(f"study {name!r} was not created by tuner", field="--study")
    spec = StudySpec.from_dict(raw)
    space = parse_space(spec.space, source=f"study {name}", stored=True)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=space.make_sampler(stream=SAMPLER_STREAM),
        pruner=space.make_pruner(spec.max_epochs),
    )
    return study, spec


def only_study_name(storage: optuna.storages.BaseStorage) -> str:
    """The name of the single study in ``storage`` (for commands run without ``--study``)."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(
            "no study in this storage yet; start one with `tuner run`", field="--study"
        )
    raise InputError(f"several studies here, name one: {', '.join(names)}", field="--study")


def counts(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> dict[str, int]:
    """Number of trials per state, plus ``counted`` (those that count towards the target); of
    the FAIL ones, ``not_run`` (queued but never run: the epoch budget was spent first),
    ``interrupted`` (stopped by a signal or a dead worker, and queued again) and ``failed``
    (the rest: they ran and failed). ``trials`` is the study's trials when the caller has read
    them already."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    repeated = retried_numbers(trials)
    out = {s.name.lower(): 0 for s in TrialState}
    out["not_run"] = out["interrupted"] = 0
    for t in trials:
        out[t.state.name.lower()] += 1
        if t.state != TrialState.FAIL:
            continue
        if t.user_attrs.get(records.REASON) == records.BUDGET_SPENT_REASON:
            out["not_run"] += 1
        elif t.number in repeated:
            out["interrupted"] += 1
    out["counted"] = sum(out[s.name.lower()] for s in COUNTED)
    out["failed"] = out["fail"] - out["not_run"] - out["interrupted"]
    return out


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """The numbers of the trials a retry repeats (each retry names them all, the first one
    first)."""
    history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history
    return {n for t in trials for n in history(t)}


def failed_text(c: dict[str, int]) -> str:
    """``"1 failed"``, and apart the FAIL trials that are not the configuration's fault:
    ``"0 failed, 1 interrupted (queued again ...), 1 not run (...)"``."""
    text = f"{c['failed']} failed"
    if c["interrupted"]:
        text += f", {c['interrupted']} interrupted (queued again as a new trial)"
    return text + (f", {c['not_run']} not run (the budget was spent first)" if c["not_run"] else "")


_UNKNOWN: Any = object()


def target_reached(
    study: optuna.Study,
    c: dict[str, int] | None = None,
    *,
    left: int | None = _UNKNOWN,
    attrs: dict[str, Any] | None = None,
) -> bool:
    """No trial left to run: the counted trials reached the target and none is queued, or the
    study's epoch budget is spent. ``c`` is ``counts(study)``, ``left`` is
    ``budget_left(study)`` and ``attrs`` the study's user attributes when the caller has them
    already (each is a storage read)."""
    c = counts(study) if c is None else c
    attrs = study.user_attrs if attrs is None else attrs
    if c["waiting"] == 0 and c["counted"] >= attrs.get(records.TARGET, 0):
        return True
    return (budget_left(study) if left is _UNKNOWN else left) == 0


def epochs_used(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
    """Epochs of the study's budget used: a finished trial's ``epochs_run`` (else the epochs it
    reported: a trial that failed), and for a running trial what it reserved when it was
    claimed (``epochs``) or has reported, whichever is more."""
    total = 0
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        run = t.user_attrs.get(records.EPOCHS_RUN)
        reported = len(t.intermediate_values)
        if run is not None:
            total += int(run)
        elif t.state == TrialState.RUNNING:
            total += max(reported, int(t.user_attrs.get(records.EPOCHS, 0)))
        else:
            total += reported
    return total


def budget_left(
    study: optuna.Study,
    trials: list[FrozenTrial] | None = None,
    attrs: dict[str, Any] | None = None,
) -> int | None:
    """Epochs left of the study's budget (``--budget-epochs``), or None without a budget."""
    budget = (study.user_attrs if attrs is None else attrs).get(records.BUDGET)
    if budget is None:
        return None
    return max(0, int(budget) - epochs_used(study, trials))


def fail_waiting(study: optuna.Study, reason: str) -> list[int]:
    """Fail every queued (WAITING) trial with ``reason``; returns their numbers."""
    storage, failed = study._storage, []
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            storage.set_trial_user_attr(t._trial_id, records.REASON, reason)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # claimed and finished meanwhile: not ours to fail
        failed.append(t.number)
    return failed


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial with the best (first) objective: with several objectives, the end of the
    Pareto front where the first is best (the model ``tuner predict`` uses by default)."""
    if len(study.directions) == 1:
        try:
            return study.best_trial
        except ValueError:
            return None
    front = _front(study)  # a trial best on the first objective, ties aside, is on it
    return front[0] if front else None


def _front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front of a study of several objectives, best first objective first."""
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))


def value(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's (first) objective value."""
    return None if trial.values is None else trial.values[0]


def pareto_front(study: optuna.Study) -> list[dict[str, Any]]:
    """With several objectives, the trials no other beats on every one (best first value
    first): each trial's number, ``values`` by objective name, and ``params``; else empty."""
    if len(study.directions) == 1:
        return []
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    return [
        {"trial": t.number, "values": dict(zip(names, t.values, strict=True)), "params": t.params}
        for t in _front(study)
    ]


def check_fingerprint(spec: StudySpec, fingerprint: str, data_path: str) -> None:
    if spec.fingerprint != fingerprint:
        raise InputError(
            f"this data differs from the study's ({fingerprint[:19]} vs "
            f"{spec.fingerprint[:19]}); every worker must read the same data",
            source=data_path,
            field="fingerprint",
        )
