"""Create or join an Optuna study; its spec, samplers and pruners by name.

The resolved spec (space, data options, target trial count) and a fingerprint of the data live on
the study as user attributes, so a worker anywhere needs only the storage URL, the study name and
the data file.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tuner.errors import InputError

if TYPE_CHECKING:
    from tuner.space import Space

SPEC_ATTR = "tuner_spec"
TARGET_ATTR = "tuner_target_trials"
EXPERIMENT_ATTR = "mlflow_experiment_id"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
BASELINES_ATTR = "tuner_baselines"  # the study's baseline scores (tuner.baselines.compute)
BUDGET_ATTR = "tuner_budget_epochs"  # the study's compute budget: epochs of all trials together
EPOCHS_ATTR = "epochs"  # on a trial: the epochs it trains (reserved at its claim under a budget)
# Trials that count towards the target: finished with a result, or still to finish.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _grid(space: Space, **kwargs: Any) -> optuna.samplers.BaseSampler:
    from tuner.space import per_layer_names

    grid: dict[str, list[Any]] = {}
    names = dict(space.searched)
    if "units" in names:
        for extra in per_layer_names(int(max(space.candidates("layers")))):
            names[extra] = names["units"]
    for name, dist in names.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None and not dist.log:
            n = round((dist.high - dist.low) / dist.step)
            grid[name] = [dist.low + i * dist.step for i in range(n + 1)]
        else:
            raise InputError(
                f"the grid sampler needs every searched parameter to be a list or a linear range "
                f"with a step; {name} is not",
                field="name",
            )
    return optuna.samplers.GridSampler(grid, seed=space.seed, **kwargs)


def _cmaes(space: Space, **kwargs: Any) -> optuna.samplers.BaseSampler:
    # Optuna builds it without its package and fails at the first trial, in the worker
    if importlib.util.find_spec("cmaes") is None:
        raise InputError(
            "the cmaes sampler needs the cmaes package: pip install 'tuner[cmaes]'", field="name"
        )
    return optuna.samplers.CmaEsSampler(seed=space.seed, **kwargs)


def _gp(space: Space, **kwargs: Any) -> optuna.samplers.BaseSampler:
    if importlib.util.find_spec("torch") is None:
        raise InputError("the gp sampler needs PyTorch: pip install 'tuner[gp]'", field="name")
    return optuna.samplers.GPSampler(seed=space.seed, **kwargs)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": lambda space, **kw: optuna.samplers.TPESampler(seed=space.seed, **kw),
    "random": lambda space, **kw: optuna.samplers.RandomSampler(seed=space.seed, **kw),
    "grid": _grid,
    "cmaes": lambda space, **kw: _cmaes(space, **kw),
    "gp": _gp,
    "qmc": lambda space, **kw: optuna.samplers.QMCSampler(seed=space.seed, **kw),
}


def _wrapped_conf(wrapped: Any) -> dict[str, Any]:
    """The conf of the pruner a ``patient`` pruner wraps: a name or a mapping (None: none)."""
    return {"name": wrapped} if isinstance(wrapped, str) else dict(wrapped or {"name": "none"})


def _patient(space: Space, wrapped: Any = "median", **kwargs: Any) -> optuna.pruners.BasePruner:
    inner = _build(PRUNERS, _wrapped_conf(wrapped), space, "pruner")
    return optuna.pruners.PatientPruner(inner, **kwargs)


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": lambda space, **kw: optuna.pruners.MedianPruner(**kw),
    "percentile": lambda space, **kw: optuna.pruners.PercentilePruner(**kw),
    "successive_halving": lambda space, **kw: optuna.pruners.SuccessiveHalvingPruner(**kw),
    "hyperband": lambda space, **kw: optuna.pruners.HyperbandPruner(
        **{"max_resource": space.epochs, **kw}
    ),
    "patient": _patient,
    "threshold": lambda space, **kw: optuna.pruners.ThresholdPruner(**kw),
    "none": lambda space, **kw: optuna.pruners.NopPruner(**kw),
}


def _build(registry: dict[str, Callable[..., Any]], conf: dict[str, Any], space: Space, what: str):
    kwargs = dict(conf)
    name = kwargs.pop("name")
    factory = registry.get(name)
    if factory is None:
        raise InputError(f"unknown {what} {name!r}; valid: {', '.join(registry)}", field="name")
    try:
        return factory(space, **kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as e:
        raise InputError(f"invalid arguments for {what} {name!r}: {e}", field=None) from None


# Samplers whose workers must share one seed: QMC indexes one scrambled sequence by trial number.
SHARED_SEED = ("qmc", "grid")


# Each worker process draws its sampler's random stream once, at random: a seed from the process
# id collided across containers (each container's first process has the same pid), so replicas
# proposed the same start-up configurations. Every trial records the seed it was sampled with.
SAMPLER_STREAM = secrets.randbits(31)


def sampler_seed(space: Space) -> int:
    """The seed of this process's sampler for ``space`` (QMC and grid share the space's)."""
    if space.sampler["name"] in SHARED_SEED:
        return space.seed
    return (space.seed + SAMPLER_STREAM) % 2**31


def make_sampler(space: Space, stream: int = 0) -> optuna.samplers.BaseSampler:
    """The space's sampler. ``stream`` offsets the seed so that worker processes draw different
    random numbers: with one seed, parallel workers would propose the same first configurations.
    """
    if stream and space.sampler["name"] not in SHARED_SEED:
        space = replace(space, seed=(space.seed + stream) % 2**31)
    return _build(SAMPLERS, space.sampler, space, "sampler")


def make_pruner(space: Space, max_epochs: int | None = None) -> optuna.pruners.BasePruner:
    """The space's pruner; ``max_epochs`` (``--max-epochs``) caps the epochs a trial runs, and
    so Hyperband's largest resource: its brackets must fit the epochs trials can reach."""
    if max_epochs is not None and max_epochs < space.epochs:
        space = replace(space, epochs=max_epochs)
    return _build(PRUNERS, space.pruner, space, "pruner")


