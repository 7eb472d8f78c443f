"""B9 windows: the memory one forecast trial takes to train on a long series, its windows copied
whole into Keras (what tuner did before) or copied batch by batch out of the views (what it does
now, past 256 MiB of windows). Each mode trains one epoch in a fresh process. A process's training
memory is its peak resident memory above what it held once the data was loaded and the framework
imported; the framework's own cost of building and tracing the trial is that of the same trial on
20,000 rows. The figure: training memory beyond that cost, over the size of the series itself
(float64, every column)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_common import Figure, log, nice_env, niced, scratch

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"rows": 20_000},
    "quick": {"rows": 200_000},
    "full": {"rows": 1_000_000},
}
WINDOW = 64
TARGET = 4.0  # training may take a few copies of the series, never window x of it
SMALL = 20_000  # rows of the run that measures the framework's fixed cost
# TUNER_IN_MEMORY_MIB: "copied whole" as tuner did before; None: tuner's default
MODES = {"copied whole": "1000000", "batch by batch": None}

CHILD = """
import json, resource, sys
import numpy as np, pandas as pd
from tuner.config import TrialConfig
from tuner.data import DataOptions, load
from tuner.device import import_keras
from tuner.fitting import fit

path, window = sys.argv[1], int(sys.argv[2])
series = load(DataOptions(path=path, target=("y",)), window)
import_keras()
series.arrays("standard", window)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
config = TrialConfig(units=(8,), window=window, batch_size=1024, epochs=1)
fit(series, config, objective="val_mae_original", direction="minimize")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
data = series.values.nbytes / 2**20
print(json.dumps({"before_mib": before, "peak_mib": peak, "data_mib": data}))
"""


def measure(csv: Path, mode: str) -> dict[str, float]:
    limit = MODES[mode]
    env = nice_env(**({} if limit is None else {"TUNER_IN_MEMORY_MIB": limit}))
    if limit is None:
        env.pop("TUNER_IN_MEMORY_MIB", None)
    out = subprocess.run(
        niced([sys.executable, "-c", CHILD, str(csv), str(WINDOW)]),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench(size: str) -> list[Figure]:
    import numpy as np
    import pandas as pd

    rows = SIZES[size]["rows"]
    figures = []
    with scratch("b9") as folder:

        def series(n: int) -> Path:
            t = np.arange(n)
            rng = np.random.default_rng(0)
            frame = pd.DataFrame({"x": np.sin(t / 24) + rng.normal(0, 0.1, n)})
            frame["y"] = frame["x"].shift(1, fill_value=0.0) * 0.8 + rng.normal(0, 0.1, n)
            path = folder / f"long-{n}.csv"
            frame.to_csv(path, index=False)
            return path

        log(f"B9: the framework's fixed cost: {SMALL:,} rows")
        small = measure(series(SMALL), "batch by batch")
        fixed = small["peak_mib"] - small["before_mib"]
        csv = series(rows)
        for mode in MODES:
            log(f"B9: {rows:,} rows, window {WINDOW}, windows {mode}")
            m = measure(csv, mode)
            extra = m["peak_mib"] - m["before_mib"]
            details = {k: round(v, 1) for k, v in m.items()}
            details |= {"extra_mib": round(extra, 1), "fixed_cost_mib": round(fixed, 1)}
            figures.append(
                Figure(
                    "B9",
                    f"training memory beyond the fixed cost / series size, {rows:,} rows x 2, "
                    f"window {WINDOW}, windows {mode}",
                    max(0.0, extra - fixed) / m["data_mib"],
                    TARGET,
                    details=details,
                )
            )
    return figures


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through scripts/bench.py windows")
