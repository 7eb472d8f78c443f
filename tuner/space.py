"""Load and validate a search-space YAML into typed Optuna distributions.

A space file looks like::

    task: forecast            # forecast | classify | text | tag | seq2seq
    epochs: 30                # epoch budget of every trial
    sampler: tpe              # or {name: tpe, n_startup_trials: 10}
    pruner: {name: median, n_warmup_steps: 3}
    params:
      layers: {low: 1, high: 3}                  # a range: searched (ints stay ints)
      units: {low: 16, high: 256, log: true}
      optimizer: [adam, adamw, rmsprop]          # a list: one of these
      activation: tanh                           # one value: fixed
    start_with:                                  # trials enqueued first (textbook configs)
      - {layers: 1, units: 64}

Every error names the file, the line, the field and the value, on one line.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuner import strategies
from tuner.config import CUDNN_REQUIRES, PARAMS, ParamSpec
from tuner.errors import InputError

TASKS = ("forecast", "classify", "text", "tag", "seq2seq")
# Objective per task: its direction. The first is the default. A forecast's val_loss is in
# scaled units of the trial's own loss, so it only compares trials with one scaler and one loss;
# val_mae_original (the validation MAE in the target's units) compares any two trials.
OBJECTIVES: dict[str, dict[str, Literal["minimize", "maximize"]]] = {
    "forecast": {"val_mae_original": "minimize", "val_loss": "minimize", "val_nmae": "minimize"},
    "classify": {"val_loss": "minimize", "val_accuracy": "maximize"},
    "text": {"val_loss": "minimize", "val_accuracy": "maximize"},
    # tag: accuracy for labels, the MAE in the targets' units for values (checked on the data)
    "tag": {"val_loss": "minimize", "val_accuracy": "maximize", "val_mae_original": "minimize"},
    # seq2seq: the accuracy is per token, over each target up to and including its end
    "seq2seq": {"val_loss": "minimize", "val_accuracy": "maximize"},
}
# What a study may weigh against its first objective (a list ``objective``): the model's size
# and its time to predict one batch, both measured on each trial's trained model.
COSTS: dict[str, Literal["minimize", "maximize"]] = {"params": "minimize", "latency_ms": "minimize"}
TOP_LEVEL = (
    "name",
    "description",
    "task",
    "objective",
    "epochs",
    "patience",
    "min_steps_per_epoch",
    "seed",
    "sampler",
    "pruner",
    "params",
    "start_with",
)
RANGE_KEYS = ("low", "high", "log", "step")
# A space is a few dozen lines: these bound what a hostile or mistaken file can cost to read.
MAX_SPACE_BYTES = 1_000_000
MAX_NODES = 20_000  # YAML nodes after aliases are expanded (an alias bomb grows ~9x per level)

Lines = Mapping[tuple[Any, ...], int]


@dataclass(frozen=True)
class Space:
    source: str
    raw: dict[str, Any]  # the validated mapping, as stored on the study
    task: str
    objective: str  # the first objective: what training selects its epoch by and pruning reads
    direction: Literal["minimize", "maximize"]
    epochs: int
    patience: int
    seed: int
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    searched: dict[str, BaseDistribution]
    fixed: dict[str, Any]
    start_with: tuple[dict[str, Any], ...]
    min_steps_per_epoch: int = 0
    window_auto: bool = False  # `window: auto`: the range comes from the data (``with_window``)
    costs: tuple[str, ...] = ()  # the objectives after the first (``COSTS``): a Pareto front
    # the file's line of each setting (by its path, e.g. ("params", "units")), for later checks
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def objectives(self) -> tuple[str, ...]:
        return (self.objective, *self.costs)

    @property
    def directions(self) -> list[str]:
        return [self.direction, *(COSTS[c] for c in self.costs)]

    def with_window(self, low: int, high: int) -> Space:
        """This space with ``window: auto`` replaced by the range ``[low, high]`` (log-scaled
        when it spans 4x or more), as resolved from the data; re-validated."""
        params = {**self.raw["params"], "window": {"low": low, "high": high}}
        if high >= 4 * low:
            params["window"]["log"] = True
        return parse_space({**self.raw, "params": params}, source=self.source)

    def with_objective(self, objective: str) -> Space:
        """This space with another objective (as if its file said so); re-validated."""
        return parse_space({**self.raw, "objective": objective}, source=self.source)

    def candidates(self, name: str) -> list[Any]:
        """Every value ``name`` can take in this space (ranges: their bounds)."""
        if name in self.fixed:
            return [self.fixed[name]]
        dist = self.searched.get(name)
        if isinstance(dist, CategoricalDistribution):
            return list(dist.choices)
        if isinstance(dist, (IntDistribution, FloatDistribution)):
            return [dist.low, dist.high]
        return [PARAMS[name].default(name)]

    def make_sampler(self, stream: int = 0) -> optuna.samplers.BaseSampler:
        """The space's sampler on random stream ``stream``: worker processes draw different
        random numbers (with one seed, parallel workers would propose the same first
        configurations); QMC and grid samplers share the space's seed."""
        grid = self.grid() if self.sampler["name"] == "grid" else None
        seed = strategies.stream_seed(self.sampler, self.seed, stream)
        return strategies.make_sampler(self.sampler, seed=seed, grid=grid)

    def sampler_seed(self) -> int:
        """The seed of this process's sampler (what each trial records)."""
        return strategies.stream_seed(self.sampler, self.seed, strategies.SAMPLER_STREAM)

    def capped_epochs(self, max_epochs: int | None) -> int:
        """The most epochs a trial runs: the space's (the top of ``params.epochs`` when it is
        searched), capped by ``--max-epochs`` if given."""
        return self.epochs if max_epochs is None else min(self.epochs, int(max_epochs))

    def make_pruner(self, max_epochs: int | None = None) -> optuna.pruners.BasePruner:
        """The space's pruner; ``max_epochs`` (``--max-epochs``) caps the epochs a trial runs,
        and so Hyperband's largest resource."""
        return strategies.make_pruner(self.pruner, epochs=self.capped_epochs(max_epochs))

    def grid(self) -> dict[str, list[Any]]:
        """Every searched parameter's values, for the grid sampler (per-layer units included)."""
        grid: dict[str, list[Any]] = {}
        names = dict(self.searched)
        if "units" in names and "per_layer" in self.candidates("units_schedule"):
            # units_1..units_N are what a per_layer trial draws; others draw `units` alone
            for extra in per_layer_names(int(max(self.candidates("layers")))):
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
                    "the grid sampler needs every searched parameter to be a list or a linear "
                    f"range with a step; {name} is not",
                    field="name",
                )
        return grid

    def cudnn_warnings(self) -> list[str]:
        """One line per parameter whose values can leave the cuDNN kernel's conditions."""
        out = []
        for name, required in CUDNN_REQUIRES.items():
            bad = [v for v in self.candidates(name) if v != required]
            if bad:
                out.append(
                    f"{self.source}: params.{name} can be {bad[0]!r}: such trials cannot use the "
                    f"cuDNN LSTM kernel on a GPU (needs {name}={required!r}); each trial records "
                    "whether it was eligible"
                )
        return out


