"""Retrying storage calls through transient errors, within a time limit."""

from __future__ import annotations

import psycopg.errors
import pytest
import sqlalchemy.exc

from tuner.errors import FatalError
from tuner.retry import RETRY_ENV, lost_connection, retrying


def flaky(failures: int, error: Exception):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return call, calls


LOST = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_transient_errors_are_retried_with_backoff_and_a_message(capsys) -> None:
    call, calls = flaky(3, LOST)
    waits: list[float] = []
    assert retrying(call, "reporting epoch 2", sleep=waits.append) == "ok"
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and err[0].startswith("tuner: storage error while reporting epoch 2")


def test_past_the_limit_the_worker_stops_with_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(RETRY_ENV, "5")
    call, calls = flaky(100, LOST)
    waits: list[float] = []
    with pytest.raises(FatalError, match=r"the storage did not answer for 3.5 s while claiming"):
        retrying(call, "claiming a trial", sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]  # the next wait (4 s) would pass the 5 s limit


def test_other_errors_fail_at_once() -> None:
    call, calls = flaky(1, ValueError("bad value"))
    with pytest.raises(ValueError):
        retrying(call, "x", sleep=lambda s: None)
    assert len(calls) == 1


def wrapped(orig: Exception) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("connect", {}, orig)


def test_a_cut_connection_is_lost_but_a_wrong_address_or_name_is_not() -> None:
    assert lost_connection(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert lost_connection(wrapped(psycopg.errors.CannotConnectNow("the system is starting up")))
    assert lost_connection(LOST)
    assert not lost_connection(wrapped(psycopg.errors.InvalidCatalogName("no database 'x'")))
    assert not lost_connection(wrapped(psycopg.errors.InvalidPassword("bad password")))
    assert not lost_connection(wrapped(psycopg.OperationalError("connection refused")))
    assert not lost_connection(ValueError("terminating connection"))


def test_a_lost_connection_is_found_inside_optunas_own_error() -> None:
    import optuna

    refused = wrapped(  # as psycopg raises it at login: no SQLSTATE
        psycopg.OperationalError(
            'connection failed: FATAL:  database "x" is not currently accepting connections'
        )
    )
    try:
        try:
            raise refused
        except sqlalchemy.exc.OperationalError as e:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit"
            ) from e
    except optuna.exceptions.StorageInternalError as outer:
        assert lost_connection(outer)
