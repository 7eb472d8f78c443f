"""Retry storage calls through a lost connection, with bounded backoff and a visible message.

A trial is not failed because one query failed: the worker waits (0.5 s, 1 s, 2 s, ... at most
10 s between tries) for up to ``$TUNER_DB_RETRY_SECONDS`` (120 by default), then stops with a
clear error (exit 1). Only transient errors are retried: a lost or refused connection, an
internal storage error; a wrong query or a bad value fails at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from optuna.storages import BaseStorage, RDBStorage, get_storage
from optuna.storages._heartbeat import BaseHeartbeat  # public in use (fail_stale_trials), not named

from tuner.errors import FatalError, brief
from tuner.log import log

T = TypeVar("T")
RETRY_ENV = "TUNER_DB_RETRY_SECONDS"
DEFAULT_LIMIT = 120.0


def transient_errors() -> tuple[type[BaseException], ...]:
    import optuna
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        optuna.exceptions.StorageInternalError,
    )


# SQLSTATE classes of a server that went away or is busy, not of a wrong request: connection
# exception, transaction rollback, insufficient resources, operator intervention, system error.
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "58")
TOO_MANY_CONNECTIONS = "53300"
# A failed login carries no SQLSTATE in psycopg: these are told by their message.
_PAUSED_MESSAGES = (
    "not currently accepting connections",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
)
_LIMIT_HINT = (
    " (a connection limit is too low: each worker needs about 3 connections; raise the role's"
    " or database's CONNECTION LIMIT or max_connections, or run fewer workers)"
)
_LOST_MESSAGES = ("server closed the connection", "terminating connection", "connection reset")


def lost_connection(e: BaseException) -> bool:
    """Whether a database error is a lost or shut-down server (worth retrying), not a bad request.

    Used where a failure would otherwise be reported as bad input (opening the storage): a wrong
    host, password or database name must fail at once; a connection cut by an administrator or a
    restarting server is waited for.
    """
    import sqlalchemy.exc

    # Optuna wraps the driver's error in its own (StorageInternalError ... from e).
    seen: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and cause not in seen and len(seen) < 8:
        seen.append(cause)
        if isinstance(cause, sqlalchemy.exc.DBAPIError):
            return cause.orig is not None and _lost(cause.orig)
        cause = cause.__cause__ or cause.__context__
    return False


def _lost(orig: BaseException) -> bool:
    sqlstate = getattr(orig, "sqlstate", None)
    text = str(orig).lower()
    if sqlstate == TOO_MANY_CONNECTIONS:  # a limit too low for the workers: say so at once
        return False
    if any(m in text for m in _PAUSED_MESSAGES):
        return True  # a pause (ALTER DATABASE ... ALLOW_CONNECTIONS false, a restart)
    if sqlstate:
        return str(sqlstate)[:2] in _TRANSIENT_SQLSTATE
    return any(m in text for m in _LOST_MESSAGES)


@dataclass
class Clock:
    """Time as retries and backoffs see it; a test replaces its functions."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


clock = Clock()


@dataclass
class Backoff:
    """Waits that double from ``first`` up to ``cap``; ``reset`` after a success."""

    first: float = 0.5
    cap: float = 10.0
    delay: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay = self.first

    def next(self) -> float:
        wait, self.delay = self.delay, min(self.delay * 2, self.cap)
        return wait

    def reset(self) -> None:
        self.delay = self.first


class _Outage:
    # time.monotonic() of the last storage error this process saw. A process that just started
    # cannot know whether the storage was down a moment ago: it counts as having seen one.
    last: float = time.monotonic()


def note_outage() -> None:
    _Outage.last = clock.monotonic()


def seconds_since_outage() -> float:
    """Since this process last saw the storage fail (inf if never).

    After an outage every worker's heartbeats are old, through no fault of theirs; a worker
    waits a grace period before it judges other trials stale (see ``study.sweep``).
    """
    return clock.monotonic() - _Outage.last


def limit() -> float:
    raw = os.environ.get(RETRY_ENV)
    return float(raw) if raw else DEFAULT_LIMIT


def retrying(
    call: Callable[[], T], what: str, *, sleep: Callable[[float], None] | None = None
) -> T:
    """``call()``, retried on transient storage errors until the time limit."""

    transient = transient_errors()
    budget = limit()
    backoff = Backoff(0.5, 10.0)
    waited, attempt = 0.0, 0
    while True:
        try:
            return call()
        except transient as e:
            note_outage()
            attempt += 1
            cause = brief(e, 10_000)
            if getattr(getattr(e, "orig", None), "sqlstate", None) == TOO_MANY_CONNECTIONS:
                cause += _LIMIT_HINT
            delay = backoff.next()
            if waited + delay > budget:
                raise FatalError(
                    f"the storage did not answer for {waited:g} s while {what}: {cause}"
                ) from e
            message = f"storage error while {what} ({cause[:200]}); retry {attempt} in {delay:g} s"
            log.warning("%s", message)
            (sleep or clock.sleep)(delay)
            waited += delay


