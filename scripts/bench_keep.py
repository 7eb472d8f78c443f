"""B13 keep across a study: what the keep-or-go-back rule hands back once a study picks its best.

A study judges several residual trials and hands back the one best on validation. A trained
model kept by chance at a per-trial level is then the one picked: its validation gain is the
largest because it is noise. Per public series and seed this trains the trials a study's
start would judge (``bench_start.one``): the shipped space's hybrid, then ``trials - 1``
configurations drawn at random from the space with ``residual`` ``last`` or ``ridge`` (TPE's
random start-up), in that order. Each is recorded once (validation and test MAE of its start
and of its best epoch, the one-sided test's p-value); the study's pick is then computed for
each rule, the k-th judged trial keeping its training when p is below the rule's level:

- ``spent``: ``tuner.training.keep_level(k)`` (what a study does);
- ``each``: 0.05 for every trial (the rule before ``keep_level``);
- ``lower``: keep whenever the trained model's validation MAE is lower;
- ``never``: always go back (the pick among the starts: the ridge or the last value).

Figures: the ``spent`` pick's test MAE over the ``never`` pick's (geometric mean over series x
seeds, target <= 1; worst, target <= 1.01), and the same worst for ``each``, side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench_common import Figure, log, scratch
from bench_start import SETS, geomean, one, prepare

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sets": ["sunspots"], "seeds": [1], "epochs": 2, "trials": 2},
    "quick": {"sets": ["sunspots", "gasoline", "co2"], "seeds": [1], "epochs": 15, "trials": 4},
    "full": {"sets": None, "seeds": [1, 2], "epochs": 15, "trials": 5},
}
RULES = ("spent", "each", "lower", "never")


def drawn(name: str, folder: Path, seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` residual configurations drawn at random from the shipped space."""
    import optuna

    from tuner.sampling import sample

    space = prepare(name, folder).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[dict[str, Any]] = []
    while len(out) < count:
        trial = study.ask()
        config = sample(trial, space, seed=seed)
        study.tell(trial, 0.0)
        if config.residual != "none":
            out.append(dict(trial.params))
    return out


def level(rule: str, k: int, trial: dict[str, Any]) -> float:
    """The level the k-th judged trial keeps below (1-based)."""
    from tuner.config import KEEP_LEVEL
    from tuner.training import keep_level

    if rule == "spent":
        return keep_level(k)
    if rule == "each":
        return KEEP_LEVEL
    if rule == "lower":
        return math.inf if trial["trained_val"] < trial["start_val"] else -math.inf
    return -math.inf


def pick(trials: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    """What the study hands back under ``rule``: the trial best on validation, each trial
    valued at its trained model's or its start's validation MAE; its test MAE."""
    handed, k = [], 0
    for t in trials:
        p = t["start_p"]
        k += p is not None  # the rank among judged trials, as a study counts (outcome.judged)
        kept = p is not None and p < level(rule, k, t)
        handed.append(
            {
                "trial": len(handed) + 1,
                "kept": kept,
                "val": t["trained_val"] if kept else t["start_val"],
                "test": t["trained_test"] if kept else t["start_test"],
            }
        )
    return min(handed, key=lambda h: h["val"])


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    studies = []
    with scratch("b13") as folder:
        for name in s["sets"] or SETS:
            for seed in s["seeds"]:
                params = [None, *drawn(name, folder, seed, s["trials"] - 1)]
                trials = [one(name, folder, seed, s["epochs"], p) for p in params]
                picks = {rule: pick(trials, rule) for rule in RULES}
                studies.append({"set": name, "seed": seed, "trials": trials, "picks": picks})
                log(
                    f"B13 {name} seed {seed}: p = "
                    + ", ".join(f"{t['start_p']:.3g}" for t in trials if t["start_p"] is not None)
                    + "; picks: "
                    + ", ".join(
                        f"{r} trial {h['trial']}{' kept' if h['kept'] else ''} {h['test']:.5g}"
                        for r, h in picks.items()
                    )
                )
    ratios = {
        rule: [st["picks"][rule]["test"] / st["picks"]["never"]["test"] for st in studies]
        for rule in RULES
    }
    summary = {
        rule: {
            "geomean": geomean(v),
            "worst": max(v),
            "worse_by_1pct": sum(x > 1.01 for x in v),
            "better_by_1pct": sum(x < 0.99 for x in v),
        }
        for rule, v in ratios.items()
    }
    setup = {"studies": len(studies), "trials": s["trials"], "epochs": s["epochs"]}
    return [
        Figure(
            "B13",
            "a study's pick under the shipped levels: test MAE / going back always, geometric mean",
            geomean(ratios["spent"]),
            1.0,
            details={**setup, "rules": summary},
        ),
        Figure(
            "B13",
            f"the same, worst study ({summary['spent']['worse_by_1pct']} of {len(studies)} > 1.01)",
            max(ratios["spent"]),
            1.01,
            details={**setup, "studies": studies},
        ),
        Figure(
            "B13",
            f"0.05 for each trial, worst study ({summary['each']['worse_by_1pct']} > 1.01; "
            f"geometric mean {summary['each']['geomean']:.3f})",
            max(ratios["each"]),
            1.01,
            details=setup,
        ),
    ]
