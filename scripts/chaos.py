"""Chaos run: faults injected into a live distributed study, then the stores are audited.

    nice -n 10 .venv/bin/python scripts/chaos.py [--minutes 10] [--seed 0] [--json F] [--keep]

Sets up what `tuner` runs on in production, on this machine: two fresh PostgreSQL databases
(``chaos_optuna_*``, ``chaos_mlflow_*``), ``tuner db init``, a real ``mlflow server`` on the MLflow
database (artifacts in a temporary folder) on a free 127.0.0.1 port, ``tuner create`` of a study
of tiny LSTM trials on the first 300 rows of ``examples/co2_weekly.csv`` with a target that is never
reached, and ``--workers`` (4) ``tuner worker`` processes, restarted whenever one exits. Workers run
with a short heartbeat (``TUNER_HEARTBEAT=2,10``) and ``TUNER_DB_RETRY_SECONDS=60``.

For ``--minutes`` it injects faults in a seeded random order (shuffled rounds of the chosen
scenarios), a few seconds apart:

- 3: SIGKILL one worker (the ``tuner worker`` process) mid-trial; its trial is identified by the
  heartbeat that stops advancing; a worker is started in its place;
- 5: cut every connection to the Optuna database (``pg_terminate_backend``);
- 6: refuse logins to the Optuna database for a while (``ALLOW_CONNECTIONS false`` and its
  backends terminated), then allow them again;
- 11: stop the MLflow server (SIGTERM or SIGKILL to its process group) for a while, then start it
  again on the same port.

Then three faults of the local, single-machine path, ``--local-rounds`` times each (issue 10):

- 4: SIGTERM or SIGINT (alternately) to a `tuner run` parent alone (as a process manager or an
  IDE sends it), on the embedded default store: it must exit within 60 s (0 or 130) and leave no
  worker process behind; the next round resumes the study;
- kill-run: SIGKILL to a `tuner run`'s whole process group mid-trial, then ``tuner check
  --repair`` (the stale trial failed and re-queued, its run closed), then ``tuner check``: clean;
- concurrent-create: three `tuner create`s of one new study on the PostgreSQL store at once: all
  exit 0, and the study's experiment has one parent run.

Then it lets the workers settle (a killed worker's trial is failed by heartbeat), stops them
with SIGTERM, runs ``tuner check --json`` (and ``--repair`` once more only if the plain check found
something a repair closes), audits Optuna and MLflow directly, prints a markdown table and exits 1
if a figure that must be 0 is not: trials lost, runs left RUNNING, duplicated runs, duplicated
metric points. Every process it starts is in its own process group and is killed on the way out;
the databases are dropped unless ``--keep``. Logs (each worker's stdout/stderr, the MLflow
server's) stay in the work folder whose path is printed first.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuner import records
from tuner.liveness import retried_trial_number
from tuner.testing import (
    MlflowServer,
    group_alive,
    kill_group,
    sqlalchemy_url,
    sqlite_trial_reporting,
    start,
    tail,
)

ROOT = Path(__file__).resolve().parents[1]
CO2 = ROOT / "examples" / "co2_weekly.csv"
STUDY = "chaos"
TARGET = 1_000_000  # never reached: the workers run until they are stopped
SPACE = """\
task: forecast
epochs: {epochs}
seed: 3
sampler: random
pruner: {{name: median, n_startup_trials: 4, n_warmup_steps: 2}}
params:
  units: {{low: 4, high: 8}}
  window: {{low: 4, high: 8}}
  batch_size: 16
  optimizer: [adam, rmsprop]
