"""B4 scale: trial throughput of N worker processes on one study, on PostgreSQL and a real MLflow
tracking server, where each trial's training is a fixed wait (``bench_scale_worker.py``) and the
rest of the trial path is the product's.

Efficiency = achieved / ideal throughput = the share of worker time spent waiting ("on the GPU")
while every worker is running (from the last worker's first trial to the first worker's last).
Coordination per trial = a worker's time from one trial's start to its next, less the wait.
Stages of increasing N extend one study, so later stages sample from a larger history.

Workers hold about 3 PostgreSQL connections each (pool, heartbeat, claim lock). The machine's
shared server allows 100, so the benchmark starts a PostgreSQL server of its own with room for
its largest stage (``max_connections`` = 4 N + 50), as a 64-worker deployment would configure
it; every stage reaches it directly, as ``tuner worker`` does by default.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import (
    ROOT,
    SCRIPTS,
    Figure,
    elecdemand_csv,
    log,
    median,
    nice_env,
    niced,
    pg_databases,
    private_postgres,
    run,
    scratch,
    tuner_cli,
)

from tuner.testing import free_port

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"workers": [2], "wait": 0.5, "rounds": 3, "epochs": 4},
    "quick": {"workers": [4, 8], "wait": 2.0, "rounds": 4, "epochs": 5},
    # 17 rounds of 120 workers in all: 2,040 trials in one study, which grows stage by stage
    "full": {"workers": [8, 16, 32, 64], "wait": 10.0, "rounds": 17, "epochs": 10},
}


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Servers:
    """A private PostgreSQL server with the study's and MLflow's databases, and an MLflow
    tracking server on the latter: what a fleet's workers share."""

    admin: str
    storage: str
    tracking: str
    pids: dict[str, int]  # the servers' root processes, by name

    def cpu(self) -> dict[str, float]:
        return {name: _tree_cpu(pid) for name, pid in self.pids.items()}


@contextmanager
def servers(folder: Path, max_connections: int, prefix: str) -> Iterator[Servers]:
    with (
        private_postgres(max_connections) as (admin, pg_pid),
        pg_databases(f"{prefix}_optuna", f"{prefix}_mlflow", admin=admin) as (optuna_db, ml_db),
    ):
        run(tuner_cli("db", "init", "--storage", optuna_db, "--tracking-uri", ml_db), nice_env())
        port = free_port()
        log(f"{prefix}: mlflow server on port {port}")
        ml_server = subprocess.Popen(
            niced(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    ml_db.replace("postgresql://", "postgresql+psycopg://"),
                    "--artifacts-destination",
                    str(folder / "artifacts"),
                    "--serve-artifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "2",
                ]
            ),
            env=nice_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            tracking = f"http://127.0.0.1:{port}"
            _wait_http(f"{tracking}/health", ml_server)
            yield Servers(
                admin, optuna_db, tracking, {"mlflow": ml_server.pid, "postgresql": pg_pid}
            )
        finally:
            ml_server.terminate()
            try:
                ml_server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                ml_server.kill()


def create(csv: Path, stores: Servers, trials: int, epochs: int) -> None:
    """The stand-in study (the shipped forecast space on elecdemand), or its target raised."""
    run(
        tuner_cli(
            "create",
            str(ROOT / "search_spaces" / "forecast.yaml"),
            "--data",
            str(csv),
            "--target",
            "Demand",
            "--time",
            "t",
            "--study",
            "scale",
            "--trials",
            str(trials),
            "--max-epochs",
            str(epochs),
            "--storage",
            stores.storage,
            "--tracking-uri",
            stores.tracking,
            "--quiet",
        ),
        nice_env(),
    )


