"""Storage URLs: masking, dialect settings, the two-databases rule, the claim lock."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tuner import storage as st
from tuner.errors import InputError


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://tuner:s3cret@db:5432/optuna", "postgresql://tuner:***@db:5432/optuna"),
        (
            "postgresql://tuner@db/optuna?password=s3cret&sslmode=require",
            "postgresql://tuner@db/optuna?password=***&sslmode=require",
        ),
        ("http://user:pw@mlflow:5000", "http://user:***@mlflow:5000"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql://tuner:s3cr/et:x@db/optuna", "postgresql://tuner:***@db/optuna"),
        ("postgresql://u@db/o?sslpassword=k3y", "postgresql://u@db/o?sslpassword=***"),
    ],
)
def test_mask_hides_passwords(url: str, masked: str) -> None:
    assert st.mask(url) == masked


def test_postgres_means_psycopg3() -> None:
    assert st.normalize("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert st.normalize("sqlite:///x.db") == "sqlite:///x.db"


def test_same_database_is_refused_and_two_are_fine(tmp_path) -> None:
    with pytest.raises(
        InputError, match=r"--tracking-uri: .*same database \(postgresql://u:\*\*\*@"
    ):
        st.check_separate(
            "postgresql://u:pw@localhost:5432/db", "postgresql://u:pw@127.0.0.1:5432/db"
        )
    st.check_separate("postgresql://u@h/optuna", "postgresql://u@h/mlflow")
    with pytest.raises(InputError, match="same database"):  # the default port is the same
        st.check_separate("postgresql://u@h/db", "postgresql://u@h:5432/db")
    st.check_separate("postgresql://u@h/optuna", "http://h:5000")
    with pytest.raises(InputError, match="same database"):
        st.check_separate(
            f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/../{tmp_path.name}/a.db"
        )


def test_engine_settings_depend_on_the_dialect() -> None:
    assert st.engine_kwargs("sqlite:///x.db") == {"connect_args": {"timeout": 60}}
    pg = st.engine_kwargs("postgresql+psycopg://u@h/db")
    assert pg["pool_pre_ping"] is True and "connect_args" not in pg


def test_heartbeat_settings(monkeypatch) -> None:
    assert st.heartbeat_settings() == st.DEFAULT_HEARTBEAT
    monkeypatch.setenv(st.HEARTBEAT_ENV, "2")
    assert st.heartbeat_settings() == (2, 6)
    monkeypatch.setenv(st.HEARTBEAT_ENV, "2,1")
    with pytest.raises(InputError, match="TUNER_HEARTBEAT: expected"):
        st.heartbeat_settings()


def test_resolve_prefers_flags_then_environment_then_embedded(monkeypatch, clean_env) -> None:
    stores = st.resolve(None, None)
    assert stores.storage == f"sqlite:///{clean_env.resolve() / 'optuna.db'}"
    assert stores.artifacts == (clean_env.resolve() / "artifacts").as_uri()
    monkeypatch.setenv(st.STORAGE_ENV, "postgresql://u@h/optuna")
    monkeypatch.setenv(st.TRACKING_ENV, "http://h:5000")
    stores = st.resolve(None, None)
    assert (stores.storage, stores.tracking, stores.artifacts) == (
        "postgresql+psycopg://u@h/optuna",
        "http://h:5000",
        None,
    )
    assert st.resolve("sqlite:///f.db", None).storage == "sqlite:///f.db"


def test_unreachable_storage_is_one_line_without_password() -> None:
    with pytest.raises(InputError) as info:
        st.make_storage("postgresql+psycopg://u:hunter2@127.0.0.1:1/optuna", heartbeat=False)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    assert "cannot open the storage" in str(info.value)


def test_sqlite_claim_lock_serializes(tmp_path) -> None:
    from tuner.liveness import claim_lock

    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = st.make_storage(url, heartbeat=False)
    inside, overlaps = [], []

    def hold() -> None:
        with claim_lock(storage, url, "s"):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [0, 0, 0, 0]


def test_ui_command_points_mlflow_at_the_study_store() -> None:
    from tuner.cli import ui_command

    command, env = ui_command(
        "postgresql://u:pw@h/mlflow", "file:///h/artifacts", "127.0.0.1", 5000
    )
    assert command == [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        "5000",
        "--workers",
        "1",
    ]
    assert env == {
        "MLFLOW_BACKEND_STORE_URI": "postgresql://u:pw@h/mlflow",
        "MLFLOW_DEFAULT_ARTIFACT_ROOT": "file:///h/artifacts",
    }
    assert "pw" not in " ".join(command), "no password in process arguments"


def test_store_probes_name_what_is_wrong_and_leave_other_schemes_to_mlflow(tmp_path) -> None:
    """Issue 10: a bad tracking URI or storage URL left files or a study behind."""
    from tuner.storage import Stores, check_stores

    ok = f"sqlite:///{tmp_path}/optuna.db"
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = {
        Stores(ok, f"file://{afile}/mlruns", None): "is a file, so",
        Stores(ok, "http://127.0.0.1:9", None): "cannot reach the tracking server",
        Stores("foo://x", f"sqlite:///{tmp_path}/mlflow.db", None): "not a database URL",
        Stores(f"sqlite:///{afile}/optuna.db", ok, None): "is a file, so",
    }
    # a user:password@ in an http URI is not sent to /health, and never shown (no port once
    # made urllib raise a traceback quoting the password)
    cases[Stores(ok, "http://u:s3cret@127.0.0.1/", None)] = "cannot reach the tracking server"
    cases[Stores(ok, "mysql://u:s3cret@127.0.0.1/x", None)] = "cannot connect: "  # no driver
    for stores, expected in cases.items():
        with pytest.raises(InputError, match=expected) as info:
            check_stores(stores)
        assert "s3cret" not in str(info.value) and "\n" not in str(info.value)
    check_stores(Stores(ok, "databricks", None))  # MLflow's to resolve, not refused here
    check_stores(Stores(ok, f"sqlite:///{tmp_path}/new/mlflow.db", None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"], "nothing written"


def test_two_processes_creating_one_fresh_store_both_open_it(tmp_path) -> None:
    """Two first `tuner run`s on a fresh home create the schema at once: the second to record
    Optuna's schema version failed ("UNIQUE constraint failed: alembic_version")."""
    import subprocess

    url = f"sqlite:///{tmp_path}/optuna.db"
    code = (
        "import sys, time; from tuner.storage import make_storage\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "make_storage(sys.argv[1], heartbeat=False)\n"
    )
    start = str(time.time() + 3.0)  # both past their imports, then at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, start], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-500:] for e in errors]