def load_space(path: str | Path, *, sampler: str | None = None, pruner: str | None = None) -> Space:
    """Read, parse and validate a space file. Raises ``InputError``.

    ``sampler`` / ``pruner`` (names, from the command line) replace the file's choices.
    """
    for flag, name, valid in (
        ("--sampler", sampler, strategies.SAMPLERS),
        ("--pruner", pruner, strategies.PRUNERS),
    ):  # the command line's, not the file's: named as such
        if name is not None and name not in valid:
            raise InputError(
                f"unknown {flag[2:]} {name!r}{_close(name, valid)}; valid: {', '.join(valid)}",
                field=flag,
            )
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", source=source)
    size = p.stat().st_size
    if size > MAX_SPACE_BYTES:
        raise InputError(
            f"{size:,} bytes; a search space is at most {MAX_SPACE_BYTES:,}", source=source
        )
    try:
        text = p.read_text()
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text: {e.reason} at byte {e.start}", source=source) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_node(node, source)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(f"invalid YAML: {e.problem}", source=source, line=line) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", source=source) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", source=source) from None
    if isinstance(raw, dict):
        raw = {
            **raw,
            **({"sampler": sampler} if sampler else {}),
            **({"pruner": pruner} if pruner else {}),
        }
    return parse_space(raw, source=source, lines=_lines(node) if node is not None else {})


def _wrapped_name(conf: dict[str, Any]) -> Any:
    """The name of the pruner a ``patient`` pruner wraps (None for any other)."""
    wrapped = conf.get("wrapped") if conf.get("name") == "patient" else None
    return wrapped.get("name") if isinstance(wrapped, dict) else wrapped


