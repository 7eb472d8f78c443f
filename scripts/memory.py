"""Worker memory across trials, for each way of running them: resident memory after each trial.

    .venv/bin/python scripts/memory.py [--trials 30] [--modes 0,10]

For each ``--trials-per-process`` value (0: every trial in the worker's own process; K: a fresh
trial process every K trials), runs a real `tuner worker` on a new study (the bundled CO2 series,
small LSTMs, 2 epochs each, embedded store in a temporary folder), samples the resident memory
of the worker's process tree as each trial ends, and prints it after trial 5 and the last trial
with their ratio (target <= 1.10: memory stays flat).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  layers: {low: 1, high: 2}
  units: {low: 8, high: 32}
  window: {low: 8, high: 24}
  bidirectional: [false, true]
  batch_size: 64
"""
DATA = [
    "--data",
    str(ROOT / "examples" / "co2_weekly.csv"),
    "--target",
    "co2",
    "--time",
    "date",
    "--nan",
    "interpolate",
]


def tree_rss(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure(per_process: int, trials: int, folder: Path) -> list[float]:
    import optuna

    from tuner.cli import main

    home = folder / f"home-{per_process}"
    os.environ["TUNER_HOME"] = str(home)
    space = folder / "space.yaml"
    space.write_text(SPACE)
    assert main(["create", str(space), *DATA, "--study", "m", "--trials", str(trials)]) == 0
    study = optuna.load_study(study_name="m", storage=f"sqlite:///{home.resolve()}/optuna.db")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuner",
            "worker",
            "--study",
            "m",
            *DATA[:2],
            "--quiet",
            "--trials-per-process",
            str(per_process),
        ],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stderr=subprocess.DEVNULL,
    )
    try:
        return rss_per_trial(worker, study)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


def rss_per_trial(worker: subprocess.Popen, study: Any) -> list[float]:
    """The worker's process-tree memory (MiB) as each trial of ``study`` finishes."""
    rss: list[float] = []
    while worker.poll() is None:
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        if done > len(rss):
            rss.extend([tree_rss(worker.pid)] * (done - len(rss)))
        time.sleep(0.2)
    if worker.returncode != 0:
        raise RuntimeError(f"worker failed with exit code {worker.returncode}")
    return rss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--modes", default="0,10", help="--trials-per-process values to compare")
    args = p.parse_args()
    modes = [int(m) for m in args.modes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            results[mode] = measure(mode, args.trials, Path(tmp))
    print(
        "| trials per process | RSS after trial 5 (MiB) | after trial "
        f"{args.trials} (MiB) | ratio | target <= 1.10 |"
    )
    print("|---|---|---|---|---|")
    for mode, rss in results.items():
        ratio = rss[-1] / rss[4]
        name = "all in the worker (0)" if mode == 0 else str(mode)
        verdict = "pass" if ratio <= 1.10 else "MISS"
        print(f"| {name} | {rss[4]:.0f} | {rss[-1]:.0f} | {ratio:.3f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
