"""Worker processes on this machine: `tuner run`'s local workers, and a worker's trial process,
replaced every few trials so that memory stays flat.

TensorFlow keeps memory from every model it traced, even after ``clear_session`` (10-30 MB a
trial, measured by ``scripts/memory.py``), and gives GPU memory back only when its process ends.
So a `tuner worker` supervises a child that runs ``per_process`` trials and exits with
``RECYCLED``; the next child carries on, under the supervisor's name (``worker_name``), so its
trials' failure streak continues from the study's records. Signals reach the child, and the
child dies with its worker (Linux), so a killed worker leaves no orphan that would keep a
trial's heartbeat alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from tuner.errors import FatalError
from tuner.storage import STORAGE_ENV, TRACKING_ENV

# A trial process's exit code when it ran its share of trials and should be replaced.
RECYCLED = 75
WORKER_ENV = "TUNER_WORKER"  # the supervising worker's name, for its trial processes


def worker_name() -> str:
    """This worker's name on the trials it runs: ``host:pid`` of the `tuner worker` process
    (a trial process inherits its supervisor's)."""
    import socket

    return os.environ.get(WORKER_ENV) or f"{socket.gethostname()}:{os.getpid()}"


def worker_command(study_name: str | None, data: str, *extra: str) -> list[str]:
    """``tuner worker`` on a study (None: the storage's only study)."""
    study = [] if study_name is None else ["--study", study_name]
    return [sys.executable, "-m", "tuner", "worker", *study, "--data", data, *extra]


PARENT_ENV = "TUNER_PARENT_PID"


def worker_env(stores: Any, *, name: str | None = None) -> dict[str, str]:
    """URLs travel by environment, so no password is ever in a process's arguments. The child
    learns its parent's pid to die with it (``die_with_parent``)."""
    env = {
        **os.environ,
        STORAGE_ENV: stores.storage,
        TRACKING_ENV: stores.tracking,
        PARENT_ENV: str(os.getpid()),
    }
    env.pop(WORKER_ENV, None)
    if name is not None:  # a trial process works under its supervisor's name
        env[WORKER_ENV] = name
    return env


def run_workers(
    study: Any, stores: Any, data_path: str, n: int, *, quiet: bool, verbose: bool = False
) -> int:
    """``n`` `tuner worker` processes on the study, with a live progress bar; returns the
    number of trials that finished meanwhile (a resumed study's earlier ones not counted)."""
    from tuner import study as studies

    def finished() -> int:
        c = studies.counts(study)
        return int(c["complete"] + c["pruned"] + c["failed"])

    before = finished()
    command = worker_command(study.study_name, data_path, "--quiet")
    if verbose:  # a worker's debug lines (a trial's traceback) show through the bar
        command.append("--verbose")
    procs = [subprocess.Popen(command, env=worker_env(stores)) for _ in range(n)]

    stopping: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        # SIGTERM or SIGINT sent to `tuner run` alone (a process manager, an IDE) stops its
        # workers too. Ctrl-C in a terminal reaches them already (one process group); a second
        # copy is ignored by a worker that is already stopping. A second Ctrl-C kills them (their
        # trials are then retried by heartbeat).
        stopping.append(signum)
        force = stopping.count(signal.SIGINT) > 1  # Ctrl-C twice: do not wait for the trials
        for p in procs:
            if p.poll() is None:
                p.kill() if force else p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    progress = Progress(study, quiet)
    try:
        while any(p.poll() is None for p in procs):
            progress.update()
            time.sleep(1.0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        progress.update()
        progress.close()
    if signal.SIGINT in stopping:
        raise KeyboardInterrupt  # the CLI says so and exits 130, as for Ctrl-C
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        raise FatalError(f"{len(failed)} of {n} workers failed (exit codes {failed})")
    return finished() - before


def supervise(
    study_name: str | None,
    data: str,
    stores: Any,
    *,
    per_process: int,
    trials: int | None,
    timeout: float | None,
    gpu: int | None,
    quiet: bool,
    verbose: bool = False,
) -> int:
    """Run the worker's trials in child processes of ``per_process`` trials each.

    The children check everything (stores, study, data) and exit 2 on bad input, which is
    returned as it is: the supervisor checks nothing itself, so the first trial starts sooner."""
    base = worker_command(study_name, data)
    if gpu is not None:
        base += ["--gpu", str(gpu)]
    if quiet:
        base.append("--quiet")
    if verbose:
        base.append("--verbose")
    child: subprocess.Popen[bytes] | None = None
    stopping: list[int] = []  # the signal that asked us to stop, if any

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    remaining = trials
    try:
        while (remaining is None or remaining > 0) and not stopping:
            share = per_process if remaining is None else min(per_process, remaining)
            # A trial process exits RECYCLED after its share; the last share is a plain worker,
            # which closes the study's parent run if it leaves the study idle.
            last = remaining is not None and remaining <= per_process
            role = ["--trials-per-process", "0"] if last else ["--trial-process"]
            command = [*base, "--trials", str(share), *role]
            if timeout is not None:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    break
                command += ["--timeout", str(left)]
            child = subprocess.Popen(command, env=worker_env(stores, name=worker_name()))
            code = child.wait()
            if stopping and code in (0, 130, -signal.SIGTERM, -signal.SIGINT):
                return 130 if stopping[0] == signal.SIGINT else 0  # a clean stop
            if code != RECYCLED:
                return code
            if remaining is not None:
                remaining -= share
        return 130 if stopping and stopping[0] == signal.SIGINT else 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def die_with_parent() -> None:
    """In a worker started by another tuner process: be killed when that process dies (Linux's
    PR_SET_PDEATHSIG), so that a killed worker leaves no orphan keeping a trial's heartbeat alive.
    Called first thing in the child (a fork hook would be unsafe: the parent has threads)."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


class Progress:
    """A live bar: trials done of the target (a running trial counts the share of its epochs it
    has reported, so the bar moves during the first one), pruned / failed, current best,
    elapsed and ETA. Where no bar can be drawn (not a terminal, or one of 0 columns), one line
    per finished trial instead."""

    def __init__(self, study: Any, quiet: bool) -> None:
        import shutil

        from tuner import records

        self.study = study
        self.bar = None
        self.budget = None
        self.lines = not quiet and (
            not sys.stderr.isatty() or shutil.get_terminal_size((0, 0)).columns <= 0
        )
        self.done = -1
        if not quiet and not self.lines:
            from tqdm import tqdm

            self.budget = study.user_attrs.get(records.BUDGET)
            if self.budget:  # a compute budget: the bar counts epochs
                self.bar = tqdm(total=int(self.budget), unit="epoch", dynamic_ncols=True)
            else:
                target = int(study.user_attrs[records.TARGET])
                self.bar = tqdm(total=target, unit="trial", dynamic_ncols=True)
            self.update()

    def update(self) -> None:
        if self.lines:
            self._line()
        if self.bar is None:
            return
        from tuner import study as studies

        c = studies.counts(self.study)
        if self.budget:
            self.bar.n = min(int(self.budget), studies.epochs_used(self.study))
        else:
            self.bar.n = round(c["complete"] + c["pruned"] + self._running_share(), 1)
        self.bar.set_postfix(
            complete=c["complete"],
            pruned=c["pruned"],
            failed=c["failed"],
            best=self._best_text(),
            refresh=False,
        )
        self.bar.refresh()

    def _best_text(self) -> str:
        from tuner import study as studies

        best = studies.best_trial(self.study)
        return "-" if best is None else f"{studies.value(best):.4g}"

    def _running_share(self) -> float:
        """How far the running trials are, in trials: each one's epochs reported over its
        planned epochs."""
        from optuna.trial import TrialState

        from tuner import records

        share = 0.0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            planned = int(t.user_attrs.get(records.EPOCHS) or 0)
            if planned > 0:
                share += min(0.99, len(t.intermediate_values) / planned)
        return share

    def _line(self) -> None:
        """One line each time a trial finishes: counts and the best value so far."""
        from tuner import records
        from tuner import study as studies

        c = studies.counts(self.study)
        done = c["complete"] + c["pruned"] + c["failed"]
        if done == self.done:
            return
        self.done = done

        target = self.study.user_attrs.get(records.TARGET)
        budget = self.study.user_attrs.get(records.BUDGET)
        of = "" if target in (None, records.NO_TRIAL_TARGET) else f"/{target}"  # the budget ends it
        spent = f" epochs={studies.epochs_used(self.study)}/{budget}" if budget else ""
        print(
            f"trials {done}{of}: complete={c['complete']} pruned={c['pruned']} "
            f"failed={c['failed']} best={self._best_text()}{spent}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