def parse_space(
    raw: Any, *, source: str, lines: Lines | None = None, stored: bool = False
) -> Space:
    """Validate an already-loaded mapping (a file, or the copy stored on a study: ``stored``,
    which skips the checks added to refuse a file's mistakes that earlier versions accepted
    and ran harmlessly, so a study created then can still be resumed)."""
    lines = lines or {}

    def err(path: tuple[Any, ...], message: str) -> InputError:
        line = next((lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in lines), None)
        return InputError(message, source=source, field=_dotted(path) or None, line=line)

    if not isinstance(raw, dict):
        raise err((), f"a search space is a mapping of settings, got {type(raw).__name__}")
    try:  # the space is stored on the study as JSON: dates and other YAML types cannot be
        json.dumps(raw)
    except (TypeError, ValueError) as e:
        raise err((), f"values must be plain numbers, strings, lists and mappings: {e}") from None
    bad = _non_finite(raw)
    if bad is not None:  # .nan / .inf: no setting takes one (a NaN step or bound breaks Optuna)
        raise err(bad[0], f"must be a finite number, got {bad[1]!r}")
    for key in raw:
        if key not in TOP_LEVEL:
            raise err(
                (key,),
                f"unknown setting {key!r}{_close(key, TOP_LEVEL)}; valid: {', '.join(TOP_LEVEL)}",
            )

    task = raw.get("task", "forecast")
    if task not in TASKS:
        raise err(("task",), f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    objectives = OBJECTIVES[task]
    objective = raw.get("objective", next(iter(objectives)))
    costs: tuple[str, ...] = ()
    if isinstance(objective, list):
        if len(objective) < 2 or not isinstance(objective[0], str):
            raise err(
                ("objective",),
                "a list objective is the objective first, then what to weigh against it: "
                f"[val_..., {' and/or '.join(COSTS)}]",
            )
        if objective[0] in COSTS:
            raise err(
                ("objective",),
                f"the first objective is the validation score that training and pruning read "
                f"({', '.join(objectives)}); {objective[0]} comes after it",
            )
        costs = tuple(objective[1:])
        for cost in costs:
            if cost not in COSTS or costs.count(cost) > 1:
                raise err(
                    ("objective",),
                    f"after the first objective come {' and/or '.join(COSTS)} (once each), got "
                    f"{cost!r}",
                )
        objective = objective[0]
    if objective not in objectives:
        raise err(
            ("objective",),
            f"unknown objective {objective!r} for {task}; valid: {', '.join(objectives)}",
        )
    epochs = _whole(raw.get("epochs", 20), 1, 100_000, ("epochs",), err)
    patience = _whole(raw.get("patience", 0), 0, 100_000, ("patience",), err)
    min_steps = _whole(
        raw.get("min_steps_per_epoch", 0), 0, 1_000_000, ("min_steps_per_epoch",), err
    )
    seed = _whole(raw.get("seed", 0), 0, 2**31 - 1, ("seed",), err)
    sampler = _named(raw.get("sampler", "tpe"), ("sampler",), err)
    pruner = _named(raw.get("pruner", "median"), ("pruner",), err)
    if costs:  # Optuna's CMA-ES is single-objective; Hyperband's brackets read one direction
        for key, conf, unfit in (("sampler", sampler, "cmaes"), ("pruner", pruner, "hyperband")):
            names = {conf.get("name"), _wrapped_name(conf)}
            if unfit in names:
                raise err(
                    (key,),
                    f"{unfit} does not take several objectives; with a list objective use "
                    + ("tpe, random, gp, qmc or grid" if key == "sampler" else "another pruner"),
                )

    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise err(("params",), f"expected a mapping of parameters, got {params!r}")
    searched: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for name, value in params.items():
        path = ("params", name)
        spec = PARAMS.get(name)
        if spec is None:
            raise err(
                path,
                f"unknown parameter {name!r}{_close(name, PARAMS)}; valid: {', '.join(PARAMS)}",
            )
        if task not in spec.tasks:
            raise err(path, f"{name!r} does not apply to task {task!r}")
        if name == "window" and value == "auto":
            if task != "forecast":
                raise err(
                    path,
                    "window: auto applies to forecasts (a classifier reads the whole "
                    "sequence, a text model its texts' usual length, unless a window is set)",
                )
            continue  # resolved from the data before the study starts
        if isinstance(value, (list, dict)):
            searched[name] = _distribution(name, spec, value, path, err)
        else:
            fixed[name] = _value(name, spec, value, path, err)

    if "epochs" in params:
        if "epochs" in raw:
            raise err(
                ("params", "epochs"),
                "epochs is set twice: at the top level (every trial's) and in params (searched "
                "or fixed); keep one",
            )
        if "epochs" in fixed:
            epochs = int(fixed["epochs"])
        else:  # the most a trial can draw: what the pruner and the budget plan for
            dist = searched["epochs"]
            tops = dist.choices if isinstance(dist, CategoricalDistribution) else [dist.high]  # type: ignore[attr-defined]
            epochs = max(int(v) for v in tops)  # type: ignore[arg-type]

    if fixed.get("bidirectional") is True and fixed.get("go_backwards") is True:
        raise err(
            ("params", "go_backwards"),
            "go_backwards: true cannot go with bidirectional: true (a Bidirectional layer runs "
            "both directions itself; Keras refuses it)",
        )

    for name in [*searched, *fixed] if not stored else []:
        for other, allowed in PARAMS[name].conditions:
            value = fixed.get(other, PARAMS[other].default(other))
            if other not in searched and value not in allowed:
                raise err(
                    ("params", name),
                    f"{name} applies only when {other} is {' or '.join(map(_plain, allowed))}, "
                    f"and {other} is {_plain(value)} here: remove {name}, or change {other}",
                )

    if task == "forecast" and objective == "val_loss":
        for name in ("scaler", "loss"):
            if name in searched:
                raise err(
                    ("objective",),
                    f"val_loss is not comparable across trials when {name} is searched; "
                    "use objective: val_mae_original",
                )

    space = Space(
        source=source,
        raw=raw,
        task=task,
        objective=objective,
        direction=objectives[objective],
        costs=costs,
        epochs=epochs,
        patience=patience,
        seed=seed,
        sampler=sampler,
        pruner=pruner,
        searched=searched,
        fixed=fixed,
        start_with=(),
        min_steps_per_epoch=min_steps,
        window_auto=params.get("window") == "auto",
        lines=dict(lines),
    )
    starts = raw.get("start_with") or []
    if not isinstance(starts, list):
        raise err(("start_with",), f"expected a list of parameter mappings, got {starts!r}")
    checked = tuple(_start(space, s, ("start_with", i), err) for i, s in enumerate(starts))
    space = replace(space, start_with=checked)

    # Sampler and pruner names and arguments are checked by building them (cheap, no trial).
    for key, make in (("sampler", space.make_sampler), ("pruner", space.make_pruner)):
        try:
            make()
        except InputError as e:
            raise err((key, *([e.field] if e.field else [])), e.message) from None
    return space


def per_layer_names(layers: int) -> list[str]:
    """Optuna parameter names of per-layer units: ``units_1`` ... ``units_N``."""
    return [f"units_{i}" for i in range(1, layers + 1)]


def _start(space: Space, entry: Any, path: tuple[Any, ...], err: Any) -> dict[str, Any]:
    """A ``start_with`` entry: names of searched parameters with values inside their range."""
    if not isinstance(entry, dict):
        raise err(path, f"expected a mapping of parameter values, got {entry!r}")
    max_layers = int(max(space.candidates("layers")))
    units_dist = space.searched.get("units")
    out = {}
    for name, value in entry.items():
        where = (*path, name)
        dist = space.searched.get(name)
        schema = name
        if dist is None and name in per_layer_names(max_layers) and units_dist is not None:
            dist, schema = units_dist, "units"
        if dist is None:
            raise err(where, f"{name!r} is not a searched parameter of this space")
        value = out[name] = _value(schema, PARAMS[schema], value, where, err)
        try:
            ok = dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise err(where, f"value {value!r} is outside the searched values {_describe(dist)}")
    return out


def _describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return str(list(dist.choices))
    assert isinstance(dist, (IntDistribution, FloatDistribution))
    return f"[{dist.low}, {dist.high}]"


def _distribution(
    name: str, spec: ParamSpec, value: list[Any] | dict[str, Any], path: tuple[Any, ...], err: Any
) -> BaseDistribution:
    if isinstance(value, list):
        if not value:
            raise err(path, "an empty list of choices")
        choices = [_value(name, spec, v, (*path, i), err) for i, v in enumerate(value)]
        if len(set(map(repr, choices))) != len(choices):
            raise err(path, f"repeated choices in {value!r}")
        return CategoricalDistribution(choices)
    if spec.kind not in (int, float):
        raise err(path, f"{name} takes one value or a list of choices, not a range {value!r}")
    for key in value:
        if key not in RANGE_KEYS:
            valid = ", ".join(RANGE_KEYS)
            raise err(
                (*path, key), f"unknown range key {key!r}{_close(key, RANGE_KEYS)}; valid: {valid}"
            )
    if "low" not in value or "high" not in value:
        raise err(path, f"a range needs both low and high, got {value!r}")
    low = _value(name, spec, value["low"], (*path, "low"), err)
    high = _value(name, spec, value["high"], (*path, "high"), err)
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise err((*path, "log"), f"log must be true or false, got {log!r}")
    step = value.get("step")
    try:
        if spec.kind is int:
            if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
                raise err((*path, "step"), f"step of an integer range must be whole, got {step!r}")
            return IntDistribution(low, high, log=log, step=1 if step is None else step)
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))):
            raise err((*path, "step"), f"step must be a number, got {step!r}")
        return FloatDistribution(low, high, log=log, step=None if step is None else float(step))
    except ValueError as e:  # Optuna's own checks: low <= high, log needs low > 0, ...
        raise err(path, str(e)) from None