def bench(size: str) -> list[Figure]:
    s = SIZES[size]
    out: list[Figure] = []
    with scratch("b4") as folder, servers(folder, 4 * max(s["workers"]) + 50, "b4") as stores:
        csv = elecdemand_csv(folder)
        target = 0
        for n in s["workers"]:
            target += s["rounds"] * n
            create(csv, stores, target, s["epochs"])
            log(f"B4: {n} workers, {s['rounds'] * n} trials, wait {s['wait']} s")
            stage = _stage(folder / f"n{n}", n, s, csv, stores)
            stage["trials_in_study_at_end"] = target
            out += [
                Figure(
                    "B4",
                    f"achieved / ideal throughput, N={n} (PostgreSQL, MLflow server)",
                    stage["efficiency"],
                    0.90,
                    op=">=",
                    details=stage,
                ),
                Figure(
                    "B4",
                    f"coordination per trial, N={n}",
                    stage["coordination_ms"],
                    50.0,
                    unit=" ms",
                    details={
                        "mean_ms": stage["coordination_mean_ms"],
                        "worker_cpu_ms_per_trial": stage["coordination_cpu_ms"],
                    },
                ),
            ]
    return out


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants so far (reaped ones included)."""
    import psutil

    top = psutil.Process(pid)
    t = top.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in top.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_workers(
    folder: Path, n: int, wait: float, csv: Path, stores: Servers, **env_extra: str
) -> tuple[float, float, dict[str, float]]:
    """N stand-in workers on the study until it has its target: their start (all at once),
    their peak RSS together (GiB), and the servers' CPU seconds meanwhile."""
    import psutil

    folder.mkdir(parents=True)
    go = folder / "go"
    env = nice_env(BENCH_WAIT=str(wait), BENCH_LOG=str(folder), BENCH_GO=str(go), **env_extra)
    command = [
        sys.executable,
        str(SCRIPTS / "bench_scale_worker.py"),
        "worker",
        "--study",
        "scale",
        "--data",
        str(csv),
        "--storage",
        stores.storage,
        "--tracking-uri",
        stores.tracking,
        "--trials-per-process",
        "0",
        "--quiet",
    ]
    procs = [
        subprocess.Popen(niced(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    deadline = time.monotonic() + 60 + 10 * n
    while len(list(folder.glob("ready-*"))) < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError("the stand-in workers did not get ready")
        time.sleep(0.5)
    go.touch()
    started = time.time()
    server_cpu = stores.cpu()
    peak_rss = 0.0
    while any(p.poll() is None for p in procs):
        total = 0
        for p in procs:
            try:
                total += sum(q.memory_info().rss for q in psutil.Process(p.pid).children(True))
                total += psutil.Process(p.pid).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak_rss = max(peak_rss, total / 2**30)
        time.sleep(2)
    server_cpu = {name: cpu - server_cpu[name] for name, cpu in stores.cpu().items()}
    errors = [p.stderr.read().decode()[-800:] for p in procs if p.returncode != 0 and p.stderr]
    if errors:
        raise RuntimeError(f"{len(errors)} stand-in workers failed; one said:\n{errors[0]}")
    return started, peak_rss, server_cpu


def _stage(folder: Path, n: int, s: dict[str, Any], csv: Path, stores: Servers) -> dict[str, Any]:
    started, peak_rss, server_cpu = run_workers(folder, n, s["wait"], csv, stores)
    out = _analyse(folder, n, started, peak_rss)
    # What the shared servers cost per trial: on a real deployment the workers are on their own
    # machines, and only these share one; here everything shares 2 cores.
    out["server_cpu_ms_per_trial"] = {
        name: round(1000 * seconds / out["trials"], 1) for name, seconds in server_cpu.items()
    }
    return out


def _analyse(folder: Path, n: int, started: float, peak_rss: float) -> dict[str, Any]:
    per_worker = []
    for path in folder.glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        per_worker.append(sorted(rows, key=lambda r: r["start"]))
    t0 = max(w[0]["start"] for w in per_worker)
    t1 = min(w[-1]["end"] for w in per_worker)
    if t1 <= t0:  # no moment when all were busy: use the whole run
        t0, t1 = started, max(w[-1]["end"] for w in per_worker)
    waited = 0.0
    coordination, cpu = [], []
    for rows in per_worker:
        for r in rows:
            overlap = max(0.0, min(r["end"], t1) - max(r["start"], t0))
            waited += overlap * r["slept"] / max(1e-9, r["end"] - r["start"])
        for a, b in zip(rows, rows[1:], strict=False):
            coordination.append(b["start"] - a["start"] - a["slept"])
            cpu.append(b["cpu"] - a["cpu"])  # the worker's CPU in one trial (sleeps use none)
    waits = [r["slept"] for rows in per_worker for r in rows]
    trials = sum(len(rows) for rows in per_worker)
    done_in_window = sum(1 for rows in per_worker for r in rows if t0 <= r["end"] <= t1)
    mean_wait = sum(waits) / len(waits)
    return {
        "workers": n,
        "workers_that_ran": len(per_worker),
        "trials": trials,
        "efficiency": waited / (n * (t1 - t0)),
        "window_s": round(t1 - t0, 1),
        "wall_s": round(time.time() - started, 1),
        "achieved_trials_per_s": round(done_in_window / (t1 - t0), 3),
        "ideal_trials_per_s": round(n / mean_wait, 3),
        "mean_wait_s": round(mean_wait, 2),
        "coordination_ms": median(coordination) * 1000 if coordination else float("nan"),
        "coordination_mean_ms": round(1000 * sum(coordination) / max(1, len(coordination)), 1),
        "coordination_cpu_ms": round(1000 * median(cpu), 1) if cpu else None,
        "peak_rss_gib": round(peak_rss, 2),
        "load_average": round(__import__("os").getloadavg()[0], 1),
    }