def prunes_from(conf: dict[str, Any]) -> int | None:
    """The first step (epoch) at which the pruner ``conf`` can prune a trial; None if never.

    Asking the pruner costs storage round trips (the trial and the study's trials) every epoch;
    before its warm-up (median, percentile: ``n_warmup_steps``) or with ``none`` the answer is
    known to be no, so the worker does not ask."""
    name = conf.get("name")
    if name == "none":
        return None
    if name in ("median", "percentile"):
        return int(conf.get("n_warmup_steps", 0))
    if name == "patient":
        return prunes_from(_wrapped_conf(conf.get("wrapped", "median")))
    return 0


def create_or_resume(
    storage: optuna.storages.BaseStorage, name: str, space: Space, spec: dict[str, Any], target: int
) -> tuple[optuna.Study, bool]:
    """Create the study with its spec, or resume it if it exists with the same spec.

    Returns the study and whether it was created. Enqueues the space's ``start_with`` trials on
    creation. Raises ``InputError`` if the study exists with another space or other data.
    """
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(SPEC_ATTR)
        if stored is None:
            raise InputError(f"study {name!r} exists but was not created by tuner", field="--study")
        if spec.get("window_auto") and _without_window(stored.get("space")) == _without_window(
            spec.get("space")
        ):
            spec = {**spec, "space": stored["space"]}  # the window range it was resolved to
        # The sampler and pruner may change on resume; the space's parameters and the data not.
        for key, what in (
            ("fingerprint", "data"),
            ("space", "search space"),
            ("data", "data options"),
        ):
            if _without_strategy(stored.get(key)) != _without_strategy(spec.get(key)):
                raise InputError(
                    f"study {name!r} exists with different {what}; resume it with the same "
                    f"inputs or name a new study with --study",
                    field="--study",
                )
        existing.set_user_attr(SPEC_ATTR, spec)
        existing.set_user_attr(TARGET_ATTR, target)
        return load(storage, name)[0], False

    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction=space.direction,
            sampler=make_sampler(space),
            pruner=make_pruner(space, spec.get("max_epochs")),
        )
    except optuna.exceptions.DuplicatedStudyError:  # created meanwhile (a storage with no lock)
        return create_or_resume(storage, name, space, spec, target)
    study.set_user_attr(SPEC_ATTR, spec)
    study.set_user_attr(TARGET_ATTR, target)
    for params in space.start_with:
        study.enqueue_trial(params, skip_if_exists=True)
    return study, True


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