def _value(name: str, spec: ParamSpec, value: Any, path: tuple[Any, ...], err: Any) -> Any:
    """Check one value against the parameter's type and bounds; return it normalized."""
    kind = spec.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise err(path, f"{name} must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise err(path, f"{name} must be a name, got {value!r}")
        if spec.choices is not None and value not in spec.choices:
            valid = ", ".join(spec.choices)
            raise err(
                path, f"unknown {name} {value!r}{_close(value, spec.choices)}; valid: {valid}"
            )
        return value
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        with contextlib.suppress(ValueError):
            value = float(value) if kind is float else int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise err(path, f"{name} must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise err(path, f"{name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise err(path, f"{name} must be finite, got {value!r}")
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise err(path, f"{name} must be in [{spec.low}, {spec.high}], got {value!r}")
    return value


def _whole(value: Any, low: int, high: int, path: tuple[Any, ...], err: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise err(path, f"expected a whole number in [{low}, {high}], got {value!r}")
    return value


def _named(value: Any, path: tuple[Any, ...], err: Any) -> dict[str, Any]:
    """``tpe`` or ``{name: tpe, ...kwargs}`` -> ``{"name": "tpe", ...kwargs}``."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return dict(value)
    raise err(path, f"expected a name or a mapping with a name, got {value!r}")


def _plain(value: Any) -> str:
    """A value as YAML spells it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _check_node(node: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand past ``MAX_NODES`` nodes, or a mapping with one
    key twice (YAML keeps the last silently: a stray copy of ``epochs:`` would change the study).
    """
    count = 0
    stack = [node]
    while stack:
        n = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InputError(
                f"more than {MAX_NODES:,} values once aliases are expanded; a search space is "
                "a few dozen lines (is an alias repeated inside another?)",
                source=source,
            )
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise InputError(
                            f"{key.value!r} appears twice in one mapping (first on line "
                            f"{seen[key.value]}); YAML would keep only the last",
                            source=source,
                            line=key.start_mark.line + 1,
                            field=key.value,
                        )
                    seen[key.value] = key.start_mark.line + 1
                stack += (key, value)
        elif isinstance(n, yaml.SequenceNode):
            stack += n.value


def _non_finite(value: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """The path and value of the first NaN or infinite number in a loaded document."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for k, v in items:
        found = _non_finite(v, (*path, k))
        if found is not None:
            return found
    return None


def _lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Line number (1-based) of every key and list item in a composed YAML document."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, key.value)
            sub = _lines(value, here)
            sub[here] = key.start_mark.line + 1
            out.update(sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, (*path, i)))
    return out


def _close(word: Any, valid: Any) -> str:
    """``" (did you mean 'x'?)"`` for a misspelt name, else nothing."""
    import difflib

    found = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1, cutoff=0.75)
    return f" (did you mean {found[0]!r}?)" if found else ""
