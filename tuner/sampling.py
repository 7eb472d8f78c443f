"""``sample(trial, space) -> TrialConfig``: one trial's hyperparameters, pure.

Works with any Optuna trial (``optuna.trial.FixedTrial`` in tests). Conditional parameters are
only suggested when they apply (``momentum`` for SGD/RMSprop, ``merge_mode`` when bidirectional,
``units_1..units_N`` only up to the sampled depth), so the sampler never sees unused values.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuner.config import PARAMS, TrialConfig
from tuner.space import Space, per_layer_names

MIN_UNITS = 4  # the floor of shrinking units


def sample(
    trial: Any,
    space: Space,
    *,
    max_epochs: int | None = None,
    seed: int = 0,
    defaults: dict[str, Any] | None = None,
) -> TrialConfig:
    """The trial's config. ``defaults`` overrides ``TrialConfig``'s defaults for parameters the
    space leaves unset (a classifier's window defaults to the whole sequence)."""
    defaults = defaults or {}
    values: dict[str, Any] = {}
    for name, spec in PARAMS.items():
        if name == "units":
            continue  # below: one value, or one per layer
        if any(
            values.get(other, PARAMS[other].default(other)) not in allowed
            for other, allowed in spec.conditions
        ):
            continue
        if name in space.searched:
            values[name] = suggest(trial, name, space.searched[name])
        elif name in space.fixed:
            values[name] = space.fixed[name]
        else:
            values[name] = defaults.get(name, spec.default(name))

    layers = values.pop("layers")
    schedule = values["units_schedule"]
    dist = space.searched.get("units")
    if schedule == "per_layer" and dist is not None:
        units = [suggest(trial, n, dist) for n in per_layer_names(layers)]
    else:
        first = (
            suggest(trial, "units", dist)
            if dist is not None
            else space.fixed.get("units", PARAMS["units"].default("units"))
        )
        shrink = schedule == "shrink"
        units = [max(MIN_UNITS, first // 2**i) if shrink else first for i in range(layers)]
    epochs = space.capped_epochs(max_epochs)
    drawn = values.pop("epochs")
    if "epochs" in space.searched or "epochs" in space.fixed:  # this trial's own, within the cap
        epochs = min(int(drawn), epochs)
    return TrialConfig(
        layers=layers,
        units=tuple(units),
        epochs=epochs,
        patience=space.patience,
        min_steps_per_epoch=space.min_steps_per_epoch,
        seed=seed,
        **values,
    )


def suggest(trial: Any, name: str, dist: BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` from ``dist`` through the public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"unsupported distribution {dist!r}")
