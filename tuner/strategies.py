"""Samplers and pruners by name, built from plain values (a space's ``sampler:`` and ``pruner:``
mappings, a seed, a grid, an epoch count); ``Space.make_sampler`` and ``Space.make_pruner``
call these with the space's own."""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable
from typing import Any

import optuna

from tuner.errors import InputError

# Each worker process draws its sampler's random stream once, at random: a seed from the process
# id collided across containers (each container's first process has the same pid), so replicas
# proposed the same start-up configurations. Every trial records the seed it was sampled with.
SAMPLER_STREAM = secrets.randbits(31)
# Samplers whose workers must share one seed: QMC indexes one scrambled sequence by trial number,
# and a grid's order follows its seed.
SHARED_SEED = ("qmc", "grid")


def stream_seed(conf: dict[str, Any], seed: int, stream: int) -> int:
    """The seed of a sampler on random stream ``stream`` (QMC and grid: the space's own)."""
    return seed if conf["name"] in SHARED_SEED else (seed + stream) % 2**31


def _needs(package: str, extra: str, what: str) -> None:
    # Optuna builds these without their package and fails at the first trial, in the worker
    if importlib.util.find_spec(package) is None:
        raise InputError(f"{what}: pip install 'tuner[{extra}]'", field="name")


def _cmaes(seed: int, grid: Any, **kw: Any) -> optuna.samplers.BaseSampler:
    _needs("cmaes", "cmaes", "the cmaes sampler needs the cmaes package")
    return optuna.samplers.CmaEsSampler(seed=seed, **kw)


def _gp(seed: int, grid: Any, **kw: Any) -> optuna.samplers.BaseSampler:
    _needs("torch", "gp", "the gp sampler needs PyTorch")
    return optuna.samplers.GPSampler(seed=seed, **kw)


def _grid(seed: int, grid: dict[str, list[Any]] | None, **kw: Any) -> optuna.samplers.BaseSampler:
    assert grid is not None, "a grid sampler needs its grid (Space.grid)"
    return optuna.samplers.GridSampler(grid, seed=seed, **kw)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, grid, **kw: optuna.samplers.TPESampler(seed=seed, **kw),
    "random": lambda seed, grid, **kw: optuna.samplers.RandomSampler(seed=seed, **kw),
    "grid": _grid,
    "cmaes": _cmaes,
    "gp": _gp,
    "qmc": lambda seed, grid, **kw: optuna.samplers.QMCSampler(seed=seed, **kw),
}


def _wrapped_conf(wrapped: Any) -> dict[str, Any]:
    """The conf of the pruner a ``patient`` pruner wraps: a name or a mapping (None: none)."""
    return {"name": wrapped} if isinstance(wrapped, str) else dict(wrapped or {"name": "none"})


def _patient(epochs: int, wrapped: Any = "median", **kw: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.PatientPruner(make_pruner(_wrapped_conf(wrapped), epochs=epochs), **kw)


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": lambda epochs, **kw: optuna.pruners.MedianPruner(**kw),
    "percentile": lambda epochs, **kw: optuna.pruners.PercentilePruner(**kw),
    "successive_halving": lambda epochs, **kw: optuna.pruners.SuccessiveHalvingPruner(**kw),
    # Hyperband's brackets must fit the epochs a trial can reach
    "hyperband": lambda epochs, **kw: optuna.pruners.HyperbandPruner(
        **{"max_resource": epochs, **kw}
    ),
    "patient": _patient,
    "threshold": lambda epochs, **kw: optuna.pruners.ThresholdPruner(**kw),
    "none": lambda epochs, **kw: optuna.pruners.NopPruner(**kw),
}


def make_sampler(
    conf: dict[str, Any], *, seed: int, grid: dict[str, list[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler ``conf`` names (``{"name": ..., **arguments}``), seeded with ``seed``."""
    return _build(SAMPLERS, conf, "sampler", seed=seed, grid=grid)


def make_pruner(conf: dict[str, Any], *, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner ``conf`` names, for trials of at most ``epochs`` epochs."""
    return _build(PRUNERS, conf, "pruner", epochs=epochs)


def _build(registry: dict[str, Callable[..., Any]], conf: dict[str, Any], what: str, **given: Any):
    kwargs = dict(conf)
    name = kwargs.pop("name")
    factory = registry.get(name)
    if factory is None:
        raise InputError(f"unknown {what} {name!r}; valid: {', '.join(registry)}", field="name")
    try:
        return factory(**given, **kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as e:
        raise InputError(f"invalid arguments for {what} {name!r}: {e}", field=None) from None


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


class FirstObjective:
    """A study of several objectives as a pruner sees it: one direction, the first objective's
    (Optuna's pruners read ``study.direction``, which such a study refuses, and its trials
    cannot ``report``: the worker stores each epoch's first objective itself)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._study.directions[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