"""
CO2_OPTIONS = ["--target", "co2", "--time", "date", "--nan", "interpolate"]
SCENARIOS = {
    3: "kill-worker",
    5: "cut-connections",
    6: "refuse-logins",
    11: "stop-mlflow",
}
# A FAIL reason that names the storage or MLflow, not the trial's own error.
STORE_REASON = re.compile(
    r"mlflow|rest|http|connect|operationalerror|interfaceerror|storage|psycopg|sqlalchemy|"
    r"timed? ?out|refused|max retries|50[234]",
    re.IGNORECASE,
)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- PostgreSQL ------------------------------------------------------------------------------


class Postgres:
    """Short-lived admin connections (a long-lived one would be cut by scenario 5 or 6)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.base = admin_url.rsplit("/", 1)[0]

    def url(self, database: str) -> str:
        return f"{self.base}/{database}"

    def query(self, sql: str, params: tuple[Any, ...] = (), database: str | None = None) -> list:
        import psycopg

        url = self.url(database) if database else self.admin_url
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def now(self) -> dt.datetime:
        """The server's clock, in the same form as Optuna's heartbeat column."""
        try:
            return self.query("SELECT localtimestamp")[0][0]
        except Exception:
            return dt.datetime.now()

    def create(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def drop(self, name: str) -> None:
        self.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate(self, database: str) -> int:
        rows = self.query(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        return int(rows[0][0])

    def allow_connections(self, database: str, allow: bool) -> None:
        self.query(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')


# -- processes -------------------------------------------------------------------------------


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started: float = 0.0
    generation: int = 0
    hold: bool = False  # not restarted while set (a kill being examined, the final stop)
    expected_exit: bool = False


@dataclass
class Exit:
    slot: int
    pid: int
    code: int | None
    cause: str  # chaos-kill, final-stop, unexpected
    seconds_alive: float
    at: str
    log: str
    tail: list[str] = field(default_factory=list)


class Workers:
    def __init__(self, n: int, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.slots = [Slot(i) for i in range(n)]
        self.command = command
        self.env = env
        self.logs = logs
        self.exits: list[Exit] = []
        self.clock: Any = None  # a callable giving the database's time
        self.restart = True

    def start(self, slot: Slot) -> None:
        slot.generation += 1
        slot.log = self.logs / f"worker-{slot.index}-{slot.generation}.log"
        slot.proc = start(self.command, slot.log, self.env)
        slot.started = time.monotonic()
        slot.expected_exit = False

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot)

    def poll(self) -> None:
        """Record exits; restart exited workers unless held or stopping."""
        for slot in self.slots:
            if slot.proc is None or slot.proc.poll() is None:
                if slot.proc is None and self.restart and not slot.hold:
                    self.start(slot)
                continue
            self._record(slot)
            if self.restart and not slot.hold:
                self.start(slot)

    def _record(self, slot: Slot, cause: str | None = None) -> None:
        assert slot.proc is not None and slot.log is not None
        proc = slot.proc
        kill_group(proc)  # a trial process left behind would keep a heartbeat alive
        cause = cause or ("chaos-kill" if slot.expected_exit else "unexpected")
        self.exits.append(
            Exit(
                slot=slot.index,
                pid=proc.pid,
                code=proc.returncode,
                cause=cause,
                seconds_alive=round(time.monotonic() - slot.started, 1),
                at=str(self.clock() if self.clock else dt.datetime.now()),
                log=str(slot.log),
                tail=tail(slot.log) if cause == "unexpected" else [],
            )
        )
        if cause == "unexpected":
            log(f"worker {slot.index} (pid {proc.pid}) exited with {proc.returncode}: {slot.log}")
        slot.proc = None

    def alive(self) -> list[Slot]:
        return [s for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def wait(self, seconds: float) -> None:
        """Sleep, keeping the workers running."""
        deadline = time.monotonic() + seconds
        while True:
            self.poll()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """SIGTERM to every worker at once; wait; SIGKILL what is left. Returns what happened."""
        self.restart = False
        self.poll()
        procs = [(s, s.proc) for s in self.alive()]
        began = time.monotonic()
        for _, proc in procs:
            assert proc is not None
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        stopped: list[dict[str, Any]] = []
        for slot, proc in procs:
            assert proc is not None
            try:
                proc.wait(timeout=max(0.1, timeout - (time.monotonic() - began)))
                forced = False
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()
                forced = True
            stopped.append(
                {
                    "slot": slot.index,
                    "code": proc.returncode,
                    "seconds": round(time.monotonic() - began, 1),
                    "forced": forced,
                    "log": str(slot.log),
                    "tail": tail(slot.log, 8) if slot.log and (forced or proc.returncode) else [],
                }
            )
            self._record(slot, cause="final-stop")
        return {"workers": stopped, "seconds": round(time.monotonic() - began, 1)}

    def kill_all(self) -> None:
        self.restart = False
        for slot in self.slots:
            if slot.proc is not None:
                kill_group(slot.proc)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    slot.proc.wait(timeout=10)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Fault:
    scenario: int
    kind: str
    began: str  # database time
    ended: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Chaos:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.pg = Postgres(args.pg)
        tag = uuid.uuid4().hex[:8]
        self.optuna_db = f"chaos_optuna_{tag}"
        self.mlflow_db = f"chaos_mlflow_{tag}"
        self.storage = self.pg.url(self.optuna_db)
        self.created: list[str] = []
        self.refused = False
        self.faults: list[Fault] = []
        self.victims: dict[int, dict[str, Any]] = {}  # trial number -> the kill that hit it
        self.server: MlflowServer | None = None
        self.workers: Workers | None = None
        self.interval, self.grace = (int(p) for p in args.heartbeat.split(","))
        self.study_id: int | None = None

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        for name in (self.optuna_db, self.mlflow_db):
            self.pg.create(name)
            self.created.append(name)
        log(f"databases {self.optuna_db}, {self.mlflow_db}")
        mlflow_url = self.pg.url(self.mlflow_db)
        self.tuner("db", "init", "--storage", self.storage, "--tracking-uri", mlflow_url)
        self.server = MlflowServer(mlflow_url, self.work / "artifacts", logs=self.work)
        took = self.server.start(attempts=3)
        log(f"mlflow server {self.server.url} up in {took:.1f} s")
        data = self.work / "co2.csv"
        data.write_text("".join(CO2.read_text().splitlines(keepends=True)[: self.args.rows + 1]))
        space = self.work / "space.yaml"
        space.write_text(SPACE.format(epochs=self.args.epochs))
        self.tuner(
            "create",
            str(space),
            "--data",
            str(data),
            *CO2_OPTIONS,
            "--study",
            STUDY,
            "--trials",
            str(TARGET),
            "--storage",
            self.storage,
            "--tracking-uri",
            self.server.url,
            "-q",
        )
        self.study_id = self.pg.query(
            "SELECT study_id FROM studies WHERE study_name = %s", (STUDY,), self.optuna_db
        )[0][0]
        env = {
            **os.environ,
            "TUNER_STORAGE": self.storage,
            "MLFLOW_TRACKING_URI": self.server.url,
            "TUNER_HEARTBEAT": self.args.heartbeat,
            "TUNER_DB_RETRY_SECONDS": str(self.args.db_retry),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "tuner", "worker", "--study", STUDY, "--data", str(data)]
        # Workers below the server's priority: in production MLflow and PostgreSQL have their
        # own machines; here a starved `mlflow server` would take a minute to come back.
        nice = ["nice", "-n", str(self.args.worker_nice)] if self.args.worker_nice else []
        self.workers = Workers(self.args.workers, [*nice, *command, "-q"], env, self.work)
        self.workers.clock = self.pg.now
        self.workers.start_all()
        log(f"{self.args.workers} workers started; waiting for the first finished trial")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            self.workers.wait(2)
            if self.count_states().get("COMPLETE", 0) + self.count_states().get("PRUNED", 0):
                return
        raise RuntimeError(f"no trial finished within 300 s; logs in {self.work}")

    def tuner(self, *argv: str) -> str:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-m", "tuner", *argv], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(f"tuner {argv[0]} failed ({done.returncode}): {done.stderr[-3000:]}")
        return done.stdout

    def count_states(self) -> dict[str, int]:
        try:
            rows = self.pg.query(
                "SELECT state::text, count(*) FROM trials WHERE study_id = %s GROUP BY state",
                (self.study_id,),
                self.optuna_db,
            )
        except Exception:  # refused or cut: this is what the faults do
            return {}
        return {state: int(n) for state, n in rows}

    # -- faults --------------------------------------------------------------------------
    def run_faults(self) -> None:
        assert self.workers is not None
        kinds = [int(k) for k in self.args.scenarios.split(",")]
        deadline = time.monotonic() + 60 * self.args.minutes
        queue: list[int] = []
        while time.monotonic() < deadline:
            if not queue:
                queue = kinds[:]
                self.rng.shuffle(queue)
            scenario = queue.pop()
            fault = Fault(scenario, SCENARIOS[scenario], str(self.pg.now()))
            began = time.monotonic()
            getattr(self, f"fault_{scenario}")(fault)
            fault.seconds = round(time.monotonic() - began, 1)
            fault.ended = str(self.pg.now())
            self.faults.append(fault)
            states = self.count_states()
            log(f"fault {scenario} {fault.kind} {fault.detail} -> trials {states}")
            self.workers.wait(self.rng.uniform(*self.args.gap))

    def outage(self) -> float:
        low, high = self.args.outage
        return round(self.rng.uniform(low, high), 1)

    def fault_3(self, fault: Fault) -> None:
        """SIGKILL one worker mid-trial; find its trial by the heartbeat that stops."""
        assert self.workers is not None
        # A worker older than 20 s is past its imports and very likely training.
        deadline = time.monotonic() + 60
        while True:
            ready = [s for s in self.workers.alive() if time.monotonic() - s.started > 20]
            if ready or time.monotonic() > deadline:
                break
            self.workers.wait(1)
        if not ready:
            fault.detail["skipped"] = "no worker alive for 20 s"
            return
        slot = self.rng.choice(ready)
        assert slot.proc is not None
        slot.hold = slot.expected_exit = True
        pid = slot.proc.pid
        slot.proc.send_signal(signal.SIGKILL)
        killed_at = self.pg.now()
        slot.proc.wait()
        running = self.running_trials()
        time.sleep(2)
        orphans = [p for p in group_alive(pid) if p != pid]
        fault.detail.update(slot=slot.index, pid=pid, running_at_kill=sorted(running))
        if orphans:
            fault.detail["orphans_after_2s"] = orphans  # the trial process outlived its worker
        self.workers.poll()  # records the exit (kills the group)
        # Healthy trials beat every interval; the victim's heartbeat stays at or before the kill.
        self.workers.wait(2 * self.interval + 3)
        victims = self.stopped_heartbeats(running, killed_at)
        fault.detail["victim_trials"] = victims
        for number in victims:
            self.victims[number] = {"slot": slot.index, "pid": pid, "at": str(killed_at)}
        slot.hold = False
        self.workers.poll()  # a worker in its place

    def running_trials(self) -> list[int]:
        with contextlib.suppress(Exception):
            rows = self.pg.query(
                "SELECT number FROM trials WHERE study_id = %s AND state = 'RUNNING'",
                (self.study_id,),
                self.optuna_db,
            )
            return [int(r[0]) for r in rows]
        return []

    def stopped_heartbeats(self, numbers: list[int], since: dt.datetime) -> list[int]:
        if not numbers:
            return []
        rows = self.pg.query(
            "SELECT t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.study_id = %s AND t.number = ANY(%s) AND h.heartbeat <= %s "
            "AND t.state IN ('RUNNING', 'FAIL')",
            (self.study_id, numbers, since),
            self.optuna_db,
        )
        return sorted(int(r[0]) for r in rows)

    def fault_5(self, fault: Fault) -> None:
        fault.detail["connections_cut"] = self.pg.terminate(self.optuna_db)

    def fault_6(self, fault: Fault) -> None:
        assert self.workers is not None
        seconds = self.outage()
        self.pg.allow_connections(self.optuna_db, False)
        self.refused = True
        try:
            fault.detail["connections_cut"] = self.pg.terminate(self.optuna_db)
            self.workers.wait(seconds)
        finally:
            self.pg.allow_connections(self.optuna_db, True)
            self.refused = False
        fault.detail["refused_s"] = seconds

    def fault_11(self, fault: Fault) -> None:
        assert self.workers is not None and self.server is not None
        seconds = self.outage()
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        began = time.monotonic()
        self.server.stop(sig)
        self.workers.wait(seconds)
        startup = self.server.start(attempts=3)
        fault.detail.update(
            signal=signal.Signals(sig).name,
            down_s=seconds,
            restart_s=round(startup, 1),
            outage_s=round(time.monotonic() - began, 1),
        )

    # -- the end -------------------------------------------------------------------------
    def settle_and_stop(self) -> dict[str, Any]:
        assert self.workers is not None
        settle = 2 * self.grace + 10
        log(f"faults over; {settle} s for stale trials to be failed and retried")
        self.workers.wait(settle)
        stop_at = self.pg.now()
        log("stopping the workers (SIGTERM)")
        stop = self.workers.stop()
        stop["at"] = str(stop_at)
        return stop

    def check(self) -> dict[str, Any]:
        assert self.server is not None
        base = ["check", "--study", STUDY, "--storage", self.storage]
        base += ["--tracking-uri", self.server.url, "--json"]
        out: dict[str, Any] = {"plain": self._check(base)}
        # What --repair is for: MLflow runs (a trial's, an orphan, the parent) left RUNNING.
        if any(re.search(r"\brun \S+ is RUNNING", p) for p in out["plain"].get("problems", [])):
            out["repair"] = self._check([*base, "--repair"])
        return out

    def _check(self, argv: list[str]) -> dict[str, Any]:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-m", "tuner", *argv], capture_output=True, text=True, env=env
        )
        # The report is the last JSON object on stdout; anything before it is noise (a finding:
        # `--json` output should be JSON only).
        start_at = done.stdout.rfind("\n{") + 1 if not done.stdout.startswith("{") else 0
        try:
            result: dict[str, Any] = json.loads(done.stdout[start_at:])
        except json.JSONDecodeError:
            result = {"ok": False, "problems": [f"no JSON: {done.stdout[-500:]}"]}
        noise = done.stdout[:start_at].strip()
        if noise:
            result["stdout_not_json"] = noise.splitlines()[:10]
        result["exit_code"] = done.returncode
        if done.stderr.strip():
            result["stderr"] = done.stderr.strip().splitlines()[-5:]
        return result

    def cleanup(self) -> None:
        if self.workers is not None:
            self.workers.kill_all()
        if self.server is not None:
            self.server.stop(signal.SIGKILL)
        if self.refused:
            with contextlib.suppress(Exception):
                self.pg.allow_connections(self.optuna_db, True)
        if self.args.keep:
            log(f"kept databases {', '.join(self.created)}")
            return
        for name in self.created:
            try:
                self.pg.drop(name)
            except Exception as e:
                log(f"could not drop {name}: {e}")


# -- local faults: the embedded default, a `tuner run` parent ----------------------------------

LOCAL_SPACE = """\
task: forecast
epochs: 200
seed: 5
sampler: random
pruner: none
params:
  units: {low: 4, high: 8}
  window: {low: 4, high: 8}
  batch_size: 16
"""


class Local:
    """Faults 4, kill-run and concurrent-create (see the module's docstring)."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self.home = chaos.work / "local-home"
        self.space = chaos.work / "local-space.yaml"
        self.space.write_text(LOCAL_SPACE)
        self.data = chaos.work / "co2.csv"
        self.events: list[dict[str, Any]] = []

    def env(self) -> dict[str, str]:
        env = {**os.environ, "TUNER_HOME": str(self.home), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env["TUNER_HEARTBEAT"] = "1,4"
        for var in ("TUNER_STORAGE", "MLFLOW_TRACKING_URI"):
            env.pop(var, None)
        return env

    def tuner(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tuner", *argv],
            capture_output=True,
            text=True,
            env=env or self.env(),
        )

    def start_run(self, name: str) -> tuple[subprocess.Popen[bytes], bool]:
        """`tuner run` of the local study (2 workers) until a trial reports an epoch."""
        log_path = self.chaos.work / f"local-{name}.log"
        argv = [sys.executable, "-m", "tuner", "run", str(self.space), "--data", str(self.data)]
        argv += [*CO2_OPTIONS, "--study", "local", "--trials", "100000", "--workers", "2", "-q"]
        proc = start(argv, log_path, self.env())
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if self.reporting():
                return proc, True
        return proc, False

    def reporting(self) -> bool:
        return sqlite_trial_reporting(self.home / "optuna.db")

    def fault_4(self, sig: int) -> None:
        import psutil

        proc, started = self.start_run(f"signal-{len(self.events)}")
        event: dict[str, Any] = {"fault": f"4 {signal.Signals(sig).name} to tuner run"}
        if not started:
            kill_group(proc)
            event["skipped"] = "no trial reported within 240 s"
            self.events.append(event)
            return
        children = psutil.Process(proc.pid).children(recursive=True)
        began = time.monotonic()
        proc.send_signal(sig)  # the parent alone, not its group
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        event["seconds"] = round(time.monotonic() - began, 1)
        event["exit"] = code
        _, alive = psutil.wait_procs(children, timeout=10)
        event["workers_left"] = len(alive)
        event["ok"] = code in (0, 130) and not alive
        kill_group(proc)
        self.events.append(event)

    def kill_run_then_repair(self) -> None:
        proc, started = self.start_run(f"kill-{len(self.events)}")
        event: dict[str, Any] = {"fault": "kill-run, then check --repair"}
        kill_group(proc)  # SIGKILL to the whole group: parent, workers, trial processes
        proc.wait()
        if not started:
            event["skipped"] = "no trial reported within 240 s"
            self.events.append(event)
            return
        time.sleep(5)  # past the 4 s grace
        repair = self.tuner("check", "--study", "local", "--repair", "--json")
        after = self.tuner("check", "--study", "local", "--json")
        event["repaired"] = _json_tail(repair.stdout).get("repaired", [])
        problems = _json_tail(after.stdout).get("problems", ["no JSON"])
        event["problems_after"] = problems  # unfinished is a note, not a problem
        event["ok"] = not event["problems_after"] and any(
            "failed stale trial" in r for r in event["repaired"]
        )
        self.events.append(event)

    def concurrent_create(self, round_: int) -> None:
        assert self.chaos.server is not None
        name = f"race-{round_}"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        argv = [sys.executable, "-m", "tuner", "create", str(self.space), "--data", str(self.data)]
        argv += [*CO2_OPTIONS, "--study", name, "--trials", "2", "-q"]
        argv += ["--storage", self.chaos.storage, "--tracking-uri", self.chaos.server.url]
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        codes = [p.wait(timeout=300) for p in procs]
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.chaos.server.url)
        exp = client.get_experiment_by_name(name)
        tops = (
            []
            if exp is None
            else [
                r
                for r in client.search_runs([exp.experiment_id])
                if records.PARENT_RUN_TAG not in r.data.tags
            ]
        )
        self.events.append(
            {
                "fault": "concurrent-create x3",
                "exits": codes,
                "parent_runs": len(tops),
                "ok": codes == [0, 0, 0] and len(tops) == 1,
            }
        )

    def run(self, rounds: int) -> dict[str, Any]:
        for i in range(rounds):
            self.fault_4(signal.SIGTERM if i % 2 == 0 else signal.SIGINT)
            log(f"local: {self.events[-1]}")
            self.kill_run_then_repair()
            log(f"local: {self.events[-1]}")
            self.concurrent_create(i)
            log(f"local: {self.events[-1]}")
        final = _json_tail(self.tuner("check", "--study", "local", "--json").stdout)
        return {
            "events": self.events,
            "failed": [e for e in self.events if not e.get("ok") and "skipped" not in e],
            "skipped": [e for e in self.events if "skipped" in e],
            "final_check_problems": final.get("problems", ["no JSON"]),
            "final_trials": final.get("trials"),
        }


def _json_tail(stdout: str) -> dict[str, Any]:
    start_at = stdout.rfind("\n{") + 1 if not stdout.startswith("{") else 0
    try:
        out: dict[str, Any] = json.loads(stdout[start_at:])
        return out
    except json.JSONDecodeError:
        return {}


# -- the audit -------------------------------------------------------------------------------


def audit(chaos: Chaos, stop: dict[str, Any]) -> dict[str, Any]:
    """Figures computed from the stores themselves (Optuna's RDB, the MLflow server)."""
    import optuna
    from mlflow import MlflowClient

    assert chaos.server is not None and chaos.workers is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(sqlalchemy_url(chaos.storage), skip_table_creation=True)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = study.get_trials(deepcopy=False)
    heartbeats = {
        int(n): hb
        for n, hb in chaos.pg.query(
            "SELECT t.number, h.heartbeat FROM trials t "
            "JOIN trial_heartbeats h ON h.trial_id = t.trial_id WHERE t.study_id = %s",
            (chaos.study_id,),
            chaos.optuna_db,
        )
    }
    client = MlflowClient(tracking_uri=chaos.server.url)
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    by_id = {r.info.run_id: r for r in runs}
    children = [r for r in runs if r.data.tags.get(records.ROLE_TAG) != "study"]
    stop_at = dt.datetime.fromisoformat(stop["at"])

    states = Counter(t.state.name for t in trials)
    reasons: Counter[str] = Counter()
    lost: list[dict[str, Any]] = []
    victims_without_run = []
    for t in trials:
        run_id = t.user_attrs.get(records.RUN_ID)
        if t.state.name == "RUNNING":
            lost.append({"trial": t.number, "why": "RUNNING after the workers stopped"})
            continue
        if not t.state.is_finished():
            continue
        if not run_id or run_id not in by_id:
            if t.number in chaos.victims:
                victims_without_run.append(t.number)
            else:
                lost.append({"trial": t.number, "state": t.state.name, "why": "no MLflow run"})
        if t.state.name != "FAIL":
            continue
        reason = t.user_attrs.get(records.REASON)
        finished = t.datetime_complete
        if reason is None:
            if t.number in chaos.victims:
                reasons["heartbeat stale: worker SIGKILLed by chaos (expected)"] += 1
                continue
            group = "heartbeat stale, but its worker was not killed by chaos"
            lost.append(
                {
                    "trial": t.number,
                    "why": group,
                    "last_heartbeat": str(heartbeats.get(t.number)),
                    "failed_at": str(finished),
                    "faults_between": overlapping(chaos, heartbeats.get(t.number), finished),
                    "run_tags": run_reason(by_id.get(run_id or "")),
                }
            )
        elif reason.startswith("interrupted by"):
            if finished is not None and finished >= stop_at:
                group = f"{reason} at the final stop (re-queued, expected)"
            else:
                group = f"{reason} before the final stop"
                lost.append({"trial": t.number, "why": group, "failed_at": str(finished)})
        elif STORE_REASON.search(reason):
            group = f"storage/MLflow: {normalize(reason)}"
            lost.append(
                {
                    "trial": t.number,
                    "why": reason,
                    "failed_at": str(finished),
                    "during": during(chaos, finished),
                }
            )
        else:
            group = f"trial's own error: {normalize(reason)}"
        reasons[group] += 1

    by_number = {t.number: t for t in trials}
    running_runs = []
    for r in runs:
        if r.info.status != "RUNNING":
            continue
        number = r.data.tags.get(records.TRIAL_NUMBER_TAG)
        trial = by_number.get(int(number)) if number is not None else None
        item: dict[str, Any] = {"run": r.info.run_id, "trial": number or "parent"}
        if trial is not None:
            ended = trial.datetime_complete
            item.update(
                trial_state=trial.state.name,
                linked=trial.user_attrs.get(records.RUN_ID) == r.info.run_id,
                trial_finished=str(ended),
                unrecorded=trial.user_attrs.get(records.UNRECORDED),
                faults_soon_after=overlapping(
                    chaos, ended, ended + dt.timedelta(seconds=30) if ended else None
                ),
            )
        running_runs.append(item)
    per_number = Counter(r.data.tags.get(records.TRIAL_NUMBER_TAG) for r in children)
    duplicated_runs = {str(n): c for n, c in per_number.items() if c > 1}
    linked = {t.user_attrs.get(records.RUN_ID) for t in trials}
    orphan_runs = [
        {
            "run": r.info.run_id,
            "trial": r.data.tags.get(records.TRIAL_NUMBER_TAG),
            "status": r.info.status,
        }
        for r in children
        if r.info.run_id not in linked
    ]
    duplicated_points: list[dict[str, Any]] = []
    for r in runs:
        for key in r.data.metrics:
            steps = Counter(m.step for m in client.get_metric_history(r.info.run_id, key))
            for step, n in steps.items():
                if n > 1:
                    duplicated_points.append(
                        {
                            "run": r.info.run_id,
                            "trial": r.data.tags.get(records.TRIAL_NUMBER_TAG, "parent"),
                            "key": key,
                            "step": step,
                            "times": n,
                        }
                    )
    retried = [t for t in trials if retried_trial_number(t) is not None]
    kills = [f for f in chaos.faults if f.scenario == 3 and "skipped" not in f.detail]
    return {
        "states": dict(states),
        "fail_reasons": dict(reasons.most_common()),
        "lost": lost,
        "victims": {str(k): v for k, v in chaos.victims.items()},
        "victims_without_run": victims_without_run,
        "kills_without_victim": sum(1 for f in kills if not f.detail.get("victim_trials")),
        "retries": len(retried),
        "running_runs": running_runs,
        "duplicated_runs": duplicated_runs,
        "orphan_runs": orphan_runs,
        "duplicated_points": duplicated_points,
        "trials": len(trials),
        "runs": len(runs),
    }


def overlapping(chaos: Chaos, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
    """The faults whose window meets [start, end]."""
    if start is None or end is None:
        return []
    out = []
    for f in chaos.faults:
        began, ended = dt.datetime.fromisoformat(f.began), dt.datetime.fromisoformat(f.ended)
        if began <= end and ended >= start:
            out.append(f"{f.began[11:19]} {f.scenario} {f.kind} {f.detail}")
    return out


def during(chaos: Chaos, when: dt.datetime | None) -> str:
    """The fault in progress at ``when`` (or the last one before it)."""
    if when is None:
        return "?"
    last = "before any fault"
    for f in chaos.faults:
        began, ended = dt.datetime.fromisoformat(f.began), dt.datetime.fromisoformat(f.ended)
        if began <= when <= ended:
            return f"during {f.scenario} {f.kind} {f.detail}"
        if began <= when:
            ago = (when - ended).total_seconds()
            last = f"{ago:.0f} s after {f.scenario} {f.kind} {f.detail}"
    return last


def run_reason(run: Any) -> str:
    if run is None:
        return "no run"
    return f"{run.info.status} {run.data.tags.get('tuner.reason', '')}"


def normalize(text: str) -> str:
    text = re.sub(r"[0-9a-f]{32}", "<id>", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text[:200]


def stderr_summary(work: Path, top: int = 25) -> list[dict[str, Any]]:
    """The workers' own messages (``tuner: ...``, tracebacks' last lines), counted by kind."""
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    where: dict[str, set[str]] = defaultdict(set)
    for path in sorted(work.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if not (
                line.startswith("tuner:")
                or re.match(r"^[A-Za-z_.]+(Error|Exception|Interrupt)\b", line)
                or line.startswith("Traceback")
            ):
                continue
            key = normalize(line)[:140]
            counts[key] += 1
            example.setdefault(key, f"{path.name}: {line[:400]}")
            where[key].add(path.name)
    return [
        {"count": n, "workers": len(where[k]), "example": example[k]}
        for k, n in counts.most_common(top)
    ]


# -- report ----------------------------------------------------------------------------------


def table(
    chaos: Chaos,
    figures: dict[str, Any],
    checks: dict[str, Any],
    stop: dict[str, Any],
    local: dict[str, Any] | None = None,
) -> tuple[list[tuple[str, Any, str, str]], bool]:
    assert chaos.workers is not None
    rows: list[tuple[str, Any, str, str]] = []
    per_kind = Counter(f"{f.scenario} {f.kind}" for f in chaos.faults)
    for scenario, kind in SCENARIOS.items():
        rows.append((f"faults: {scenario} {kind}", per_kind.get(f"{scenario} {kind}", 0), "-", ""))
    states = figures["states"]
    for state in ("COMPLETE", "PRUNED", "FAIL", "WAITING"):
        rows.append((f"trials {state}", states.get(state, 0), "-", ""))
    rows.append(("trials killed by chaos (victims found)", len(figures["victims"]), "-", ""))
    rows.append(("kills that hit no running trial", figures["kills_without_victim"], "-", ""))
    rows.append(("trials that retry a killed or interrupted one", figures["retries"], "-", ""))
    unexpected = [e for e in chaos.workers.exits if e.cause == "unexpected"]
    rows.append(("worker exits not caused by chaos", len(unexpected), "0", ""))
    slow = [w for w in stop["workers"] if w["forced"] or w["code"] != 0]
    rows.append(("workers not stopping cleanly on SIGTERM", len(slow), "0", ""))
    plain = checks["plain"]
    other = plain.get("problems", [])  # the study is unfinished by design: a note, not these
    rows.append(("tuner check problems", len(other), "0", ""))
    gated = []
    if local is not None:
        kinds = Counter(e["fault"] for e in local["events"] if "skipped" not in e)
        for kind, n in sorted(kinds.items()):
            rows.append((f"local faults: {kind}", n, "-", ""))
        rows.append(("local faults skipped (no trial started)", len(local["skipped"]), "0", ""))
        gated += [
            ("local faults not handled (see the events)", len(local["failed"])),
            (
                "local study: tuner check problems",
                len(local["final_check_problems"]),
            ),
        ]
    gated += [
        ("trials lost", len(figures["lost"])),
        ("runs left RUNNING", len(figures["running_runs"])),
        ("duplicated runs", len(figures["duplicated_runs"])),
        ("duplicated metric points", len(figures["duplicated_points"])),
    ]
    rows = [(n, v, e, "info" if e == "-" else ("ok" if v == 0 else "WARN")) for n, v, e, _ in rows]
    ok = True
    for name, value in gated:
        rows.append((name, value, "0", "PASS" if value == 0 else "FAIL"))
        ok = ok and value == 0
    return rows, ok


def report(
    chaos: Chaos,
    figures: dict[str, Any],
    checks: dict[str, Any],
    stop: dict[str, Any],
    local: dict[str, Any] | None = None,
) -> tuple[list[tuple[str, Any, str, str]], bool]:
    assert chaos.workers is not None
    rows, ok = table(chaos, figures, checks, stop, local)
    print("\n| figure | value | expected | result |\n|---|---|---|---|")
    for name, value, expected, result in rows:
        print(f"| {name} | {value} | {expected} | {result} |")
    print("\nFAIL reasons:")
    for reason, n in figures["fail_reasons"].items():
        print(f"  {n:4d}  {reason}")
    for title, items in (
        ("lost trials", figures["lost"]),
        ("runs left RUNNING", figures["running_runs"]),
        (
            "duplicated runs (trial: runs)",
            [figures["duplicated_runs"]] if figures["duplicated_runs"] else [],
        ),
        ("duplicated metric points", figures["duplicated_points"][:20]),
        ("runs linked from no trial", figures["orphan_runs"][:20]),
        (
            "killed trials with no linked MLflow run (killed before their run was opened?)",
            figures["victims_without_run"],
        ),
    ):
        if items:
            print(f"\n{title}:")
            for item in items:
                print(f"  {item}")
    unexpected = [e for e in chaos.workers.exits if e.cause == "unexpected"]
    if unexpected:
        print("\nworker exits not caused by chaos:")
        for e in unexpected:
            print(f"  slot {e.slot} pid {e.pid} exit {e.code} after {e.seconds_alive} s at {e.at}")
            print(f"    log {e.log}")
            for line in e.tail[-10:]:
                print(f"    | {line}")
    print(
        f"\nfinal stop: {stop['seconds']} s for all workers; exit codes "
        f"{[w['code'] for w in stop['workers']]}"
    )
    for w in stop["workers"]:
        if w["forced"] or w["code"] != 0:
            print(f"  slot {w['slot']}: code {w['code']}, forced {w['forced']}, log {w['log']}")
            for line in w["tail"]:
                print(f"    | {line}")
    for name, result in checks.items():
        print(
            f"\ntuner check ({name}): ok={result.get('ok')} exit={result.get('exit_code')} "
            f"trials={result.get('trials')} runs={result.get('runs')}"
        )
        for line in result.get("repaired", []):
            print(f"  repaired: {line}")
        for line in result.get("problems", []):
            print(f"  problem: {line}")
        for line in result.get("stdout_not_json", []):
            print(f"  stdout before the JSON: {line[:200]}")
    print("\nworker messages (stderr, counted by kind):")
    for item in stderr_summary(chaos.work):
        print(f"  {item['count']:5d} x in {item['workers']} logs  {item['example']}")
    print("\nfaults:")
    for f in chaos.faults:
        print(f"  {f.began[11:19]} {f.scenario:2d} {f.kind:16s} {f.seconds:5.1f} s  {f.detail}")
    if local is not None:
        print("\nlocal faults:")
        for e in local["events"]:
            print(f"  {e}")
        for p in local["final_check_problems"]:
            print(f"  local study: problem: {p}")
    print(f"\nlogs: {chaos.work}")
    print("RESULT: " + ("PASS" if ok else "FAIL"))
    return rows, ok


# -- main ------------------------------------------------------------------------------------


def pair(text: str) -> tuple[float, float]:
    low, high = (float(p) for p in text.split(","))
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10, help="time spent injecting faults (10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault order and sizes (0)")
    p.add_argument("--workers", type=int, default=4, help="tuner worker processes (4)")
    p.add_argument("--scenarios", default="3,5,6,11", help="which faults (3,5,6,11)")
    p.add_argument("--gap", type=pair, default=(3.0, 8.0), help="seconds between faults (3,8)")
    p.add_argument("--outage", type=pair, default=(5.0, 20.0), help="seconds down, 6/11 (5,20)")
    p.add_argument("--heartbeat", default="2,10", help="TUNER_HEARTBEAT for workers (2,10)")
    p.add_argument("--db-retry", type=float, default=60, help="TUNER_DB_RETRY_SECONDS (60)")
    p.add_argument(
        "--worker-nice", type=int, default=5, help="extra niceness of the workers (5; 0: none)"
    )
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial (8)")
    p.add_argument("--rows", type=int, default=300, help="rows of the CO2 series used (300)")
    p.add_argument(
        "--pg",
        default=os.environ.get("TUNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin URL of the PostgreSQL server (superuser; $TUNER_TEST_PG)",
    )
    p.add_argument(
        "--local-rounds",
        type=int,
        default=3,
        help="rounds of the local faults: 4, kill-run + repair, concurrent create (3; 0: none)",
    )
    p.add_argument("--json", help="write every figure and detail to this file")
    p.add_argument("--keep", action="store_true", help="keep the databases (dropped by default)")
    args = p.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - {str(k) for k in SCENARIOS}
    if unknown:
        p.error(f"--scenarios: unknown {sorted(unknown)}; choose from {sorted(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    log(f"work folder (logs, artifacts): {work}")

    def terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, terminated)
    chaos = Chaos(args, work)
    began = time.monotonic()
    try:
        chaos.setup()
        log(f"injecting faults for {args.minutes:g} min (seed {args.seed})")
        chaos.run_faults()
        stop = chaos.settle_and_stop()
        figures = audit(chaos, stop)
        checks = chaos.check()
        local = None
        if args.local_rounds:
            log(f"local faults: {args.local_rounds} rounds")
            local = Local(chaos).run(args.local_rounds)
        rows, ok = report(chaos, figures, checks, stop, local)
        if args.json:
            assert chaos.workers is not None
            out = {
                "args": vars(args),
                "ok": ok,
                "table": [
                    dict(zip(("figure", "value", "expected", "result"), r, strict=True))
                    for r in rows
                ],
                "figures": figures,
                "faults": [asdict(f) for f in chaos.faults],
                "worker_exits": [asdict(e) for e in chaos.workers.exits],
                "stop": stop,
                "check": checks,
                "local": local,
                "stderr": stderr_summary(work),
                "work": str(work),
                "seconds": round(time.monotonic() - began),
            }
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        return 0 if ok else 1
    finally:
        chaos.cleanup()
        log(f"cleaned up after {time.monotonic() - began:.0f} s; logs in {work}")


if __name__ == "__main__":
    sys.exit(main())
