"""B2 search quality: tuner against KerasTuner (Hyperband, BayesianOptimization) and Optuna random
search without pruning, at one epoch budget, on fpp2's elecdemand (Demand one step ahead).

Every tool gets the same budget of training epochs; its best validation MAE (in the target's
units) and the test MAE of the model it selects are compared, over several seeds (median and
spread). tuner runs the shipped ``search_spaces/forecast.yaml`` (TPE, median pruner, the textbook
starting configurations) with the epochs per trial capped; "random" is the same space with
``sampler: random, pruner: none``.

At 300 epochs the whole benchmark outgrows one session on 2 cores: ``B2_SEEDS`` and ``B2_TOOLS``
run a part, and ``B2_TRACES=folder`` keeps every finished (seed, tool) search there, so the parts
can run side by side or one after another and a last run with every seed and tool puts them
together (a kept search is reused only by the same setup and code).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench_common import ROOT, Figure, elecdemand_csv, log, median, scratch
from bench_driver import Trace, run_study, write_space

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"rows": 1200, "budget": 4, "max_epochs": 2, "seeds": [1]},
    "quick": {"rows": 1500, "budget": 9, "max_epochs": 3, "seeds": [1, 2, 3]},
    # tens of trials per search: a budget of 90 epochs, at most 15 per trial (Hyperband's
    # max_epochs), on 4,000 rows (83 days of half-hours: 2,800 training windows)
    "full": {"rows": 4000, "budget": 90, "max_epochs": 15, "seeds": [1, 2, 3]},
}
TOOLS = ["tuner", "optuna-random", "kerastuner-hyperband", "kerastuner-bayesian"]
KT_WINDOW = 48  # one day of half-hours: the fixed window a KerasTuner user would pick
PATIENCE = 6  # the shipped space's early stopping, given to KerasTuner too


def bench(size: str) -> list[Figure]:
    import bench_kerastuner as ktb

    s = dict(SIZES[size])
    if os.environ.get("B2_SEEDS"):  # fewer seeds, when the whole size does not fit
        s["seeds"] = [int(x) for x in os.environ["B2_SEEDS"].split(",")]
    if os.environ.get("B2_BUDGET"):  # another epoch budget per search (the 300)
        s["budget"] = int(os.environ["B2_BUDGET"])
    # fewer competitors, when the whole size does not fit (tuner and one KerasTuner always)
    tools = os.environ.get("B2_TOOLS", ",".join(TOOLS)).split(",")
    if "tuner" not in tools or not any(t.startswith("kerastuner") for t in tools):
        raise SystemExit(f"B2_TOOLS must name tuner and a KerasTuner search: {tools}")
    if set(tools) - set(TOOLS):
        raise SystemExit(f"B2_TOOLS: unknown {sorted(set(tools) - set(TOOLS))}; valid: {TOOLS}")
    # B2_TRACES: a folder keeping each finished (seed, tool) search, so B2 can run in pieces
    # (processes side by side, or one after another) and be put together by a last run
    store = _TraceStore(Path(os.environ["B2_TRACES"]), s) if os.environ.get("B2_TRACES") else None
    runs: dict[int, dict[str, Trace]] = {}
    with scratch("b2") as folder:
        csv = elecdemand_csv(folder, s["rows"])
        data = ["--data", str(csv), "--target", "Demand", "--time", "t"]
        kt_data = ktb.windows(csv, "Demand", KT_WINDOW)
        shipped = ROOT / "search_spaces" / "forecast.yaml"
        for seed in s["seeds"]:
            spaces = {
                "tuner": write_space(folder / f"tuner-{seed}.yaml", shipped, seed=seed),
                "optuna-random": write_space(
                    folder / f"random-{seed}.yaml",
                    shipped,
                    seed=seed,
                    sampler="random",
                    pruner="none",
                ),
            }
            runs[seed] = {}
            for tool, space in spaces.items():
                if tool not in tools:
                    continue
                log(f"B2 seed {seed}: {tool}")
                trace = _kept(
                    store,
                    seed,
                    tool,
                    partial(
                        run_study,
                        folder,
                        f"{tool}-{seed}",
                        space,
                        data,
                        budget=s["budget"],
                        max_epochs=s["max_epochs"],
                    ),
                )
                runs[seed][tool] = trace
            for kind in ("hyperband", "bayesian"):
                if f"kerastuner-{kind}" not in tools:
                    continue
                log(f"B2 seed {seed}: kerastuner {kind}")
                runs[seed][f"kerastuner-{kind}"] = _kept(
                    store,
                    seed,
                    f"kerastuner-{kind}",
                    partial(
                        ktb.search,
                        kind,
                        kt_data,
                        folder / f"kt-{seed}",
                        seed=seed,
                        budget=s["budget"],
                        max_epochs=s["max_epochs"],
                        window=KT_WINDOW,
                        patience=PATIENCE,
                    ),
                )
    return figures(runs, s)


def figures(runs: dict[int, dict[str, Trace]], s: dict[str, Any]) -> list[Figure]:
    test_ratios, epoch_ratios, per_seed = [], [], {}
    for seed, traces in runs.items():
        tuner = traces["tuner"]
        baselines = {k: v for k, v in traces.items() if k != "tuner"}
        best_test = min(v.test_mae for v in baselines.values() if v.test_mae is not None)
        test_ratios.append(_ratio(tuner.test_mae, best_test))
        kt = min(
            (v for k, v in baselines.items() if k.startswith("kerastuner")),
            key=lambda t: t.best_value,
        )
        kt_epochs = kt.epochs_to_reach(kt.best_value)
        tuner_epochs = tuner.epochs_to_reach(kt.best_value)
        epoch_ratios.append(tuner_epochs / kt_epochs)
        per_seed[seed] = {
            "tools": {k: v.summary() for k, v in traces.items()},
            "kerastuner_best": {"tool": kt.tool, "val": kt.best_value, "epochs": kt_epochs},
            "tuner_epochs_to_kerastuner_best": tuner_epochs,
        }
    tools = list(next(iter(runs.values())))
    spread = {
        tool: {
            metric: _spread([getattr(runs[seed][tool], attr) for seed in runs])
            for metric, attr in (("best_val", "best_value"), ("test_mae", "test_mae"))
        }
        for tool in tools
    }
    setup = {
        "data": f"fpp2 elecdemand, last {s['rows']} rows, Demand 1 step ahead",
        "epoch_budget": s["budget"],
        "max_epochs_per_trial": s["max_epochs"],
        "seeds": s["seeds"],
        "tools": tools,
        "kerastuner_window": KT_WINDOW,
    }
    details = {**setup, "median_and_range": spread, "per_seed": per_seed}
    return [
        Figure(
            "B2",
            "test MAE of the selected model, tuner / best baseline (median of seeds)",
            median(test_ratios),
            1.0,
            details={**details, "per_seed_ratio": test_ratios},
        ),
        Figure(
            "B2",
            "epochs to reach KerasTuner's final best val MAE, tuner / KerasTuner",
            median(epoch_ratios),
            0.5,
            details={"per_seed_ratio": epoch_ratios, **setup},
        ),
    ]


class _TraceStore:
    """Finished searches as JSON files, reused only by a run of the same setup and code: the
    key digests the size's settings, the tuner package, the shipped space and these scripts."""

    def __init__(self, folder: Path, setup: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        same = {k: v for k, v in setup.items() if k != "seeds"}  # a trace is one seed's
        digest = hashlib.sha256(json.dumps(same, sort_keys=True).encode())
        sources = sorted((ROOT / "tuner").rglob("*.py")) + [
            ROOT / "search_spaces" / "forecast.yaml",
            *sorted((ROOT / "scripts").glob("bench_*.py")),
        ]
        for path in sources:
            digest.update(path.read_bytes())
        self.folder, self.key = folder, digest.hexdigest()[:16]

    def path(self, seed: int, tool: str) -> Path:
        return self.folder / f"b2-{self.key}-seed{seed}-{tool}.json"

    def load(self, seed: int, tool: str) -> Trace | None:
        path = self.path(seed, tool)
        return Trace(**json.loads(path.read_text())) if path.exists() else None

    def save(self, seed: int, tool: str, trace: Trace) -> None:
        path = self.path(seed, tool)
        part = path.with_suffix(".part")
        part.write_text(json.dumps(trace.__dict__, default=str))
        part.replace(path)  # whole or absent: a killed run leaves no half trace


def _kept(store: _TraceStore | None, seed: int, tool: str, search: Callable[[], Trace]) -> Trace:
    if store is not None and (trace := store.load(seed, tool)) is not None:
        log(f"B2 seed {seed}: {tool} reused from {store.path(seed, tool)}")
        return trace
    trace = search()
    trace.tool = tool  # the study's folder name (tuner-3) is not the tool's
    if store is not None:
        store.save(seed, tool, trace)
    return trace


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or b == 0:
        return math.nan
    return a / b


def _spread(values: list[float | None]) -> dict[str, float]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": median(v), "min": min(v), "max": max(v)}
