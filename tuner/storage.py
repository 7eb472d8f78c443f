"""Where studies live: storage URLs, engine settings per dialect, heartbeats, the claim lock.

Embedded default (no flags): a folder ``.tuner/`` (or ``$TUNER_HOME``) holding ``optuna.db`` and
``mlflow.db`` (SQLite, in WAL mode so several local workers write without lock errors) and
``artifacts/``. Shared: PostgreSQL, with Optuna and MLflow in two different databases.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import InputError, brief, mask  # noqa: F401 (mask: storage.mask)

HOME_ENV = "TUNER_HOME"
STORAGE_ENV = "TUNER_STORAGE"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
HEARTBEAT_ENV = "TUNER_HEARTBEAT"  # "interval" or "interval,grace" in seconds
DEFAULT_HEARTBEAT = (10, 30)
WORKER_CONNECTIONS = 3  # a worker's own, its heartbeat thread's, its claim lock's
CREATION_RACE = ("alembic_version", "already exists")  # another process creating the schema


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or ".tuner")


def embedded(folder: Path | None = None) -> tuple[str, str, str]:
    """Storage URL, tracking URI and artifact location of the embedded default."""
    folder = (folder or home()).resolve()
    return (
        f"sqlite:///{folder / 'optuna.db'}",
        f"sqlite:///{folder / 'mlflow.db'}",
        (folder / "artifacts").as_uri(),
    )


@dataclass(frozen=True)
class Stores:
    storage: str  # Optuna RDB URL
    tracking: str  # MLflow tracking URI
    artifacts: str | None  # artifact location for new experiments (None: the server's default)


def resolve(storage: str | None, tracking_uri: str | None) -> Stores:
    """Flags, then ``$TUNER_STORAGE`` / ``$MLFLOW_TRACKING_URI``, then the embedded default."""
    storage = storage or os.environ.get(STORAGE_ENV)
    tracking_uri = tracking_uri or os.environ.get(TRACKING_ENV)
    default_storage, default_tracking, artifacts = embedded()
    return Stores(
        storage=normalize(storage or default_storage),
        tracking=normalize(tracking_uri or default_tracking),
        artifacts=artifacts if tracking_uri is None else None,
    )


def normalize(url: str) -> str:
    """``postgresql://`` means the psycopg (3) driver, which tuner installs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def database_of(url: str) -> tuple[str, str, str] | None:
    """(family, host:port, database) of a SQL URL; None for http(s) and others."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return None
    family = u.get_backend_name()
    if family == "sqlite":
        return family, "", str(Path(u.database or "").resolve()) if u.database else ":memory:"
    host = u.host or os.environ.get("PGHOST", "localhost")
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    default_port = {"postgresql": 5432, "mysql": 3306}.get(family)
    return family, f"{host}:{u.port or default_port}", u.database or ""


def check_separate(storage_url: str, tracking_uri: str) -> None:
    """Refuse Optuna and MLflow in one database: both own a table ``alembic_version``."""
    a, b = database_of(storage_url), database_of(tracking_uri)
    if a is not None and a == b:
        raise InputError(
            "Optuna storage and MLflow tracking point at the same database "
            f"({mask(tracking_uri)}); they cannot share one (both keep a table "
            "alembic_version): use two databases",
            field="--tracking-uri",
        )


PROBE_TIMEOUT_S = 10  # a tracking server or database that has not answered by then is not there
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")


def check_stores(stores: Stores) -> None:
    """Check that both stores can be reached and written, writing nothing: ``tuner run`` and
    ``tuner create`` call it before they create anything, so that a wrong ``--tracking-uri`` does
    not leave an Optuna study behind, nor a wrong ``--storage`` an empty ``mlflow.db``."""
    _probe(stores.storage, "--storage", optuna=True)
    _probe(stores.tracking, "--tracking-uri", optuna=False)


def _probe(url: str, field: str, *, optuna: bool) -> None:
    from urllib.parse import unquote, urlparse

    shown = f"{field} {mask(url)}"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if url.startswith("sqlite:///"):
        _writable(Path(url.removeprefix("sqlite:///")), shown)
    elif scheme == "grpc" and optuna:
        return  # `tuner proxy` holds the database; make_storage checks the address's form
    elif scheme == "file" and not optuna:
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise InputError("a file: URI must name a local path", field=shown)
        _writable(Path(unquote(parsed.path)), shown)
    elif scheme in ("http", "https") and not optuna:
        _reach_server(url, shown)
    elif optuna or scheme.split("+")[0] in SQL_SCHEMES:
        _reach_database(url, shown)
    # other tracking URIs (databricks, ...) are MLflow's to resolve


def _writable(path: Path, shown: str) -> None:
    """``path`` (a file or folder, perhaps not there yet) could be created or written."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise InputError(f"{existing} is a file, so {path} cannot be created", field=shown)
    if not os.access(existing, os.W_OK):
        raise InputError(f"{existing} is not writable", field=shown)


