"""B8 search defaults: which sampler and pruner the shipped spaces should use, decided over several
public data sets and seeds at one small epoch budget (issue 11, item 4).

Each candidate is the shipped space with only ``sampler`` and ``pruner`` replaced (and ``epochs``
set to the per-trial cap, so that Hyperband's brackets fit the epochs a trial may run). Every
(data set, seed, candidate) is one ``tuner run`` with ``--budget-epochs``; the figure per study is
the tuned model's test error over the best simple baseline's (as B7), so that data sets of
different units can be pooled. Per candidate: the geometric mean of that ratio over every
(set, seed) that tells the candidates apart (not all at 0), the same for the validation error,
and the studies it won.

Candidates:
- ``median``: the defaults before this benchmark: TPE with 8 random start-up trials, the median
  pruner after 5 trials and a 4-epoch warm-up;
- ``sha``: multivariate TPE with 4 start-up trials, asynchronous successive halving from epoch 1
  (reduction factor 3: a trial continues past epochs 1, 3 and 9 only while in its rung's best
  third);
- ``hyperband``: the same TPE with Hyperband (minimum 1 epoch, reduction factor 3), which also
  keeps brackets that prune later.

``B8_SETS=elecdemand`` runs only the named sets.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from bench_baselines import row, task_of
from bench_baselines import study as run_study
from bench_common import ROOT, Figure, log, scratch
from bench_driver import write_space

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sets": ["sunspots"], "seeds": [1], "budget": 3, "max_epochs": 2},
    "quick": {
        "sets": ["sunspots", "italy_power_demand"],
        "seeds": [1],
        "budget": 20,
        "max_epochs": 6,
    },
    "full": {
        "sets": ["sunspots", "italy_power_demand", "gunpoint", "elecdemand"],
        "seeds": [1, 2],
        "budget": 45,
        "max_epochs": 15,
    },
}
TPE_MV = {"name": "tpe", "n_startup_trials": 4, "multivariate": True, "constant_liar": True}
CANDIDATES: dict[str, dict[str, Any]] = {
    "median": {
        "sampler": {"name": "tpe", "n_startup_trials": 8},
        "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 4},
    },
    "sha": {
        "sampler": TPE_MV,
        "pruner": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    },
    "hyperband": {
        "sampler": TPE_MV,
        "pruner": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
    },
}


def study(name: str, candidate: str, seed: int, folder: Path, s: dict[str, Any]) -> dict[str, Any]:
    """One study of ``candidate`` on set ``name``; its B7 row (test errors and ratio)."""
    task = task_of(name)
    tag = f"{name}-{candidate}-{seed}"
    space = write_space(
        folder / f"{tag}.yaml",
        ROOT / "search_spaces" / f"{task}.yaml",
        seed=seed,
        epochs=s["max_epochs"],
        **CANDIDATES[candidate],
    )
    result = run_study(name, folder, s["budget"], s["max_epochs"], space=space, tag=tag)
    out = row(name, result)
    out["val_ratio"] = val_ratio(task, result["best"])
    return out


def val_ratio(task: str, best: dict[str, Any]) -> float:
    """The best trial's validation error over the best baseline's."""
    b = best["baselines"]["baselines"]
    m = best["metrics"]
    if task == "forecast":
        key = "val_mae_original"
        mine, theirs = m.get(f"best_{key}", m.get(key)), min(s[key] for s in b.values())
    else:
        key = "val_accuracy"
        acc = m.get(f"best_{key}", m.get(key))
        mine = None if acc is None else 1.0 - acc
        theirs = min(1.0 - s[key] for s in b.values())
    if mine is None:
        return math.nan
    return mine / theirs if theirs else (1.0 if mine == 0 else math.inf)


def geomean(values: list[float]) -> float:
    logs = [math.log(v) for v in values if math.isfinite(v) and v > 0]
    return math.exp(sum(logs) / len(logs)) if len(logs) == len(values) and logs else math.nan


def informative(results: dict[str, list[dict[str, Any]]]) -> list[int]:
    """Indices of the (set, seed) studies that tell candidates apart: not every one at 0 (a
    perfect test score on gunpoint, where the first textbook trial already has no error)."""
    n = len(next(iter(results.values())))
    return [i for i in range(n) if any(rows[i]["ratio"] > 0 for rows in results.values())]


def bench(size: str) -> list[Figure]:
    s = dict(SIZES[size])
    if os.environ.get("B8_SETS"):  # a part of the sets, e.g. to re-run one after a change
        s["sets"] = os.environ["B8_SETS"].split(",")
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CANDIDATES}
    with scratch("b8") as folder:
        for name in s["sets"]:
            for seed in s["seeds"]:
                for candidate in CANDIDATES:
                    r = study(name, candidate, seed, folder, s)
                    r["seed"] = seed
                    results[candidate].append(r)
                    log(
                        f"B8 {name} seed {seed} {candidate}: test ratio {r['ratio']:.3f} "
                        f"val ratio {r['val_ratio']:.3f} trials {r['trials']} "
                        f"epochs {r['epochs_used']}"
                    )
    setup = {k: s[k] for k in ("sets", "seeds", "budget", "max_epochs")}
    wins = _wins(results)
    kept = informative(results)
    figures = []
    for candidate, all_rows in results.items():
        rows = [all_rows[i] for i in kept]
        per_study = [
            {k: r[k] for k in ("set", "seed", "ratio", "val_ratio", "trials", "epochs_used")}
            for r in all_rows
        ]
        figures.append(
            Figure(
                "B8",
                f"{candidate}: test error / best baseline's, geometric mean of "
                f"{len(rows)} studies (val: {geomean([r['val_ratio'] for r in rows]):.3f}; "
                f"best test in {wins[candidate]} of {len(all_rows)})",
                geomean([r["ratio"] for r in rows]),
                1.0,
                details={**setup, **CANDIDATES[candidate], "studies": per_study},
            )
        )
    return figures


def _wins(results: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """For each candidate, the (set, seed) studies where its test ratio was the lowest."""
    wins = dict.fromkeys(results, 0)
    for i in range(len(next(iter(results.values())))):
        ratios = {c: rows[i]["ratio"] for c, rows in results.items()}
        low = min(ratios.values())
        for c, v in ratios.items():
            wins[c] += v == low
    return wins
