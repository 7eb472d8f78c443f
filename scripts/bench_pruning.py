"""B3 pruning: epochs the shipped pruner needs to come within 1% of the best validation value
that the same sampler and seed find without pruning.

For each data set, the shipped space (its TPE sampler and median pruner) runs a fixed number of
trials twice with one seed: with pruning off (``pruner: none``) and on. The unpruned run's best
value v sets the bar 1.01 v (for a loss); the figure is the ratio of the epochs each run spent
before an epoch first reached the bar (the unpruned run's own epochs to get within 1% of v,
divided by the pruned run's). A pruned run that never gets there counts as 0: a miss.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench_common import ROOT, Figure, log, scratch, sktime_npz, sunspots_csv
from bench_driver import run_study, write_space

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sets": ["sunspots"], "trials": 6, "max_epochs": 6},
    "quick": {"sets": ["sunspots"], "trials": 12, "max_epochs": 10},
    # the shipped spaces' own epoch budgets (30 and 40) and tens of trials: the pruner's
    # start-up (5 trials) and warm-up (4-5 epochs) are a small part of the search
    "full": {"sets": ["sunspots", "italy_power_demand"], "trials": 40, "max_epochs": 40},
}
SEED = 7


def _inputs(name: str, folder: Path) -> tuple[Path, list[str]]:
    """The space (shipped, with what the data needs) and the data arguments."""
    if name == "sunspots":
        # 309 yearly rows leave 46 for validation: windows up to 16 years, not 64.
        space = write_space(
            folder / "sunspots.yaml",
            ROOT / "search_spaces" / "forecast.yaml",
            seed=SEED,
            params={"window": {"low": 4, "high": 16, "log": True}},
        )
        return space, [
            "--data",
            str(sunspots_csv(folder)),
            "--target",
            "SUNACTIVITY",
            "--time",
            "YEAR",
        ]
    space = write_space(
        folder / f"{name}.yaml", ROOT / "search_spaces" / "classify.yaml", seed=SEED
    )
    return space, ["--data", str(sktime_npz(folder, name))]


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    out = []
    with scratch("b3") as folder:
        for name in s["sets"]:
            space, data = _inputs(name, folder)
            unpruned_space = write_space(folder / f"{name}-none.yaml", space, pruner="none")
            runs = {}
            for label, sp in (("unpruned", unpruned_space), ("pruned", space)):
                log(f"B3 {name}: {label}")
                runs[label] = run_study(
                    folder,
                    f"{name}-{label}",
                    sp,
                    data,
                    budget=10**9,
                    max_epochs=s["max_epochs"],
                    max_trials=s["trials"],
                )
            best = runs["unpruned"].best_value
            bar = best * 1.01 if best >= 0 else best * 0.99
            need = {k: v.epochs_to_reach(bar) for k, v in runs.items()}
            ratio = need["unpruned"] / need["pruned"] if math.isfinite(need["pruned"]) else 0.0
            out.append(
                Figure(
                    "B3",
                    f"{name}: epochs to within 1% of the unpruned best, unpruned / pruned",
                    ratio,
                    3.0,
                    op=">=",
                    unit="x",
                    details={
                        "trials_each": s["trials"],
                        "max_epochs_per_trial": s["max_epochs"],
                        "seed": SEED,
                        "unpruned_best": best,
                        "bar": bar,
                        "epochs_to_bar": need,
                        "total_epochs": {k: v.epochs for k, v in runs.items()},
                        "total_epochs_ratio": runs["unpruned"].epochs
                        / max(1, runs["pruned"].epochs),
                        "runs": {k: v.summary() for k, v in runs.items()},
                    },
                )
            )
    return out
