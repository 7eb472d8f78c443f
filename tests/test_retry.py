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


def test_transient_errors_are_retried_with_backoff_and_a_message(caplog) -> None:
    call, calls = flaky(3, LOST)
    waits: list[float] = []
    with caplog.at_level("WARNING", logger="tuner"):
        assert retrying(call, "reporting epoch 2", sleep=waits.append) == "ok"
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0]
    err = [r.getMessage() for r in caplog.records if r.name == "tuner"]
    assert len(err) == 3 and err[0].startswith("storage error while reporting epoch 2")


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


class _Flaky:
    """A storage whose named calls fail with a lost connection ``failures`` times first."""

    def __init__(self, inner, failures: dict[str, int]) -> None:
        self.inner, self.failures, self.calls = inner, dict(failures), []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                raise LOST
            return method(*args, **kwargs)

        return call


def test_the_storage_edge_retries_each_call_so_the_loop_reads_as_plain_calls(
    tmp_path, monkeypatch, caplog
) -> None:
    """Issue 9: one retrying storage instead of a retrying(lambda ...) at every call site; the
    claim lock's section is retried whole (``unretried``), and the heartbeat never waits."""
    import optuna

    from tuner import retry
    from tuner.retry import RetryingStorage, unretried
    from tuner.storage import make_storage

    waits: list[float] = []
    monkeypatch.setattr(retry.clock, "sleep", waits.append)
    rdb = make_storage(f"sqlite:///{tmp_path}/optuna.db")
    flaky = _Flaky(optuna.storages.get_storage(rdb), {"set_trial_user_attr": 2})
    storage = RetryingStorage(flaky, rdb)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr("k", 1)  # fails twice, then goes through
    assert study.trials[0].user_attrs == {"k": 1} and waits == [0.5, 1.0]
    assert "storage error while calling set_trial_user_attr" in caplog.text
    assert storage.engine is rdb.engine and storage.heartbeat_interval == rdb.heartbeat_interval

    flaky.failures["set_trial_user_attr"] = 1
    with pytest.raises(sqlalchemy.exc.OperationalError), unretried(storage):
        trial.set_user_attr("k", 2)
    flaky.failures["record_heartbeat"] = 1
    with pytest.raises(sqlalchemy.exc.OperationalError):
        storage.record_heartbeat(trial._trial_id)  # its thread beats again on its own
    assert waits == [0.5, 1.0], "neither was retried"


def _counting_commits(rdb) -> list[int]:
    """Commits of transactions that wrote (Optuna's reads commit too)."""
    import sqlalchemy

    commits: list[int] = []

    def statement(conn, cursor, sql, *_) -> None:
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            conn.info["wrote"] = True

    def commit(conn) -> None:
        if conn.info.pop("wrote", False):
            commits.append(1)

    sqlalchemy.event.listen(rdb.engine, "before_cursor_execute", statement)
    sqlalchemy.event.listen(rdb.engine, "commit", commit)
    return commits


def test_a_trials_settings_are_written_in_one_transaction(storage_url) -> None:
    """Issue 15: a trial's ~20 parameters and attributes were ~20 transactions; inside
    ``batched`` they are held, then written in one, through Optuna's own checks."""
    import optuna

    from tuner.retry import batched, retrying_storage
    from tuner.storage import make_storage

    rdb = make_storage(storage_url)
    storage = retrying_storage(rdb)
    study = optuna.create_study(storage=storage, study_name="s")
    trial, other = study.ask(), study.ask()
    commits = _counting_commits(rdb)
    elsewhere = optuna.load_study(study_name="s", storage=storage_url)  # another worker's view
    with batched(storage, trial._trial_id):
        x = trial.suggest_float("x", 0.0, 1.0)
        layers = trial.suggest_int("layers", 1, 3)
        trial.set_user_attr("seed", 7)
        trial.set_user_attr("worker", "host:1")
        other.set_user_attr("seed", 8)  # another trial's write goes through at once
        assert trial.params == {"x": x, "layers": layers}  # the trial sees its own values
        assert elsewhere.trials[0].params == {} and elsewhere.trials[0].user_attrs == {}
        assert elsewhere.trials[1].user_attrs == {"seed": 8}
        held = len(commits)
    assert held == 1 and len(commits) == 2, "one commit for the other trial, one for the batch"
    seen = elsewhere.trials[0]
    assert seen.params == {"x": x, "layers": layers}
    assert seen.user_attrs == {"seed": 7, "worker": "host:1"}

    # Optuna's checks hold at the block's end: a distribution that contradicts the study's ...
    with (
        pytest.raises(ValueError, match="Cannot set different distribution kind"),
        batched(storage, other._trial_id),
    ):
        other.suggest_categorical("x", ["a", "b"])
    # ... and a finished trial (liveness.record_end tells a takeover by this error)
    study.tell(trial, 1.0)
    with (
        pytest.raises(optuna.exceptions.UpdateFinishedTrialError),
        batched(storage, trial._trial_id),
    ):
        trial.set_user_attr("reason", "late")


def test_an_error_inside_a_batch_writes_nothing(storage_url) -> None:
    import optuna

    from tuner.retry import batched, retrying_storage
    from tuner.storage import make_storage

    storage = retrying_storage(make_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(RuntimeError, match="sampling failed"), batched(storage, trial._trial_id):
        trial.suggest_float("x", 0.0, 1.0)
        raise RuntimeError("sampling failed")
    fresh = optuna.load_study(study_name="s", storage=storage_url).trials[0]
    assert fresh.params == {} and fresh.user_attrs == {}
    trial.set_user_attr("after", 1)  # outside the block: written at once again
    assert optuna.load_study(study_name="s", storage=storage_url).trials[0].user_attrs == {
        "after": 1
    }


@pytest.mark.parametrize("cut", ["mid-transaction", "after-commit"])
def test_a_batch_cut_by_a_lost_connection_is_written_whole_once(
    storage_url, monkeypatch, cut: str
) -> None:
    """A connection lost inside the batch's transaction rolls all of it back, and the retry
    writes all of it; one lost after the commit (the answer never came) rewrites nothing
    twice: Optuna's per-row writes keep one row per parameter and attribute."""
    import optuna

    from tuner import retry
    from tuner.retry import batched, retrying_storage
    from tuner.storage import make_storage

    monkeypatch.setattr(retry.clock, "sleep", lambda s: None)
    rdb = make_storage(storage_url)
    storage = retrying_storage(rdb)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    failures = [LOST]
    if cut == "mid-transaction":  # the attribute's row fails after the parameter's went in
        set_attr = rdb._set_trial_attr_without_commit

        def flaky_attr(*args, **kwargs):
            if failures:
                raise failures.pop()
            return set_attr(*args, **kwargs)

        monkeypatch.setattr(rdb, "_set_trial_attr_without_commit", flaky_attr)
    else:
        write = storage._write

        def lost_answer(*args, **kwargs):
            write(*args, **kwargs)
            if failures:
                raise failures.pop()

        monkeypatch.setattr(storage, "_write", lost_answer)
    with batched(storage, trial._trial_id):
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("seed", 7)
    assert not failures, "the fault was injected"
    seen = optuna.load_study(study_name="s", storage=storage_url).trials[0]
    assert seen.params == {"x": x} and seen.user_attrs == {"seed": 7}
    study.tell(trial, 1.0)  # the trial goes on as usual
