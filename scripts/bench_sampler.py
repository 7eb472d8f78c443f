"""B6 sampler cost: the time a worker spends per trial in the sampler and the storage, with 1,000
completed trials in the study, for TPE and random sampling, on SQLite and on PostgreSQL.

The study is the shipped forecast space; its completed trials are made with random parameters
from the space's own distributions (``tuner.sampling.sample`` on an in-memory study, then
``add_trials``). Each timed trial is the worker's own sequence: the claim lock, the target check,
``study.ask()``, ``sample()`` and ``study.tell()``. The figure is the median, as a share of a
10 s trial.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from bench_common import ROOT, Figure, log, median, pg_databases, scratch

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"completed": 50, "timed": 3},
    "quick": {"completed": 200, "timed": 5},
    "full": {"completed": 1000, "timed": 20},
}
TRIAL_S = 10.0


def _score(params: dict[str, Any]) -> float:
    """A deterministic stand-in objective with some structure for TPE to find."""
    lr = params.get("learning_rate", 1e-3)
    return abs(math.log10(lr) + 2.5) + 0.1 * params.get("layers", 1) + 8 / params.get("units", 32)


def _completed(space: Any, n: int) -> list[Any]:
    import optuna

    from tuner.sampling import sample

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mem = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n):
        trial = mem.ask()
        sample(trial, space, seed=i)
        mem.tell(trial, _score(trial.params))
    return mem.trials


def _measure(
    url: str, space: Any, sampler: str, trials: list[Any], timed: int
) -> tuple[list[float], list[float]]:
    from dataclasses import replace

    from tuner import study as studies
    from tuner.liveness import claim_lock
    from tuner.records import StudySpec
    from tuner.sampling import sample
    from tuner.storage import make_storage

    conf = space.sampler if sampler == "tpe" else {"name": sampler}
    raw = {k: v for k, v in space.raw.items() if k != "start_with"}
    spec = StudySpec(space={**raw, "sampler": conf}, data={}, fingerprint="-")
    sp = replace(space, sampler=conf, start_with=())
    storage = make_storage(url)
    name = f"b6-{sampler}"
    studies.create_or_resume(storage, name, sp, spec, len(trials) + timed + 10)
    study, _ = studies.load(storage, name)
    study.add_trials(trials)
    times, cpu = [], []
    for i in range(timed):
        started, cpu_started = time.perf_counter(), time.process_time()
        with claim_lock(storage, url, name):
            studies.target_reached(study)
            trial = study.ask()
        sample(trial, sp, seed=i)
        study.tell(trial, _score(trial.params))
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return times, cpu


def bench(size: str) -> list[Figure]:
    from tuner.space import load_space

    s = SIZES[size]
    space = load_space(ROOT / "search_spaces" / "forecast.yaml")
    log(f"B6: {s['completed']} completed trials")
    trials = _completed(space, s["completed"])
    out = []
    with scratch("b6") as folder, pg_databases("b6_tpe", "b6_random") as pg:
        urls = {
            "sqlite": lambda sampler: f"sqlite:///{Path(folder) / sampler}.db",
            "postgresql": lambda sampler: pg[0] if sampler == "tpe" else pg[1],
        }
        for backend, url in urls.items():
            for sampler in ("tpe", "random"):
                log(f"B6: {sampler} on {backend}")
                from tuner.storage import normalize

                times, cpu = _measure(normalize(url(sampler)), space, sampler, trials, s["timed"])
                ms = median(times) * 1000
                out.append(
                    Figure(
                        "B6",
                        f"sampling + storage per trial, {sampler}, {backend}, "
                        f"{s['completed']} trials done (% of a 10 s trial)",
                        100 * median(times) / TRIAL_S,
                        1.0,
                        unit="%",
                        details={
                            "median_ms": round(ms, 1),
                            "median_cpu_ms_of_this_process": round(median(cpu) * 1000, 1),
                            "max_ms": round(max(times) * 1000, 1),
                            "stdev_ms": round(statistics.pstdev(times) * 1000, 1),
                            "completed_trials": s["completed"],
                            "timed_trials": s["timed"],
                        },
                    )
                )
    return out
