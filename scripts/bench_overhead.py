"""B1 overhead: wall time of `tuner run` training a fixed list of 8 architectures (enqueued with
``start_with``, pruning off, MLflow on: the embedded store) against a plain Keras script
(``bench_plain_keras.py``) training the same 8 on the same windows and epochs. Both are whole
processes timed from start to exit, framework import included, one after the other."""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import Any

from bench_common import SCRIPTS, Figure, elecdemand_csv, log, nice_env, run, scratch, tuner_cli
from bench_driver import write_space

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"rows": 1500, "epochs": 1},
    "quick": {"rows": 3000, "epochs": 2},
    # the whole series (17,520 half-hours) and 5 epochs: ~40 s of training per architecture
    # here, against which a study's fixed costs (processes, stores, plots) are measured
    "full": {"rows": None, "epochs": 5},
}
WINDOW, BATCH = 48, 64
CONFIGS = [
    {"layers": layers, "units": units, "bidirectional": bi}
    for layers, units, bi in itertools.product((1, 2), (32, 64), (False, True))
]


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    with scratch("b1") as folder:
        csv = elecdemand_csv(folder, s["rows"])
        space = write_space(
            folder / "eight.yaml",
            {
                "task": "forecast",
                "objective": "val_mae_original",
                "epochs": s["epochs"],
                "patience": 0,
                "seed": 0,
                "sampler": "random",
                "pruner": "none",
                "params": {
                    "layers": [1, 2],
                    "units": [32, 64],
                    "bidirectional": [False, True],
                    "window": WINDOW,
                    "batch_size": BATCH,
                    "scaler": "standard",
                    "loss": "mse",
                    "optimizer": "adam",
                    "learning_rate": 1e-3,
                    "schedule": "constant",
                },
                "start_with": CONFIGS,
            },
        )
        log("B1: plain Keras script")
        started = time.perf_counter()
        plain_out = run(
            [
                __import__("sys").executable,
                str(SCRIPTS / "bench_plain_keras.py"),
                str(csv),
                "Demand",
                str(WINDOW),
                str(s["epochs"]),
                str(BATCH),
                json.dumps(CONFIGS),
            ],
            nice_env(),
        )
        plain = time.perf_counter() - started
        log("B1: tuner run")
        env = nice_env(TUNER_HOME=str(folder / "home"))
        started = time.perf_counter()
        run(
            tuner_cli(
                "run",
                str(space),
                "--data",
                str(csv),
                "--target",
                "Demand",
                "--time",
                "t",
                "--trials",
                "8",
                "--quiet",
            ),
            env,
            cwd=folder,
        )
        tuned = time.perf_counter() - started
        status = json.loads(run(tuner_cli("status", "--json"), env, cwd=folder))
        trained = _training_seconds(folder / "home")
        per_trial = _training_seconds_per_trial(folder / "home")
        in_trials = _trial_seconds(folder / "home")
    plain_rows = [json.loads(line) for line in plain_out.splitlines() if line.startswith("{")]
    plain_vals = [r["val_mae_original"] for r in plain_rows]
    plain_epochs = sum(r["epoch_seconds"] for r in plain_rows)
    # Time not spent in epochs (processes, imports, stores, evaluation, plots), beyond what the
    # plain script spends so, over the plain script's wall time: the overhead whatever the
    # epochs themselves cost in each.
    extra = None if trained is None else ((tuned - trained) - (plain - plain_epochs)) / plain
    return [
        Figure(
            "B1",
            "wall time of `tuner run` (8 enqueued configs) / plain Keras script",
            tuned / plain,
            1.03,
            details={
                "data": f"fpp2 elecdemand, {s['rows'] or 17520} rows",
                "epochs": s["epochs"],
                "window": WINDOW,
                "batch_size": BATCH,
                "tuner_s": round(tuned, 1),
                "plain_s": round(plain, 1),
                "tuner_epoch_seconds_sum": trained,
                # wall of the trials (ask to tell) and the rest: processes, study setup, plots
                "tuner_trial_seconds_sum": in_trials,
                "tuner_outside_trials_s": None
                if in_trials is None
                else round(tuned - in_trials, 1),
                "tuner_in_trials_outside_epochs_s": None
                if in_trials is None or trained is None
                else round(in_trials - trained, 1),
                "tuner_complete": status["complete"],
                "plain_epoch_seconds_sum": round(plain_epochs, 1),
                "plain_epoch_seconds": [round(r["epoch_seconds"], 1) for r in plain_rows],
                "tuner_epoch_seconds": per_trial,
                "plain_best_val_mae": min(plain_vals),
                "tuner_best_val_mae": status["best_value"],
            },
        ),
        Figure(
            "B1",
            "time outside epochs, tuner minus plain script, / plain script's wall time",
            math.nan if extra is None else extra,
            0.03,
            details={
                "tuner_outside_epochs_s": None if trained is None else round(tuned - trained, 1),
                "plain_outside_epochs_s": round(plain - plain_epochs, 1),
            },
        ),
    ]


def _training_seconds(home: Any) -> float | None:
    """Sum of the epochs' own wall times that tuner recorded (MLflow metric epoch_seconds)."""
    import sqlite3

    try:
        with sqlite3.connect(home / "mlflow.db") as db:
            (total,) = db.execute(
                "SELECT SUM(value) FROM metrics WHERE key = 'epoch_seconds'"
            ).fetchone()
        return None if total is None else round(float(total), 1)
    except sqlite3.Error:
        return None


def _training_seconds_per_trial(home: Any) -> list[float]:
    """Each trial's epoch seconds, in trial order (from the trial runs' names)."""
    import sqlite3

    try:
        with sqlite3.connect(home / "mlflow.db") as db:
            rows = db.execute(
                "SELECT r.name, SUM(m.value) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
                "WHERE m.key = 'epoch_seconds' GROUP BY r.name"
            ).fetchall()
    except sqlite3.Error:
        return []
    return [round(v, 1) for _, v in sorted(rows, key=lambda r: int(r[0].split("-")[-1]))]


def _trial_seconds(home: Any) -> float | None:
    """Sum of the trials' wall times, from Optuna's start and completion times."""
    import optuna

    try:
        storage = f"sqlite:///{home / 'optuna.db'}"
        name = optuna.get_all_study_names(storage)[0]
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:  # a missing store: the figure stays, the breakdown does not
        return None
    spans = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.trials
        if t.datetime_start is not None and t.datetime_complete is not None
    ]
    return round(sum(spans), 1)
