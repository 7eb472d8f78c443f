"""B5 memory: resident memory of a `tuner worker` (its whole process tree) after trial 50 over
after trial 5, small LSTMs on sktime's basic_motions, for each isolation mode: every trial in the
worker's own process (``--trials-per-process 0``) and the default recycled trial processes (10).
The method is ``scripts/memory.py``'s, on this data set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_common import Figure, log, nice_env, niced, run, scratch, sktime_npz, tuner_cli
from memory import rss_per_trial

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"trials": 6},
    "quick": {"trials": 12},
    "full": {"trials": 50},
}
REFERENCE = 5  # the trial whose memory is the baseline
MODES = (0, 10)
SPACE = """
task: classify
epochs: 2
seed: 3
sampler: random
pruner: none
params:
  layers: {low: 1, high: 2}
  units: {low: 8, high: 32}
  bidirectional: [false, true]
  batch_size: 16
"""


def measure(mode: int, trials: int, folder: Path, npz: Path) -> list[float]:
    import optuna

    home = folder / f"home-{mode}"
    env = nice_env(TUNER_HOME=str(home))
    space = folder / "space.yaml"
    space.write_text(SPACE)
    run(
        tuner_cli(
            "create", str(space), "--data", str(npz), "--study", "m", "--trials", str(trials)
        ),
        env,
    )
    study = optuna.load_study(study_name="m", storage=f"sqlite:///{home.resolve()}/optuna.db")
    worker = subprocess.Popen(
        niced(
            tuner_cli(
                "worker",
                "--study",
                "m",
                "--data",
                str(npz),
                "--quiet",
                "--trials-per-process",
                str(mode),
            )
        ),
        env=env,
        stderr=subprocess.DEVNULL,
    )
    return rss_per_trial(worker, study)


def bench(size: str) -> list[Figure]:
    trials = SIZES[size]["trials"]
    out = []
    with scratch("b5") as folder:
        npz = sktime_npz(folder, "basic_motions")
        for mode in MODES:
            log(f"B5: --trials-per-process {mode}, {trials} trials")
            rss = measure(mode, trials, folder, npz)
            name = "all trials in the worker (0)" if mode == 0 else f"recycled every {mode}"
            out.append(
                Figure(
                    "B5",
                    f"worker RSS after trial {len(rss)} / after trial {REFERENCE}, {name}",
                    rss[-1] / rss[REFERENCE - 1],
                    1.10,
                    details={
                        "trials": len(rss),
                        "rss_mib": [round(r) for r in rss],
                        "data": "sktime basic_motions (80 x 100 x 6), 2 epochs",
                    },
                )
            )
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through scripts/bench.py memory")
