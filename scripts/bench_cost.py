"""B10 the trial path's cost: CPU time per trial of each side of a distributed study once it
holds ~2,000 trials, and the capacity of one server host that follows (issue 15).

The study (the shipped forecast space on elecdemand) is first filled with finished trials drawn
at random from its space, with the epoch curves, parameters and attributes a real trial leaves
(so TPE and the pruner read a 2,000-trial history); then N stand-in workers (B4's: training is a
fixed wait) run the next trials on a private PostgreSQL server and an MLflow tracking server.
Measured over those trials:

- the worker: CPU seconds of the process that runs trials (all its threads: heartbeat, MLflow
  sender) from one trial's training start to the next, less nothing (the wait uses none), so
  the claim, sampling, the MLflow run, every epoch's report and the close; and the same split
  by stage (``bench_scale_worker.breakdown``);
- PostgreSQL and the MLflow server: CPU seconds of their process trees (reaped children
  included) over the run, and PostgreSQL's committed transactions, per trial.

A trial process is replaced every 10 trials by default, which costs the framework's import
once per process: that is not in these figures (the stand-in keeps one process).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from bench_common import (
    Figure,
    elecdemand_csv,
    log,
    median,
    pg_databases,
    private_postgres,
    scratch,
)
from bench_scale import Servers, _analyse, _tree_cpu, create, run_workers, servers

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"history": 30, "workers": 2, "trials": 12, "wait": 0.2, "epochs": 4},
    "quick": {"history": 500, "workers": 2, "trials": 60, "wait": 0.5, "epochs": 10},
    "full": {"history": 2000, "workers": 4, "trials": 200, "wait": 0.5, "epochs": 10},
}
SERVER_CORES = 2  # the server host the capacity is projected for
TRIAL_SECONDS = (10, 60)


def bench(size: str) -> list[Figure]:
    return path(size) + storages(size)


def path(size: str) -> list[Figure]:
    s = SIZES[size]
    with scratch("b10") as folder, servers(folder, 4 * s["workers"] + 50, "b10") as stores:
        csv = elecdemand_csv(folder)
        create(csv, stores, s["history"] + s["trials"], s["epochs"])
        log(f"B10: filling the study with {s['history']} finished trials")
        fill(stores.storage, csv, s["history"], s["epochs"])
        before = _commits(stores)
        log(f"B10: {s['workers']} stand-in workers, {s['trials']} trials")
        started, _, server_cpu = run_workers(
            folder / "run", s["workers"], s["wait"], csv, stores, BENCH_BREAKDOWN="1"
        )
        commits = {db: n - before[db] for db, n in _commits(stores).items()}
        worker = _worker_cpu(folder / "run")
        wall = _analyse(folder / "run", s["workers"], started, 0.0)
        worker["coordination_wall_ms"] = round(wall["coordination_ms"], 1)
    trials = worker["trials"]
    per_trial = {name: 1000 * cpu / trials for name, cpu in server_cpu.items()}
    servers_ms = sum(per_trial.values())
    capacity = {
        f"workers_at_{t}s_trials": int(SERVER_CORES * t * 1000 / servers_ms) for t in TRIAL_SECONDS
    }
    details = {
        "history": s["history"],
        "trials": trials,
        "workers": s["workers"],
        "epochs_per_trial": s["epochs"],
        "postgresql_ms": round(per_trial["postgresql"], 1),
        "mlflow_ms": round(per_trial["mlflow"], 1),
        "commits_per_trial": {db: round(n / trials, 1) for db, n in commits.items()},
        "trials_per_s_per_server_core": round(1000 / servers_ms, 1),
        **capacity,
    }
    return [
        Figure(
            "B10",
            f"worker path CPU per trial at {s['history']} trials (median; sampling included)",
            worker["median_ms"],
            50.0,
            unit=" ms",
            details=worker,
        ),
        Figure(
            "B10",
            "PostgreSQL + MLflow server CPU per trial",
            servers_ms,
            30.0,
            unit=" ms",
            details=details,
        ),
        Figure(
            "B10",
            f"workers a {SERVER_CORES}-core server host serves at 60 s trials (from CPU time)",
            capacity["workers_at_60s_trials"],
            1000,
            op=">=",
            details=details,
        ),
    ]


def fill(storage: str, csv: Path, n: int, epochs: int) -> None:
    """``n`` finished trials, drawn at random from the study's space, each with its epoch curve
    (the stand-in's scripted one), its parameters and the attributes a worker records."""
    import optuna
    from bench_scale_worker import scripted

    from tuner import records
    from tuner.launch import with_data
    from tuner.sampling import sample

    study = optuna.load_study(study_name="scale", storage=storage)
    spec, space, dataset = with_data(study, str(csv))
    scratchpad = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rng = random.Random(0)
    defaults = {} if dataset.default_window is None else {"window": dataset.default_window}
    for i in range(n):
        trial = scratchpad.ask()
        config = sample(trial, space, max_epochs=spec.max_epochs, defaults=defaults)
        curve = [scripted(config, e) for e in range(config.epochs)]
        stop = len(curve) if rng.random() < 0.5 else rng.randint(2, len(curve))  # half pruned
        for epoch, value in enumerate(curve[:stop]):
            trial.report(value, epoch)
        attrs = {
            records.CUDNN: config.fused_kernel("tensorflow", space.task),
            records.BACKEND: "tensorflow",
            records.SEED: i,
            records.SAMPLER_SEED: rng.randrange(2**31),
            records.EPOCHS: config.epochs,
            records.WORKER: f"host:{1000 + i % 8}",
            records.RUN_ID: f"{i:032x}",
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if stop < len(curve):
            scratchpad.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            scratchpad.tell(trial, min(curve[:stop]))
    study.add_trials(scratchpad.get_trials(deepcopy=False))


def _commits(stores: Servers) -> dict[str, int]:
    """Transactions committed so far in the study's database and in MLflow's."""
    import sqlalchemy

    url = stores.admin.replace("postgresql://", "postgresql+psycopg://")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                sqlalchemy.text(
                    "SELECT datname, xact_commit FROM pg_stat_database"
                    " WHERE datname LIKE 'bench_b10_%'"
                )
            )
            return {("optuna" if "optuna" in name else "mlflow"): int(n) for name, n in rows}
    finally:
        engine.dispose()


def _worker_cpu(folder: Path) -> dict[str, Any]:
    """The worker's CPU per trial (from one trial's training start to the next) and its split
    by stage."""
    per_trial: list[float] = []
    trials = 0
    for path in folder.glob("*.jsonl"):
        rows = sorted(
            (json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["start"]
        )
        trials += len(rows)
        per_trial += [b["cpu"] - a["cpu"] for a, b in zip(rows, rows[1:], strict=False)]
    stages: dict[str, list[float]] = {}
    for path in folder.glob("*.stages.json"):
        for name, (seconds, calls) in json.loads(path.read_text()).items():
            total = stages.setdefault(name, [0.0, 0])
            total[0] += seconds
            total[1] += calls
    n = max(1, trials)
    ms = {k: 1000 * sec / n for k, (sec, _) in stages.items() if not k.startswith("http ")}
    if "open" in ms and "sample" in ms:
        ms["open"] -= ms["sample"]  # the rest of opening: attributes, the MLflow run
    return {
        "trials": trials,
        "median_ms": 1000 * median(per_trial) if per_trial else math.nan,
        "mean_ms": round(1000 * sum(per_trial) / max(1, len(per_trial)), 1),
        "stages_ms_per_trial": {name: round(v, 1) for name, v in sorted(ms.items())},
        "report_calls_per_trial": round(stages.get("report", [0, 0])[1] / n, 1),
        "mlflow_requests_per_trial": {
            k[5:]: round(c / n, 2) for k, (_, c) in sorted(stages.items()) if k.startswith("http ")
        },
    }


# -- Optuna's own trial path on its two shared stores -----------------------------------------


def storages(size: str) -> list[Figure]:
    """Optuna's trial path (``ask``, a dozen parameters, an attribute per setting, a report and
    a pruning question per epoch, ``tell``) run by one client on a study of ``history`` trials,
    on the RDB storage over PostgreSQL (tuner's) and on the journal storage over Redis: CPU per
    trial of the client and of the server. The heartbeat and the claim lock are the RDB
    storage's (PostgreSQL); the journal storage has no heartbeat, so adopting it would need
    both rebuilt on Redis, which only a clear win would justify."""
    import optuna

    s = SIZES[size]
    trials = s["trials"]
    history = _history(s["history"], s["epochs"])
    out: dict[str, dict[str, float]] = {}
    with private_postgres(60) as (admin, pg_pid), pg_databases("b10_rdb", admin=admin) as [url]:
        from tuner.storage import engine_kwargs, make_storage, normalize

        rdb = optuna.storages.get_storage(make_storage(url))
        out["postgresql"] = _optuna_path(rdb, history, trials, s["epochs"], pg_pid)
        # the same without a pre-ping round trip at each connection checkout
        kwargs = {**engine_kwargs(url), "pool_pre_ping": False}
        unpinged = optuna.storages.RDBStorage(normalize(url), engine_kwargs=kwargs)
        out["postgresql, no pre-ping"] = _optuna_path(
            optuna.storages.get_storage(unpinged), history, trials, s["epochs"], pg_pid, "path2"
        )
    redis_pid = _redis_pid()
    if redis_pid is None:
        log("B10: no redis-server on 127.0.0.1:6379; the journal storage is not measured")
    else:
        from optuna.storages.journal import JournalRedisBackend, JournalStorage

        prefix = f"bench-b10-{os.getpid()}"
        backend = JournalRedisBackend("redis://127.0.0.1:6379", prefix=prefix)
        try:
            out["redis"] = _optuna_path(
                JournalStorage(backend), history, trials, s["epochs"], redis_pid
            )
        finally:
            keys = backend._redis.keys(f"{prefix}*")
            if keys:
                backend._redis.delete(*keys)
    cost = {name: r["client_ms"] + r["server_ms"] for name, r in out.items()}
    return [
        Figure(
            "B10",
            f"Optuna's trial path at {s['history']} trials, client + server CPU per trial: "
            "journal storage on Redis / RDB storage on PostgreSQL",
            cost["redis"] / cost["postgresql"] if "redis" in cost else None,
            1.0,
            details=out,
        )
    ]


def _history(n: int, epochs: int) -> list[Any]:
    import optuna

    scratchpad = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(n):
        trial = scratchpad.ask()
        value = _path_params(trial)
        for epoch in range(epochs):
            trial.report(value + 1 / (epoch + 1), epoch)
        scratchpad.tell(trial, value)
    return scratchpad.get_trials(deepcopy=False)


def _path_params(trial: Any) -> float:
    """A dozen parameters shaped like a forecast space's (conditional units per layer)."""
    layers = trial.suggest_int("layers", 1, 3)
    units = [trial.suggest_int(f"units_{i}", 8, 128, log=True) for i in range(1, layers + 1)]
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("recurrent_dropout", 0.0, 0.3)
    trial.suggest_int("window", 24, 144)
    trial.suggest_categorical("batch_size", [32, 64, 128])
    trial.suggest_categorical("optimizer", ["adam", "rmsprop", "sgd"])
    trial.suggest_categorical("residual", ["none", "last", "ridge"])
    trial.suggest_categorical("scaler", ["standard", "minmax"])
    trial.suggest_categorical("bidirectional", [False, True])
    trial.suggest_categorical("highway", [False, True])
    return abs(math.log10(lr) + 2.5) + 8 / units[0]


def _optuna_path(
    storage: Any, history: list[Any], trials: int, epochs: int, server_pid: int, name: str = "path"
) -> dict[str, float]:
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    study.add_trials(history)
    started, server = time.process_time(), _tree_cpu(server_pid)
    for i in range(trials):
        trial = study.ask()
        value = _path_params(trial)
        for key in ("cudnn", "backend", "seed", "sampler_seed", "epochs", "worker"):
            trial.set_user_attr(key, i)
        state = optuna.trial.TrialState.COMPLETE
        for epoch in range(epochs):
            trial.report(value + 1 / (epoch + 1), epoch)
            if trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        for key in ("best_epoch", "epochs_run", "params", "mlflow_run_id"):
            trial.set_user_attr(key, i)
        if state == optuna.trial.TrialState.PRUNED:
            study.tell(trial, state=state)
        else:
            study.tell(trial, value)
    return {
        "client_ms": round(1000 * (time.process_time() - started) / trials, 1),
        "server_ms": round(1000 * (_tree_cpu(server_pid) - server) / trials, 1),
        "trials": trials,
    }


def _redis_pid() -> int | None:
    import psutil

    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "redis-server" and "6379" in " ".join(p.info["cmdline"] or []):
            return int(p.pid)
    return None