def _reach_server(url: str, shown: str) -> None:
    """An MLflow tracking server answers its ``/health`` endpoint."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    # /health needs no user; a user:password@ in the URI (MLflow's client accepts one) is not
    # sent, and cannot reach a message
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):  # behind authentication: it answered
            return
        raise InputError(f"the tracking server answered {e.code} {e.reason}", field=shown) from None
    except Exception as e:  # refused, unresolvable, timed out, a malformed URL or port
        reason = getattr(e, "reason", None) or e
        text = brief(reason) if isinstance(reason, BaseException) else mask(str(reason))
        raise InputError(f"cannot reach the tracking server: {text}", field=shown) from None


def _reach_database(url: str, shown: str) -> None:
    """A SQL database answers ``SELECT 1`` (nothing is created)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    try:
        u = make_url(url)
        u.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise InputError(
            "not a database URL this tuner knows (sqlite:///PATH, postgresql://HOST/DB, ...)",
            field=shown,
        ) from None
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            _writable(Path(u.database), shown)
        return
    args = {"connect_timeout": PROBE_TIMEOUT_S} if u.get_backend_name() == "postgresql" else {}
    engine = None
    try:
        engine = create_engine(u, connect_args=args, poolclass=NullPool)  # needs the driver
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:  # no driver, or its own errors: refused, auth, no such database
        from tuner.retry import lost_connection

        if lost_connection(e):
            return  # a server restarting: the store's own opening waits for it
        raise InputError(f"cannot connect: {brief(e)}", field=shown) from None
    finally:
        if engine is not None:
            engine.dispose()


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings per dialect (SQLite options are invalid for psycopg)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith(("postgresql", "mysql")):
        # Optuna only pre-pings MySQL itself. A worker holds about 3 connections: its own,
        # the heartbeat thread's and the claim lock's.
        return {"pool_pre_ping": True, "pool_size": WORKER_CONNECTIONS, "max_overflow": 2}
    return {}


def heartbeat_settings() -> tuple[int, int]:
    raw = os.environ.get(HEARTBEAT_ENV)
    if not raw:
        return DEFAULT_HEARTBEAT
    try:
        parts = [int(p) for p in raw.split(",")]
        interval = parts[0]
        grace = parts[1] if len(parts) > 1 else 3 * interval
        if interval < 1 or grace < interval:
            raise ValueError
    except ValueError:
        raise InputError(
            f"expected 'interval' or 'interval,grace' in whole seconds, got {raw!r}",
            field=HEARTBEAT_ENV,
        ) from None
    return interval, grace


def make_storage(
    url: str,
    *,
    on_stale: Callable[[Any, Any], None] | None = None,
    heartbeat: bool = True,
    create_tables: bool = True,
) -> Any:
    """An Optuna RDB storage with heartbeats (a killed worker's trial is failed and retried).

    ``grpc://host:port`` is a client of Optuna's gRPC storage proxy (``tuner proxy``), which holds
    the database connections for many workers; it has no heartbeats and no claim lock.
    """
    import optuna

    from tuner.retry import TOO_MANY_CONNECTIONS, lost_connection, retrying

    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"expected grpc://HOST:PORT, got {url!r}", field="--storage")
        return optuna.storages.GrpcStorageProxy(host=host, port=int(port))

    interval, grace = heartbeat_settings() if heartbeat else (None, None)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    def open_rdb(again: int = 3) -> Any:
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs(url),
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=on_stale,
                skip_table_creation=not create_tables,
            )
        except Exception as e:  # sqlalchemy / driver errors: unreachable, auth, no database
            if lost_connection(e):
                raise  # a server restarting or cutting connections: waited for by retrying()
            if again and create_tables and any(m in str(e) for m in CREATION_RACE):
                # Another process is creating the schema at the same moment (two first `tuner
                # run`s on a fresh store): its tables or version row came first; open again.
                time.sleep(0.2)
                return open_rdb(again - 1)
            hint = ""
            if getattr(getattr(e, "orig", None), "sqlstate", None) == TOO_MANY_CONNECTIONS:
                hint = f" (a worker needs {WORKER_CONNECTIONS} connections; raise the limit)"
            raise InputError(
                f"cannot open the storage: {brief(e)}{hint}",
                field=f"--storage {mask(url)}",
            ) from None

    storage = retrying(open_rdb, "opening the storage")
    if url.startswith("sqlite"):
        _wal(storage.engine)
    return storage


def check_connection_budget(storage: Any, url: str) -> None:
    """Refuse to start a worker that PostgreSQL's connection limits leave no room for, naming the
    limit, before it claims a trial it could not finish. The limits: the role's and the
    database's CONNECTION LIMIT (not for superusers), and the server's max_connections."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import text

    query = text(
        "SELECT r.rolname, r.rolsuper, r.rolconnlimit, d.datname, d.datconnlimit, "
        "current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int, "
        "(SELECT count(*) FROM pg_stat_activity WHERE usename = current_user), "
        "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') "
        "FROM pg_roles r, pg_database d "
        "WHERE r.rolname = current_user AND d.datname = current_database()"
    )
    with storage.engine.connect() as conn:
        row = conn.execute(query).one()
        pool = storage.engine.pool
        own = pool.checkedin() + pool.checkedout()  # this worker's, counted in the figures
    role, superuser, role_limit, db, db_limit, max_conn, reserved, by_role, by_db, total = row
    limits = [(max_conn - (0 if superuser else reserved), total, "the server's max_connections")]
    if not superuser:
        limits += [
            (role_limit, by_role, f"the CONNECTION LIMIT of role {role!r}"),
            (db_limit, by_db, f"the CONNECTION LIMIT of database {db!r}"),
        ]
    for limit, used, name in limits:
        others = max(used - own, 0)
        if limit >= 0 and limit - others < WORKER_CONNECTIONS:
            raise InputError(
                f"{name} is {limit}, other sessions hold {others}, and a worker needs "
                f"{WORKER_CONNECTIONS}: raise the limit or run fewer workers",
                field=f"--storage {mask(url)}",
            )


def _wal(engine: Any) -> None:
    """WAL lets readers and one writer work at once; it is a persistent property of the file."""
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))


def enable_wal(sqlite_url: str) -> None:
    from sqlalchemy import create_engine

    Path(sqlite_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sqlite_url)
    try:
        _wal(engine)
    finally:
        engine.dispose()