def _without_strategy(value: Any) -> Any:
    if isinstance(value, dict) and "params" in value:
        return {k: v for k, v in value.items() if k not in ("sampler", "pruner")}
    return value


def load(storage: optuna.storages.BaseStorage, name: str) -> tuple[optuna.Study, dict[str, Any]]:
    """Join an existing study with the sampler and pruner its spec names."""
    from tuner.space import parse_space

    try:
        plain = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise InputError(
            f"no study {name!r} in this storage; studies: {', '.join(known) or 'none'}",
            field="--study",
        ) from None
    spec = plain.user_attrs.get(SPEC_ATTR)
    if spec is None:
        raise InputError(f"study {name!r} was not created by tuner", field="--study")
    space = parse_space(spec["space"], source=f"study {name}")
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(space, stream=SAMPLER_STREAM),
        pruner=make_pruner(space, spec.get("max_epochs")),
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


def counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state, plus ``counted`` (those that count towards the target)."""
    out = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] += 1
    out["counted"] = sum(out[s.name.lower()] for s in COUNTED)
    return out


_UNKNOWN: Any = object()


def target_reached(
    study: optuna.Study, c: dict[str, int] | None = None, *, left: int | None = _UNKNOWN
) -> bool:
    """No trial left to run: the counted trials reached the target and none is queued, or the
    study's epoch budget is spent. ``c`` is ``counts(study)`` and ``left`` is
    ``budget_left(study)`` when the caller has them already."""
    c = counts(study) if c is None else c
    if c["waiting"] == 0 and c["counted"] >= study.user_attrs.get(TARGET_ATTR, 0):
        return True
    return (budget_left(study) if left is _UNKNOWN else left) == 0


def epochs_used(study: optuna.Study) -> int:
    """Epochs of the study's budget used: a finished trial's ``epochs_run`` (else the epochs it
    reported: a trial that failed), and for a running trial what it reserved when it was
    claimed (``epochs``) or has reported, whichever is more."""
    total = 0
    for t in study.get_trials(deepcopy=False):
        run = t.user_attrs.get("epochs_run")
        reported = len(t.intermediate_values)
        if run is not None:
            total += int(run)
        elif t.state == TrialState.RUNNING:
            total += max(reported, int(t.user_attrs.get(EPOCHS_ATTR, 0)))
        else:
            total += reported
    return total


def budget_left(study: optuna.Study) -> int | None:
    """Epochs left of the study's budget (``--budget-epochs``), or None without a budget."""
    budget = study.user_attrs.get(BUDGET_ATTR)
    if budget is None:
        return None
    return max(0, int(budget) - epochs_used(study))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


ORPHAN_REASON = "orphan: claimed, but its worker never started it (the claim's answer was lost)"


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
    from tuner.retry import seconds_since_outage

    grace = getattr(storage, "grace_period", None) or 0
    if getattr(storage, "heartbeat_interval", None) is None:
        return []
    if seconds_since_outage() < grace + storage.heartbeat_interval:
        return []
    optuna.storages.fail_stale_trials(study)
    return _fail_orphans(study, storage, older_than=max(3.0 * grace, 120.0))


def _fail_orphans(study: optuna.Study, storage: Any, older_than: float) -> list[int]:
    import datetime

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
            storage.set_trial_user_attr(trial_id, "reason", ORPHAN_REASON)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker swept it first
        failed.append(number)
    return failed


def check_fingerprint(spec: dict[str, Any], fingerprint: str, data_path: str) -> None:
    if spec["fingerprint"] != fingerprint:
        raise InputError(
            f"this data differs from the study's ({fingerprint[:19]} vs "
            f"{spec['fingerprint'][:19]}); every worker must read the same data",
            source=data_path,
            field="fingerprint",
        )
