"""Fixtures that own global state: the embedded home, the environment, tiny real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CO2 = ROOT / "examples" / "co2_weekly.csv"
# How the CLI reads the CO2 table: forecast column co2, ordered by date, gaps interpolated.
CO2_OPTIONS = ["--target", "co2", "--time", "date", "--nan", "interpolate"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Every test gets its own embedded home and no store URLs from the environment, and leaves
    the environment as it found it (the CLI run in-process sets variables its workers inherit,
    e.g. ``--max-params``: once, a later test's trials were pruned by an earlier one's limit)."""
    saved = dict(os.environ)
    for var in ("TUNER_STORAGE", "MLFLOW_TRACKING_URI", "TUNER_HEARTBEAT"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("TUNER_HOME", str(home))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    # The study's plots take seconds at each close, in every test that closes one: only the
    # tests that look at them draw them (the `plots` fixture).
    monkeypatch.setenv("TUNER_PLOTS", "0")
    monkeypatch.chdir(tmp_path)
    yield home
    os.environ.clear()
    os.environ.update(saved)


def to_numpy(x: object) -> object:
    """A model's direct output as numpy on any Keras backend (a PyTorch tensor that requires
    grad refuses ``np.asarray``)."""
    import keras

    return keras.ops.convert_to_numpy(x)


def best_plots(study: object, tracking: str) -> set[str]:
    """The names of the files under ``plots/`` on the study's best trial's MLflow run."""
    from mlflow import MlflowClient

    run_id = study.best_trial.user_attrs["mlflow_run_id"]  # type: ignore[attr-defined]
    return {Path(a.path).name for a in MlflowClient(tracking).list_artifacts(run_id, "plots")}


@pytest.fixture
def plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's plots drawn at its close, as users get them."""
    monkeypatch.setenv("TUNER_PLOTS", "1")


@pytest.fixture(autouse=True)
def tuner_logger():
    """The ``tuner`` logger as a library leaves it: a test that runs the CLI in-process gets the
    CLI's handler (its lines on the captured stderr) for that test only; others use caplog."""
    from tuner.log import log

    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.propagate = True
    log.setLevel("NOTSET")


@pytest.fixture
def co2_csv(tmp_path: Path) -> Path:
    """The first 300 weeks of the bundled CO2 series (real data, 26 missing weeks)."""
    path = tmp_path / "co2.csv"
    pd.read_csv(CO2).head(300).to_csv(path, index=False)
    return path


@pytest.fixture
def npz_binary(tmp_path: Path) -> Path:
    """60 sequences of 12 steps x 2 features; the label is whether feature 0 trends up."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    t = np.linspace(0, 1, 12)
    x = rng.normal(0, 0.1, (60, 12, 2))
    x[:, :, 0] += np.where(y[:, None] == 1, t, -t)
    path = tmp_path / "seq.npz"
    np.savez(path, X=x, y=y)
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def space_file(tmp_path: Path):
    def make(text: str, name: str = "space.yaml") -> Path:
        return write(tmp_path / name, text)

    return make


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# -- PostgreSQL -------------------------------------------------------------------------------
PG_ADMIN = os.environ.get("TUNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Connections the PostgreSQL tests hold at most, measured by sampling pg_stat_activity through a
# whole run: 65, in test_twelve_workers_started_at_once (12 workers x ~4.5 on the Optuna database,
# 9 on the MLflow one, 2 admin); checked once at the start, so a busy server fails with the
# reason rather than with "too many clients" in the middle of a test.
PG_CONNECTIONS_NEEDED = 70


def _pg_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true") or bool(
        os.environ.get("TUNER_REQUIRE_POSTGRES")
    )


@pytest.fixture(scope="session")
def pg_admin():
    """A connection to the test server's admin database; CI fails without one, users skip."""
    import psycopg

    try:
        conn = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        reason = f"PostgreSQL not reachable at {PG_ADMIN.split('@')[-1]}: {str(e).strip()[:200]}"
        if _pg_required():
            pytest.fail(f"{reason} (required in CI: .ci/run starts it)", pytrace=False)
        pytest.skip(reason)
    max_conn, used = conn.execute(
        "SELECT current_setting('max_connections')::int, "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    ).fetchone()
    if max_conn - used < PG_CONNECTIONS_NEEDED:
        conn.close()
        reason = (
            f"PostgreSQL at {PG_ADMIN.split('@')[-1]} has {max_conn - used} free connections "
            f"(max_connections {max_conn}, {used} in use); the distributed tests hold up to "
            f"{PG_CONNECTIONS_NEEDED} at once: stop other clients or raise max_connections"
        )
        if _pg_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield conn
    conn.close()


@pytest.fixture
def pg(pg_admin, request):
    """Two fresh databases (Optuna, MLflow) for one test, dropped afterwards."""
    import uuid

    from tuner.testing import databases

    tag = uuid.uuid4().hex[:8]
    with databases(PG_ADMIN, f"tuner_optuna_{tag}", f"tuner_mlflow_{tag}") as urls:
        yield tuple(urls)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path) -> str:
    """An empty Optuna storage of each kind the product supports, as a URL (in the manner of
    Optuna's ``StorageSupplier``): the logic tests that take it run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/optuna.db"
    return request.getfixturevalue("pg")[0]
