"""The harness the tests and the scripts (benchmarks, the chaos run) share, as ``optuna.testing``
serves Optuna's: a free port, waiting for a condition, processes in their own group, a real
``mlflow server`` on a local port, fresh PostgreSQL databases. The product does not use it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """``predicate()``'s first true value within ``timeout`` seconds; else ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def start(command: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process in its own session (process group), stdout and stderr to ``log_path``."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def group_alive(pgid: int) -> list[int]:
    """Pids still alive in a process group (zombies excluded)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            alive.append(int(entry.name))
    return alive


def tail(path: Path, lines: int = 20) -> list[str]:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:400] for line in text[-lines:]]


def sqlite_trial_reporting(db: Path) -> bool:
    """Whether a RUNNING trial of the SQLite storage ``db`` has reported an epoch (a study is
    mid-training). Read-only: opening it with Optuna would create its tables, racing the
    creation by `tuner run` itself; no file yet is False."""
    import sqlite3

    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c,
    ):
        row = c.execute(
            "SELECT count(*) FROM trials t JOIN trial_intermediate_values v "
            "ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING'"
        ).fetchone()
        return bool(row and row[0])
    return False


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL with the psycopg 3 driver named (as MLflow's server needs it)."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class MlflowServer:
    """A real ``mlflow server`` on a free local port, one web worker, its backend ``backend``
    and its artifacts in ``artifacts``; it can be stopped and started again on the same port.
    ``command`` replaces ``mlflow server`` (e.g. the compose file's script); its output goes to
    ``logs`` (a temporary folder if None)."""

    def __init__(
        self,
        backend: str,
        artifacts: Path,
        *,
        logs: Path | None = None,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.backend = sqlalchemy_url(backend)
        self.artifacts = artifacts
        self.logs = logs or Path(tempfile.mkdtemp(prefix="mlflow-server-"))
        self.command = list(command or [sys.executable, "-m", "mlflow", "server"])
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 180, attempts: int = 1) -> float:
        """Start the server and wait for ``/health``; returns the seconds it took. A server that
        exits at once is started again, up to ``attempts`` times (a port that lingers after a
        kill)."""
        self.starts += 1
        bin_dir = Path(sys.executable).parent
        command = [
            *self.command,
            "--backend-store-uri",
            self.backend,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--artifacts-destination",
            str(self.artifacts),
            "--workers",
            "1",
        ]
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", **self.env}
        began = time.monotonic()
        log_path = self.logs / "mlflow.log"
        for attempt in range(attempts):
            log_path = self.logs / f"mlflow-{self.starts}-{attempt}.log"
            self.proc = start(command, log_path, env)
            while time.monotonic() - began < timeout:
                if self.proc.poll() is not None:
                    break
                if self.healthy():
                    return time.monotonic() - began
                time.sleep(0.3)
            else:
                raise TimeoutError(f"mlflow server not healthy after {timeout} s: {log_path}")
            time.sleep(2)
        raise RuntimeError(
            f"mlflow server exited with {self.proc.returncode if self.proc else None}: "
            + " | ".join(tail(log_path, 10))
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it and its web workers (they may outlive the main process)."""
        if self.proc is None or self.proc.poll() is not None and not group_alive(self.proc.pid):
            return
        kill_group(self.proc, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait(timeout=15)
        deadline = time.monotonic() + 10
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        kill_group(self.proc)


@contextlib.contextmanager
def databases(admin: str, *names: str) -> Iterator[list[str]]:
    """Fresh PostgreSQL databases ``names`` on the server of ``admin`` (a URL to a database
    there), dropped afterwards (``WITH (FORCE)``: a killed worker may hold connections)."""
    import psycopg

    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
