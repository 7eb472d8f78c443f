"""Many workers on one study through PostgreSQL: exact counts, no races, faults survived.

Real PostgreSQL at 127.0.0.1:5432, real `tuner worker` processes, real Keras training on tiny
data. Each test makes and drops its own two databases (Optuna, MLflow).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import psycopg
import pytest
from conftest import CO2_OPTIONS
from optuna.trial import TrialState

from tuner.check import check
from tuner.cli import main
from tuner.storage import normalize
from tuner.testing import MlflowServer, free_port, wait_for
from tuner.tracking import Tracker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPACE = """
task: forecast
epochs: {epochs}
seed: 3
sampler: random
pruner: none
params:
  units: {{low: 4, high: 8}}
  window: {{low: 4, high: 8}}
  batch_size: 16
  optimizer: [adam, rmsprop]
"""


def create(
    space_file, data: Path, storage: str, tracking: str, trials: int, epochs: int = 2
) -> None:
    space = space_file(SPACE.format(epochs=epochs))
    assert main(["db", "init", "--storage", storage, "--tracking-uri", tracking]) == 0
    argv = ["create", str(space), "--data", str(data), *CO2_OPTIONS, "--study", "d"]
    argv += ["--trials", str(trials), "--storage", storage, "--tracking-uri", tracking]
    assert main(argv) == 0


def worker(
    storage: str,
    tracking: str,
    data: Path,
    *extra: str,
    heartbeat: str = "2,30",
    env: dict[str, str] | None = None,
):
    """A `tuner worker` process. Its heartbeat grace is long (a loaded 2-core machine can stall a
    process for seconds) except where a test wants a dead worker found quickly."""
    env = {
        **os.environ,
        "TUNER_STORAGE": storage,
        "MLFLOW_TRACKING_URI": tracking,
        "TUNER_HEARTBEAT": heartbeat,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(env or {}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuner",
            "worker",
            "--study",
            "d",
            "--data",
            str(data),
            "-q",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs, timeout: float = 300) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def load(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="d", storage=normalize(storage))


@pytest.fixture
def mlflow_server(pg, tmp_path):
    # The schemas first, by tuner db init, as in docker-compose: a server starting on an empty
    # database while another client creates the schema races it ("already exists").
    assert main(["db", "init", "--storage", pg[0], "--tracking-uri", pg[1]]) == 0
    server = MlflowServer(pg[1], tmp_path / "served", logs=tmp_path)
    server.start()
    yield server
    server.stop()


def test_four_workers_through_an_mlflow_server(pg, mlflow_server, space_file, co2_csv) -> None:
    storage, tracking = pg[0], mlflow_server.url
    create(space_file, co2_csv, storage, tracking, trials=8)
    results = finish([worker(storage, tracking, co2_csv) for _ in range(4)])
    assert [code for code, _ in results] == [0] * 4, results
    study = load(storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(8)), "exact count, unique, contiguous"
    assert all(t.state == TrialState.COMPLETE for t in trials)
    tracker = Tracker(tracking)
    report = check(study, tracker)
    assert report.ok and report.runs == 8, report.problems
    experiments = tracker.client.search_experiments(filter_string="name = 'd'")
    assert len(experiments) == 1
    parents = tracker.client.search_runs(
        [experiments[0].experiment_id], filter_string="tags.`tuner.role` = 'study'"
    )
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    best_run = study.best_trial.user_attrs["mlflow_run_id"]
    files = {a.path for a in tracker.client.list_artifacts(best_run, "model")}
    assert "model/model.keras" in files, "the model went through the server's artifact proxy"


def test_twelve_workers_started_at_once(pg, space_file, co2_csv) -> None:
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=12, epochs=1)
    procs = [worker(storage, tracking, co2_csv, "--trials", "1") for _ in range(12)]
    results = finish(procs, timeout=500)
    assert [code for code, _ in results] == [0] * 12, [err for code, err in results if code]
    study = load(storage)
    assert sorted(t.number for t in study.get_trials()) == list(range(12))
    assert check(study, Tracker(normalize(tracking))).ok


def test_sigkill_mid_trial_is_failed_retried_and_closed(pg, space_file, co2_csv) -> None:
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=2, epochs=25)
    victim = worker(storage, tracking, co2_csv, heartbeat="1,5")

    def reporting():
        running = load(storage).get_trials(states=(TrialState.RUNNING,))
        return running if running and running[0].intermediate_values else None

    dead = wait_for(reporting, 120, "a trial that reports epochs")[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rescuer = worker(storage, tracking, co2_csv, heartbeat="1,5")
    [(code, err)] = finish([rescuer])
    assert code == 0, err

    study = load(storage)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params, "retried with the same parameters"
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == 2
    tracker = Tracker(normalize(tracking))
    run = tracker.client.get_run(dead.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and "heartbeat stale" in run.data.tags["tuner.reason"]
    retry_run = tracker.client.get_run(retries[0].user_attrs["mlflow_run_id"])
    assert retry_run.data.tags["tuner.retry_of"] == str(dead.number)
    report = check(study, tracker)
    assert report.ok, report.problems


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_stops_the_worker_and_leaves_nothing_running(
    pg, space_file, co2_csv, sig, code
) -> None:
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=3, epochs=200)
    proc = worker(storage, tracking, co2_csv)
    wait_for(
        lambda: any(
            t.intermediate_values for t in load(storage).get_trials(states=(TrialState.RUNNING,))
        ),
        120,
        "a running trial",
    )
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)  # the worker must be gone within 10 s
    except subprocess.TimeoutExpired:
        proc.kill()
        tail = proc.communicate()[1][-3000:]
        raise AssertionError(f"still running 10 s after {sig.name}: {tail}") from None
    assert proc.returncode == code, proc.stderr.read()
    study = load(storage)
    states = [t.state for t in study.get_trials()]
    assert TrialState.RUNNING not in states
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["reason"] == f"interrupted by {sig.name}"
    assert TrialState.WAITING in states, "the interrupted trial is re-queued"
    client = Tracker(normalize(tracking)).client
    assert client.get_run(failed[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "KILLED", "the study stopped short of its target"


def test_refusals_same_database_and_other_data(pg, space_file, co2_csv, tmp_path, capsys) -> None:
    storage, tracking = pg
    space = space_file(SPACE.format(epochs=1))
    argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS]
    assert main([*argv, "--storage", storage, "--tracking-uri", storage]) == 2
    assert "same database" in capsys.readouterr().err
    create(space_file, co2_csv, storage, tracking, trials=1)
    other = tmp_path / "other.csv"
    other.write_text(co2_csv.read_text().replace("316.1", "316.2", 1))
    [(code, err)] = finish([worker(storage, tracking, other)])
    assert code == 2 and "fingerprint: this data differs from the study's" in err
    assert load(storage).get_trials() == []


def test_cut_connections_are_retried_and_fail_no_trial(pg, pg_admin, space_file, co2_csv) -> None:
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=3, epochs=30)
    proc = worker(storage, tracking, co2_csv)
    database = storage.rsplit("/", 1)[1]
    cuts = 0
    while proc.poll() is None and cuts < 20:
        time.sleep(1.0)
        killed = pg_admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]
        cuts += bool(killed)
    [(code, err)] = finish([proc])
    assert code == 0, err[-3000:]
    assert cuts >= 3, f"the test cut live connections several times, not {cuts}: {err[-2000:]}"
    study = load(storage)
    reasons = [t.user_attrs.get("reason") for t in study.get_trials()]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE] * 3, f"{reasons}\n{err[-3000:]}"
    assert check(study, Tracker(normalize(tracking))).ok


def test_workers_through_the_grpc_storage_proxy(pg, space_file, co2_csv) -> None:
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=3, epochs=1)
    port = free_port()
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuner",
            "proxy",
            "--port",
            str(port),
            "--storage",
            storage,
            "--tracking-uri",
            tracking,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def listening() -> bool:
        if proxy.poll() is not None:
            raise AssertionError(f"proxy exited: {proxy.stderr.read()[-2000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, 60, "the gRPC proxy")
        results = finish([worker(f"grpc://127.0.0.1:{port}", tracking, co2_csv) for _ in range(2)])
        assert [code for code, _ in results] == [0, 0], results
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)
    study = load(storage)
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    # No claim lock through the proxy: two workers may overshoot the target by one trial.
    assert 3 <= len(complete) <= 4 and len(study.get_trials()) == len(complete)
    report = check(study, Tracker(normalize(tracking)))
    assert report.runs == len(complete)
    assert all("target" in p for p in report.problems), report.problems


def reporting(storage: str, n: int = 1):
    """Whether ``n`` trials have reported an epoch (so workers are mid-training)."""

    def check() -> bool:
        trials = load(storage).get_trials()
        return sum(bool(t.intermediate_values) for t in trials) >= n

    return check


def test_mlflow_server_down_mid_study_is_caught_up(pg, mlflow_server, space_file, co2_csv) -> None:
    """Scenario 11: trials go on while MLflow is down; what they logged meanwhile arrives when it
    is back, once: no run missing, none duplicated, no curve point twice."""
    storage, tracking = pg[0], mlflow_server.url
    create(space_file, co2_csv, storage, tracking, trials=6, epochs=12)
    procs = [worker(storage, tracking, co2_csv) for _ in range(2)]
    wait_for(reporting(storage), 120, "a trial to report an epoch")
    mlflow_server.stop()
    time.sleep(8)
    during = load(storage).get_trials()
    mlflow_server.start()
    results = finish(procs)
    assert [code for code, _ in results] == [0, 0], results
    errors = "".join(err for _, err in results)
    assert "MLflow did not answer" in errors and "caught up" in errors
    study = load(storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6, errors[-3000:]
    assert len(during) > sum(t.state.is_finished() for t in during), "trials ran during the outage"
    tracker = Tracker(tracking)
    report = check(study, tracker)
    assert report.ok and report.runs == 6, report.problems
    for t in trials:
        assert "mlflow_unrecorded" not in t.user_attrs
        history = tracker.client.get_metric_history(t.user_attrs["mlflow_run_id"], "loss")
        steps = [m.step for m in history]
        assert steps == sorted(set(steps)), f"trial {t.number}: a point twice or out of order"
        assert len(steps) == int(t.user_attrs["epochs_run"]), f"trial {t.number} lost points"


def test_logins_refused_then_back(pg, pg_admin, space_file, co2_csv) -> None:
    """Scenario 6: the database refuses logins for 20 s. A worker waits with a visible message
    and completes the study; one whose limit is shorter stops with a clear error, and its trial
    is failed as stale and retried: nothing lost, nothing left RUNNING."""
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=4, epochs=20)
    patient = worker(storage, tracking, co2_csv, heartbeat="2,10")
    hasty = worker(
        storage, tracking, co2_csv, heartbeat="2,10", env={"TUNER_DB_RETRY_SECONDS": "5"}
    )
    wait_for(reporting(storage, 2), 120, "both workers to report an epoch")
    database = storage.rsplit("/", 1)[1]
    pg_admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
    try:
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        time.sleep(20)
    finally:
        pg_admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    [(hasty_code, hasty_err)] = finish([hasty])
    assert hasty_code == 1, hasty_err[-2000:]
    assert "tuner: fatal: the storage did not answer for" in hasty_err
    [(code, err)] = finish([patient])
    assert code == 0, err[-3000:]
    assert "storage error while" in err and "retry" in err, "the wait was visible"
    study = load(storage)
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the hasty worker's trial was failed as stale"
    assert all(t.user_attrs.get("reason") is None for t in failed), "no healthy trial failed"
    assert check(study, Tracker(normalize(tracking))).ok


def test_a_connection_limit_too_low_is_named(pg, pg_admin, space_file, co2_csv) -> None:
    """Scenario 7: a role allowed fewer connections than a worker needs is refused at start,
    naming the limit, before it claims any trial."""
    storage, tracking = pg
    create(space_file, co2_csv, storage, tracking, trials=2, epochs=1)
    role = f"tuner_limited_{storage.rsplit('_', 1)[1]}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 2')
    try:
        with psycopg.connect(storage, autocommit=True) as db:  # the study's tables
            db.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
            db.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        limited = storage.replace("postgres@", f"{role}@")
        [(code, err)] = finish([worker(limited, tracking, co2_csv)])
        assert code == 2, err[-2000:]
        assert f"the CONNECTION LIMIT of role '{role}' is 2" in err and "a worker needs 3" in err
        assert len(err.strip().splitlines()) == 1, err
        assert load(storage).get_trials() == [], "no trial claimed"
    finally:
        with psycopg.connect(storage, autocommit=True) as db:
            db.execute(f'DROP OWNED BY "{role}"')  # its grants, so that the role can go
        pg_admin.execute(f'DROP ROLE "{role}"')


def test_passwords_stay_out_of_logs_runs_and_arguments(pg, space_file, co2_csv) -> None:
    """Scenario 14: a password in the storage URL (user:pass@) and in the tracking URI
    (?password=) appears in no output line, no MLflow parameter or tag, no study attribute and
    no worker's process arguments."""
    import psutil

    secrets = ("s3cret-in-user-part", "s3cret-in-query")
    storage = pg[0].replace("postgres@", f"postgres:{secrets[0]}@")
    tracking = f"{pg[1]}?password={secrets[1]}"
    space = space_file(SPACE.format(epochs=1))
    argv = [sys.executable, "-m", "tuner", "run", str(space), "--data", str(co2_csv), *CO2_OPTIONS]
    argv += ["--study", "d", "--trials", "2", "--workers", "2"]
    argv += ["--storage", storage, "--tracking-uri", tracking]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    while proc.poll() is None:
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                seen.append(" ".join(child.cmdline()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert any("worker" in cmd for cmd in seen), "the workers were seen"
    study = load(pg[0])
    client = Tracker(normalize(pg[1])).client
    runs = client.search_runs([study.user_attrs["mlflow_experiment_id"]])
    assert len(runs) == 3
    recorded = [str(study.user_attrs), str(study._storage.get_study_system_attrs(study._study_id))]
    recorded += [str(t.user_attrs) for t in study.trials]
    recorded += [f"{r.data.params} {r.data.tags}" for r in runs]
    for secret in secrets:
        assert secret not in out + err
        assert not [cmd for cmd in seen if secret in cmd], "a password in process arguments"
        assert not [text for text in recorded if secret in text], "a password recorded"


def test_concurrent_creates_of_one_study_make_one_study_and_one_parent_run(
    pg, space_file, co2_csv
) -> None:
    """Issue 10: with two racing `tuner create`s the loser crashed (DuplicatedStudyError); with
    three, all exited 0 but the experiment got two parent runs, one left RUNNING. Four creates
    released at once by a barrier (processes start too unevenly to race reliably)."""
    import threading

    from tuner import cli, launch

    storage, tracking = pg
    assert main(["db", "init", "--storage", storage, "--tracking-uri", tracking]) == 0
    space = space_file(SPACE.format(epochs=1))
    argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "d", "-q"]
    argv += ["--storage", storage, "--tracking-uri", tracking]
    prepared = cli._prepare(cli._parser().parse_args(argv))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def create_one() -> None:
        barrier.wait()
        try:
            launch.create(prepared, 2)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=create_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    study = load(storage)
    tracker = Tracker(normalize(tracking))
    exp = tracker.client.get_experiment_by_name("d")
    tops = [
        r
        for r in tracker.client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert [r.info.run_id for r in tops] == [study.user_attrs["mlflow_parent_run_id"]]
    assert optuna.get_all_study_names(normalize(storage)) == ["d"]
    assert not any("second parent" in p for p in check(study, tracker).problems)


def test_a_study_through_the_compose_file_s_authenticated_mlflow_server(
    pg, space_file, co2_csv, tmp_path
) -> None:
    """Issue 10: the shared store was open to anyone who reached port 5000. The compose file's
    server command (docker/mlflow-server.sh: basic-auth on) run natively; workers sign in from
    their environment."""
    storage, backend = pg
    assert main(["db", "init", "--storage", storage, "--tracking-uri", backend]) == 0
    admin = {"MLFLOW_ADMIN_USERNAME": "admin", "MLFLOW_ADMIN_PASSWORD": "a-long-admin-secret"}
    script = Path(__file__).resolve().parents[1] / "docker" / "mlflow-server.sh"
    server = MlflowServer(
        backend,
        tmp_path / "served",
        logs=tmp_path,
        command=("sh", str(script)),
        env={
            **admin,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-long-flask-secret",
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth" / "basic_auth.ini"),
        },
    )
    (tmp_path / "auth").mkdir()
    server.start()
    try:
        search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(search, timeout=10)
        assert refused.value.code == 401, "no user, no data"
        assert oct((tmp_path / "auth" / "basic_auth.ini").stat().st_mode & 0o777) == "0o600"
        signed_in = {
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": "a-long-admin-secret",
        }
        os.environ.update(signed_in)  # `tuner create` in this process signs in too
        try:
            create(space_file, co2_csv, storage, server.url, trials=2, epochs=1)
            [(code, err)] = finish([worker(storage, server.url, co2_csv, env=signed_in)])
        finally:
            for k in signed_in:
                os.environ.pop(k, None)
        assert code == 0, err[-2000:]
        study = load(storage)
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
        with pytest.MonkeyPatch.context() as m:
            for k, v in signed_in.items():
                m.setenv(k, v)
            report = check(study, Tracker(server.url))
        assert report.ok, report.problems
    finally:
        server.stop()