def retrying_storage(storage: Any) -> Any:
    """``storage`` (an RDB storage from ``storage.make_storage``) behind Optuna's trial cache,
    with every call retried through transient errors: what a study loaded on it does reads as
    plain calls. Attributes other than the storage API (``engine``, the heartbeat settings) are
    the RDB storage's."""
    if not isinstance(storage, RDBStorage):
        return storage  # a gRPC proxy client: no database errors to retry here, no heartbeat
    # the API's methods are set on the class below, from Optuna's base classes
    return RetryingStorage(get_storage(storage), storage)  # type: ignore[abstract]


class _Unretried(threading.local):
    depth = 0


@contextlib.contextmanager
def unretried(storage: Any) -> Iterator[None]:
    """Calls on ``storage`` from this thread fail at once inside the block, for a caller that
    retries the whole block: a section under the claim lock, whose lock went with the
    connection the error cut, must take the lock again rather than go on without it."""
    flag = getattr(storage, "_unretried", None)
    if flag is None:  # not a retrying storage: nothing to switch off
        yield
        return
    flag.depth += 1
    try:
        yield
    finally:
        flag.depth -= 1


class _Batch(threading.local):
    trial_id: int | None = None
    writes: list[tuple[Any, ...]] | None = None  # ("param", name, value, distribution) or
    # ("attr", key, value), in call order


@contextlib.contextmanager
def batched(storage: Any, trial_id: int) -> Iterator[None]:
    """This thread's parameter and user-attribute writes of one trial, held inside the block
    and written at its end in one transaction (retried whole), instead of one transaction each:
    a trial's ~20 parameters and attributes cost one commit. An error inside the block drops
    them (the caller fails the trial). Writes to other trials, and every read, go through at
    once; a finished trial or an incompatible distribution raises at the block's end, with
    Optuna's own error. On a storage that is not a retrying one, writes go through as they come.
    """
    batch: _Batch | None = getattr(storage, "_batch", None)
    if batch is None or batch.writes is not None:  # not ours, or inside an outer batch
        yield
        return
    batch.trial_id, batch.writes = trial_id, []
    try:
        yield
        writes = batch.writes
    finally:
        batch.trial_id, batch.writes = None, None
    if writes:
        storage.write_batch(trial_id, writes)


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """A storage whose every call is retried through transient errors (``retrying``), except
    the heartbeat (its thread beats again on its own) and calls made inside ``unretried``;
    writes inside ``batched`` share one transaction."""

    def __init__(self, inner: Any, rdb: Any) -> None:
        self._inner = inner
        self._backend = rdb  # what ``liveness.rdb`` unwraps to
        self._unretried = _Unretried()
        self._batch = _Batch()

    def __getattr__(self, name: str) -> Any:
        if name in ("_inner", "_backend", "_unretried", "_batch"):
            raise AttributeError(name)
        return getattr(self._backend, name)

    def record_heartbeat(self, trial_id: int) -> None:
        self._inner.record_heartbeat(trial_id)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        if self._held(trial_id, ("param", param_name, param_value_internal, distribution)):
            return
        self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self._held(trial_id, ("attr", key, value)):
            return
        self._call("set_trial_user_attr", trial_id, key, value)

    def _held(self, trial_id: int, write: tuple[Any, ...]) -> bool:
        if self._batch.writes is None or self._batch.trial_id != trial_id:
            return False
        self._batch.writes.append(write)
        return True

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._inner, name)
        if self._unretried.depth:
            return method(*args, **kwargs)
        return retrying(lambda: method(*args, **kwargs), f"calling {name}")

    def write_batch(self, trial_id: int, writes: list[tuple[Any, ...]]) -> None:
        """``writes`` of one trial in one transaction, through Optuna's own per-row writes
        (the same checks: the trial still running, each distribution compatible with the
        study's), keeping the trial cache's distributions as ``set_trial_param`` does."""
        if self._unretried.depth:
            self._write(trial_id, writes)
        else:
            retrying(lambda: self._write(trial_id, writes), f"writing trial {trial_id}'s settings")

    def _write(self, trial_id: int, writes: list[tuple[Any, ...]]) -> None:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        cache, rdb = self._inner, self._backend
        with cache._lock:  # as _CachedStorage.set_trial_param holds it across its write
            study_id, _ = cache._trial_id_to_study_id_and_number[trial_id]
            known = cache._studies[study_id].param_distribution
            with _create_scoped_session(rdb.scoped_session, True) as session:
                for kind, name, *rest in writes:
                    if kind == "param":
                        value, dist = rest
                        rdb._set_trial_param_without_commit(
                            session, trial_id, name, value, dist, known.get(name)
                        )
                    else:
                        rdb._set_trial_attr_without_commit(
                            session, models.TrialUserAttributeModel, trial_id, name, rest[0]
                        )
            for kind, name, *rest in writes:
                if kind == "param":
                    known.setdefault(name, rest[1])


def _forward(name: str) -> Callable[..., Any]:
    def call(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    call.__name__ = name
    return call


for _name, _value in [*vars(BaseStorage).items(), *vars(BaseHeartbeat).items()]:
    if callable(_value) and not _name.startswith("__") and _name not in vars(RetryingStorage):
        setattr(RetryingStorage, _name, _forward(_name))
RetryingStorage.__abstractmethods__ = frozenset()
