"""``tuner``: parse, call, print. ``main(argv) -> int`` so tests run it in-process.

Exit codes: 0 done (also after SIGTERM), 1 a fault stopped the worker, 2 bad input (nothing was
written to any store), 130 interrupted by Ctrl-C. Heavy imports (optuna, keras, mlflow) happen
inside the commands, so ``tuner --help`` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from tuner import records  # light: no Optuna, no framework

# Spelled out so `tuner --help` needs no Optuna import; a test checks them against the registries.
SAMPLER_NAMES = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
PRUNER_NAMES = (
    "median",
    "percentile",
    "successive_halving",
    "hyperband",
    "patient",
    "threshold",
    "none",
)


# The least value of every numeric option, by its argparse name (``timeout``: more than 0).
LEAST = {
    "trials": 1,
    "workers": 1,
    "max_epochs": 1,
    "budget_epochs": 1,
    "season": 2,
    "horizon": 1,
    "trials_per_process": 0,
    "max_params": 1,
    "max_memory": 1,
    "gpu": 0,
    "top": 1,
    "seeds": 1,
    "trial": 0,
    "port": 1,
    "wait": 0,
}


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a numeric option out of its range (``--trials -1`` once ran nothing and exited 0),
    and a study name tuner could not have made (a NUL in it crashed the worker's supervisor)."""
    from tuner.errors import InputError
    from tuner.launch import check_study_name

    study = getattr(args, "study", None)
    if study is not None:  # tuner never makes a study of another name
        check_study_name(study)
    for name, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + name.replace("_", "-") if name != "trial" else "TRIAL"
        if name == "timeout":
            if not value > 0 or value == float("inf"):
                raise InputError(f"must be a number of seconds > 0, got {value}", field=flag)
        elif name == "port" and not 1 <= value <= 65535:
            raise InputError(f"must be in [1, 65535], got {value}", field=flag)
        elif name in LEAST and value < LEAST[name]:
            raise InputError(f"must be >= {LEAST[name]}, got {value}", field=flag)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a malformed command line (2, said in one line)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from tuner.errors import FatalError, InputError, mask
    from tuner.log import log, setup

    verbose = getattr(args, "verbose", False)
    setup(quiet=getattr(args, "quiet", False), verbose=verbose)
    # the frameworks' own chatter (TensorFlow's C++ logs, MLflow's INFO lines) only on --verbose
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is ours
    try:
        check_numbers(args)
        return int(args.func(args) or 0)
    except InputError as e:
        log.error("error: %s", mask(str(e)))
        return 2
    except FatalError as e:
        log.error("fatal: %s", mask(str(e)))
        return 1
    except BrokenPipeError:  # `tuner best | head`: the reader left; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail again
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped
    except KeyboardInterrupt:  # `tuner run`: its workers got Ctrl-C too and stopped cleanly
        if args.command == "run":
            log.error(
                "stopped by SIGINT; trials in flight are queued again: the same command resumes"
            )
        else:
            log.error("stopped by SIGINT")
        return 130
    except BaseException as e:
        from tuner.processes import PARENT_ENV
        from tuner.signals import Interrupted

        if not isinstance(e, Interrupted):
            raise
        # a worker of `tuner run` leaves the saying to it: one line, not one per process
        say = log.debug if os.environ.get(PARENT_ENV) else log.error
        say("stopped by %s; a trial in flight is queued again", e.signame)
        code = 130 if e.signame == "SIGINT" else 0
        if args.command == "worker":
            # Everything is recorded; skip the framework's teardown (seconds with TensorFlow
            # loaded), so that `docker stop` sees the worker go at once.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code


# -- commands -------------------------------------------------------------------------------


def cmd_run(a: argparse.Namespace) -> int:
    """Create or resume a study and run it here, with ``--workers`` local processes."""
    from tuner import launch
    from tuner.device import setup_device
    from tuner.processes import run_workers

    setup_device(None)
    _set_limits(a)
    prepared = _prepare(a)
    j = launch.create(prepared, a.trials)
    study, storage, stores, tracker = j.study, j.storage, j.stores, j.tracker
    data_path = prepared.data_path
    del prepared, j  # the workers read the data themselves: this process keeps no copy
    gc.collect()
    try:
        ran = run_workers(study, stores, data_path, a.workers, quiet=a.quiet, verbose=a.verbose)
    finally:
        launch.close_if_idle(study, storage, stores.storage, tracker)
    if not a.quiet:
        _print_summary(study, ran, stores.tracking)
    return 0


def _set_limits(a: argparse.Namespace) -> None:
    """``--max-params`` / ``--max-memory`` for this worker and the processes it starts."""
    from tuner.footprint import MAX_MEMORY_ENV, MAX_PARAMS_ENV

    if a.max_params is not None:
        os.environ[MAX_PARAMS_ENV] = str(a.max_params)
    if a.max_memory is not None:
        os.environ[MAX_MEMORY_ENV] = str(a.max_memory)


def cmd_create(a: argparse.Namespace) -> int:
    """Create a study (or extend its target) without running trials: for `tuner worker`s."""
    from tuner import launch
    from tuner.errors import mask

    study = launch.create(_prepare(a), a.trials).study
    target = study.user_attrs.get(records.TARGET)
    budget = study.user_attrs.get(records.BUDGET)
    goal = f"target {target} trials" if target != records.NO_TRIAL_TARGET else "no trial target"
    if budget:
        goal += f", budget {budget} epochs"
    print(f"study {study.study_name!r} ready in {mask(_stores(a).storage)}: {goal}")
    # the stores as given here (a default, or one from the environment, is found again)
    given = "".join(
        f" {flag} {mask(value)}"
        for flag, value in (("--storage", a.storage), ("--tracking-uri", a.tracking_uri))
        if value
    )
    masked = " (password masked: $TUNER_STORAGE can hold the URL)" if "***" in given else ""
    print(f"run workers: tuner worker --study {study.study_name} --data {a.data}{given}{masked}")
    return 0


def cmd_worker(a: argparse.Namespace) -> int:
    """Join an existing study and run its trials until its target is reached."""
    from tuner import launch
    from tuner.device import setup_device
    from tuner.processes import RECYCLED, die_with_parent, supervise

    die_with_parent()
    setup_device(a.gpu)
    _set_limits(a)
    stores = _stores(a)
    if a.trials_per_process and not a.trial_process:
        launch.require_studies(stores.storage)  # before a child starts
        return supervise(
            a.study,
            a.data,
            stores,
            per_process=a.trials_per_process,
            trials=a.trials,
            timeout=a.timeout,
            gpu=a.gpu,
            quiet=a.quiet,
            verbose=a.verbose,
        )
    joined = launch.join(stores, a.study, a.data)
    ran = launch.work(joined, trials=a.trials, timeout=a.timeout, share=a.trial_process)
    if a.trial_process and ran == a.trials:
        return RECYCLED  # the supervisor wants more
    if not a.quiet:
        print(f"worker ran {ran} trials of {joined.study.study_name!r}")
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    from tuner import study as studies

    study = _open_study(a)
    c = studies.counts(study)
    best = studies.best_trial(study)
    out = {
        "study": study.study_name,
        "target": study.user_attrs.get(records.TARGET),
        "complete": c["complete"],
        "pruned": c["pruned"],
        "failed": c["failed"],
        "interrupted": c["interrupted"],
        "not_run": c["not_run"],
        "running": c["running"],
        "waiting": c["waiting"],
        "objective": _objective(study),
        "best_value": None if best is None else studies.value(best),
        "best_trial": None if best is None else best.number,
        "best_params": None if best is None else best.params,
        "epochs_used": studies.epochs_used(study),
        "budget_epochs": study.user_attrs.get(records.BUDGET),
        "baselines": _baseline_report(study, best),
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"study {out['study']}: {c['complete']} complete, {c['pruned']} pruned, "
        f"{studies.failed_text(c)}, {c['running']} running, {c['waiting']} waiting "
        + (
            "(no trial target)"
            if out["target"] == records.NO_TRIAL_TARGET
            else f"(target {out['target']})"
        )
    )
    if out["budget_epochs"]:
        print(f"epochs: {out['epochs_used']} of a budget of {out['budget_epochs']}")
    if best is not None:
        print(f"best: trial {best.number}, {out['objective']} {studies.value(best):.6g}")
        print("  " + _params_line(best.params))
    for line in _baseline_lines(out["baselines"]):
        print(line)
    return 0


def cmd_best(a: argparse.Namespace) -> int:
    from tuner import study as studies
    from tuner.log import log

    study = _open_study(a)
    best = studies.best_trial(study)
    if best is None:
        log.warning("study %r has no complete trial yet", study.study_name)
        return 1
    if a.by_mean:
        from tuner.rerun import best_by_mean

        best = best_by_mean(study, study.directions[0].name.lower())
        if best is None:
            log.warning("no trial was retrained yet: tuner retrain --top K --seeds S")
            return 1
    out = _best_info(study, best, by_mean=a.by_mean)
    if a.register:
        out["registered"] = _register(a, study, best.number)
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"best trial {best.number} of study {study.study_name!r}: "
        f"{out['objective']} {studies.value(best):.6g}"
    )
    print("  params:  " + _params_line(best.params))
    print("  metrics: " + _params_line(out["metrics"]))
    print(f"  mlflow run: {out[records.RUN_ID]}")
    print(f"  model: {out[records.MODEL_URI] or 'not logged'}")
    r = out["retrain"]
    if r and r["val_mean"] is not None:
        test = (
            "" if r["test_mean"] is None else f", test {r['test_mean']:.5g} +- {r['test_std']:.2g}"
        )
        print(
            f"  retrained over {len(r['seeds'])} seeds (mean +- standard deviation): "
            f"{out['objective']} {r['val_mean']:.5g} +- {r['val_std']:.2g}{test}"
        )
    for line in _baseline_lines(out["baselines"]):
        print(line)
    for line in _pareto_lines(out["pareto"]):
        print(line)
    r = out.get("registered")
    if r:
        print(f"registered model {r['name']} version {r['version']} (trial {best.number}); serve:")
        print(f"  {r['serve']}")
    return 0


def _register(a: argparse.Namespace, study: Any, trial: int) -> dict[str, Any]:
    """``tuner best --register NAME --data F``: the trial's model as a registered pyfunc."""
    from tuner.errors import InputError, mask
    from tuner.serving import register
    from tuner.tracking import Tracker

    if not a.data:
        raise InputError("--register needs --data: a table for the model's input example")
    tracking = _stores(a).tracking
    version, uri = register(study, Tracker(tracking), trial, a.register, a.data)
    import shutil

    env = f"MLFLOW_TRACKING_URI={mask(tracking)} "
    mlflow = "mlflow"
    beside = Path(sys.executable).parent / "mlflow"  # a venv's, not on a fresh shell's PATH
    if beside.exists() and shutil.which("mlflow") != str(beside):
        mlflow = f"PATH={beside.parent}:$PATH {beside}"  # its server runs the venv's uvicorn
    serve = f"{env}{mlflow} models serve -m models:/{a.register}/{version} --env-manager local"
    return {"name": a.register, "version": version, "uri": uri, "serve": serve}


def _pareto_lines(front: list[dict[str, Any]]) -> list[str]:
    """The Pareto front as a table: trial, each objective, the parameters."""
    if not front:
        return []
    names = list(front[0]["values"])
    lines = [f"pareto front ({len(front)} trials, none beaten on every objective):"]
    lines.append("  " + " ".join(f"{n:>16}" for n in ["trial", *names]) + "  params")
    for row in front:
        cells = [f"{row['trial']:>16}", *(f"{v:>16.6g}" for v in row["values"].values())]
        lines.append("  " + " ".join(cells) + "  " + _params_line(row["params"]))
    return lines


def cmd_reproduce(a: argparse.Namespace) -> int:
    """Train trial N again from its recorded parameters and seed; show both results."""
    from tuner import launch
    from tuner.records import EPOCHS_RUN
    from tuner.rerun import reproduce

    study = launch.open_study(_stores(a), a.study)
    spec, space, dataset = launch.with_data(study, a.data)
    out = reproduce(study, space, spec, dataset, a.trial)
    rec, rep = out["recorded"], out["reproduced"]
    if a.json:
        print(json.dumps({**out, "why_different": _start_difference(rec, rep)}, indent=2))
        return 0
    keys = [
        k
        for k in dict.fromkeys(("value", *sorted(rep)))
        if k in rec and k in rep and k != EPOCHS_RUN
    ]
    names = {"value": f"value ({_objective(study)})"}
    print(f"trial {out['trial']} of {study.study_name!r}, seed {out['seed']}:")
    print(f"  {'':32} {'recorded':>12} {'reproduced':>12}")
    for k in [EPOCHS_RUN, *keys]:
        if k in rec and k in rep:
            print(f"  {names.get(k, k):32} {rec[k]:12.6g} {rep[k]:12.6g}")
    same = all(abs(rec[k] - rep[k]) <= 1e-6 * max(1.0, abs(rec[k])) for k in keys)
    why = _start_difference(rec, rep) or (
        "another machine, backend or thread count can change the arithmetic"
    )
    print("  the same" if same else f"  different ({why})")
    return 0


def _start_difference(recorded: dict[str, Any], reproduced: dict[str, Any]) -> str | None:
    """Why a residual trial's rerun can differ beyond arithmetic: one run kept its trained
    weights and the other went back to its start (``training.Start``), or the trial was
    recorded before that test existed, or before a ridge start recorded its lags."""
    if reproduced.get("value") is None:  # the rerun did not finish
        return None
    kept = [not d.get(records.BACK_TO_START) for d in (recorded, reproduced)]
    if kept[0] == kept[1]:
        if records.START_LAGS in reproduced and records.START_LAGS not in recorded:
            return (
                "the trial was recorded without its ridge start's lags (an older tuner): the "
                "rerun's ridge chose its own and may read others"
            )
        return None
    if records.START_PVALUE not in recorded:
        return (
            "the trial was recorded before residual models were tested against their start; "
            "the rerun was, and went back to it"
        )
    from tuner.config import KEEP_LEVEL

    p = [d.get(records.START_PVALUE) for d in (recorded, reproduced)]
    then, now = ("untested" if v is None else f"p = {v:.2g}" for v in p)
    went = "the recorded run went back to its start, the rerun kept its training"
    if kept[0]:
        went = "the recorded run kept its training, the rerun went back to its start"
    level = recorded.get(records.KEEP_LEVEL, KEEP_LEVEL)
    return f"{went} ({then} then, {now} now; it keeps below {level:.2g})"


def cmd_retrain(a: argparse.Namespace) -> int:
    """Retrain the K best trials over S new seeds; mean and spread of their errors."""
    from tuner import launch
    from tuner.rerun import retrain
    from tuner.tracking import Tracker

    study = launch.open_study(_stores(a), a.study)
    spec, space, dataset = launch.with_data(study, a.data)
    tracker = Tracker(_stores(a).tracking)
    out = retrain(study, space, spec, dataset, tracker, top=a.top, seeds=a.seeds)
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{len(out)} trials x {a.seeds} seeds of {study.study_name!r} ({space.objective}; "
        f"test: {out[0]['test_key']}):"
    )
    for s in out:
        val = "n/a" if s["val_mean"] is None else f"{s['val_mean']:.5g} +- {s['val_std']:.2g}"
        test = "n/a" if s["test_mean"] is None else f"{s['test_mean']:.5g} +- {s['test_std']:.2g}"
        failed = f", {s['failed']} failed" if s["failed"] else ""
        print(
            f"  trial {s['trial']}: searched {s['value']:.5g}; retrained val {val}, test {test}"
            f"{failed}"
        )
    print("pick by the mean: tuner best --by-mean")
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    """Check the study invariant (nothing stale RUNNING, links both ways, no trial beyond the
    target); an unfinished study is noted, not a problem."""
    from tuner.check import check
    from tuner.tracking import Tracker

    # Heartbeat settings tell a RUNNING trial whose worker is gone; only a repair fails it.
    study = _open_study(a, heartbeat=True)
    report = check(study, Tracker(_stores(a).tracking), repair=a.repair)
    if a.json:
        print(json.dumps(report.__dict__ | {"ok": report.ok}, indent=2))
    else:
        print(f"study {study.study_name!r}: {report.trials} trials, {report.runs} MLflow runs")
        for line in report.repaired:
            print(f"repaired: {line}")
        for line in report.problems:
            print(f"problem: {line}")
        for line in report.notes:
            print(f"note: {line}")
        n = len(report.problems)
        print("ok" if report.ok else f"{n} problem{'s' * (n != 1)}")
    return 0 if report.ok else 1


def cmd_export(a: argparse.Namespace) -> int:
    _check_table_file(a.output)
    import pandas as pd
    from optuna.distributions import IntDistribution

    study = _open_study(a)
    table = study.trials_dataframe()
    # Optuna's bookkeeping (fixed_params, failed_trial, ...) is not the user's: attributes only
    table = table.drop(columns=[c for c in table.columns if c.startswith("system_attrs_")])
    whole = {
        f"params_{name}"
        for t in study.get_trials(deepcopy=False)
        for name, d in t.distributions.items()
        if isinstance(d, IntDistribution)
    }
    # whole numbers, empty where a trial has none (not 12.0 and NaN): counts, integer parameters
    for column in sorted({*(f"user_attrs_{name}" for name in COUNTS), *whole}):
        numeric = column in table and pd.api.types.is_numeric_dtype(table[column])
        if numeric and (table[column].dropna() % 1 == 0).all():
            table[column] = table[column].astype("Int64")
    if len(study.directions) > 1 and "number" in table:  # which trials are on the front
        from tuner.study import pareto_front

        table["pareto"] = table["number"].isin([row["trial"] for row in pareto_front(study)])
    _write_table(table, a.output)
    print(f"wrote {len(table)} trials to {a.output}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    """Predict on a table with the model of the best trial (or of ``--trial N``)."""
    from tuner.predict import predict

    _check_table_file(a.output)
    study = _open_study(a)
    table = predict(study, _stores(a).tracking, a.data, a.trial)
    _write_table(table, a.output)
    print(f"wrote {len(table)} predictions to {a.output}")
    return 0


TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _check_table_file(output: str) -> None:
    """Refuse an output we cannot write (its format, its folder) before any work is done."""
    from tuner.errors import InputError

    if Path(output).suffix.lower() not in TABLE_SUFFIXES:
        raise InputError("unknown format; use .csv or .parquet", source=output)
    folder = Path(output).parent
    if not folder.is_dir():
        raise InputError(f"no such folder: {folder}", source=output)


def _write_table(table: Any, output: str) -> None:
    if Path(output).suffix.lower() == ".csv":
        table.to_csv(output, index=False)
    else:
        table.to_parquet(output, index=False)


def cmd_ui(a: argparse.Namespace) -> int:
    """The MLflow UI on this study's tracking store."""
    from tuner.errors import mask
    from tuner.storage import resolve

    stores = resolve(None, a.tracking_uri)
    experiment, view = _experiment_of(stores.tracking, a.study)
    if stores.tracking.startswith(("http://", "https://")):
        url = runs_url(mask(stores.tracking), experiment, view)
        print(f"the tracking server already serves the UI: {url}")
        return 0
    import signal
    import tempfile

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM and SIGHUP too: the server never outlives tuner ui

    command, env = ui_command(stores.tracking, stores.artifacts, a.host, a.port)
    base = f"http://{a.host}:{a.port}"
    # The server's own lines (its access log, its shutdown) go to a file shown only if it
    # fails; its own session keeps the terminal's Ctrl-C (and hang-up) for tuner ui, which
    # stops it whole.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in handled}
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        print(f"starting the MLflow UI on {base} ...", flush=True)
        try:
            if _answers(f"{base}/health", server, a.wait):
                url = runs_url(base, experiment, view)
                print(f"MLflow UI: {url}   (Ctrl-C to stop)", flush=True)
            elif server.poll() is None:
                print(f"the MLflow UI has not answered in {a.wait:g} s; still starting", flush=True)
            code = server.wait()
            print(f"the MLflow UI server stopped (exit {code}); its last lines:", file=sys.stderr)
            output.seek(max(0, output.seek(0, os.SEEK_END) - 8192))
            for line in output.read().decode(errors="replace").splitlines()[-20:]:
                print(f"  {line}", file=sys.stderr)
            return code or 1
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return 130
        finally:
            for sig in handled:  # a second Ctrl-C while the server stops waits for it too
                signal.signal(sig, signal.SIG_IGN)
            _stop_group(server)
            for sig, handler in before.items():
                if handler is not None:  # None: not set from Python, nothing to restore
                    signal.signal(sig, handler)


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """End a server started in its own session, with every process it started (MLflow's
    uvicorn and job consumers): SIGTERM, 10 s for the leader to end, then SIGKILL to what is
    left of the group."""
    import contextlib
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _experiment_of(tracking: str, study: str | None) -> tuple[str | None, bool]:
    """The experiment id of ``study`` (or of the only study) in the tracking store, if any, and
    whether it has the view of its trials (``tracking.trials_view``)."""
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking)
        if study is not None:
            exp = client.get_experiment_by_name(study)
        else:
            found = client.search_experiments(filter_string=f"tags.`{records.STUDY_TAG}` != ''")
            exp = found[0] if len(found) == 1 else None
        if exp is None:
            return None, False
        return exp.experiment_id, records.TRIALS_VIEW_TAG in exp.tags
    except Exception:  # the UI opens on the experiments list instead
        return None, False


def _answers(url: str, server: subprocess.Popen[bytes], wait: float) -> bool:
    """Poll ``url`` until it answers 200, the server exits, or ``wait`` seconds pass."""
    import http.client
    import time
    import urllib.request

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.5)
    return False


def ui_command(
    tracking: str, artifacts: str | None, host: str, port: int
) -> tuple[list[str], dict[str, str]]:
    """``mlflow ui`` with the interpreter's own mlflow (the venv's bin/ need not be on PATH).
    The store's URI goes by environment: it may hold a password, and arguments are public."""
    command = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]
    command += ["--workers", "1"]  # one server process: answers in seconds on a small machine
    env = {"MLFLOW_BACKEND_STORE_URI": tracking}
    if artifacts:
        env["MLFLOW_DEFAULT_ARTIFACT_ROOT"] = artifacts
    return command, env


def cmd_dashboard(a: argparse.Namespace) -> int:
    """optuna-dashboard on the study storage (the optional ``dashboard`` extra). The URL goes
    through the Python API, not a command line: it may hold a password."""
    import importlib.util

    from tuner.errors import InputError, mask
    from tuner.launch import require_studies
    from tuner.storage import make_storage

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise InputError(
            "optuna-dashboard is not installed: pip install 'tuner[dashboard]'",
            field="dashboard",
        )
    import optuna_dashboard

    stores = _stores(a)
    require_studies(stores.storage)
    storage = make_storage(stores.storage, heartbeat=False, create_tables=False)
    print(
        f"optuna-dashboard for {mask(stores.storage)} on http://{a.host}:{a.port} (Ctrl-C to stop)",
        flush=True,
    )
    try:
        optuna_dashboard.run_server(storage, host=a.host, port=a.port)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_proxy(a: argparse.Namespace) -> int:
    """Optuna's gRPC storage proxy: workers use ``--storage grpc://HOST:PORT`` and hold no
    database connections of their own. Runs until stopped."""
    import optuna

    from tuner.errors import mask
    from tuner.liveness import on_stale
    from tuner.storage import make_storage

    stores = _stores(a)
    storage = make_storage(stores.storage, on_stale=on_stale(stores.tracking), create_tables=False)
    print(f"gRPC storage proxy for {mask(stores.storage)} on {a.host}:{a.port}", flush=True)
    optuna.storages.run_grpc_proxy_server(storage, host=a.host, port=a.port)
    return 0


def cmd_db_init(a: argparse.Namespace) -> int:
    """Create the Optuna and MLflow schemas once, before workers start."""
    from tuner.errors import mask
    from tuner.storage import check_separate, make_storage
    from tuner.tracking import Tracker

    stores = _stores(a)
    check_separate(stores.storage, stores.tracking)
    make_storage(stores.storage, heartbeat=False)
    Tracker(stores.tracking).client.search_experiments(max_results=1)
    print(f"schemas ready: optuna {mask(stores.storage)}, mlflow {mask(stores.tracking)}")
    return 0


# -- shared steps ---------------------------------------------------------------------------


def _stores(a: argparse.Namespace) -> Any:
    from tuner.storage import resolve

    return resolve(getattr(a, "storage", None), getattr(a, "tracking_uri", None))


def _prepare(a: argparse.Namespace) -> Any:
    """The study's inputs from the command line, every one checked (``launch.prepare``)."""
    from tuner import data, launch

    options = data.DataOptions(
        path=a.data,
        target=tuple(_names(a.target)),
        features=tuple(_names(a.features)) if a.features else None,
        time=a.time,
        id=a.id,
        text=a.text,
        horizon=a.horizon,
        val_fraction=a.val_fraction,
        test_fraction=a.test_fraction,
        nan=a.nan,
    )
    return launch.prepare(
        a.space,
        options,
        _stores(a),
        name=a.study,
        season=a.season,
        max_epochs=a.max_epochs,
        budget_epochs=a.budget_epochs,
        sampler=a.sampler,
        pruner=a.pruner,
    )


def _open_study(a: argparse.Namespace, *, heartbeat: bool = False) -> Any:
    from tuner import launch

    return launch.open_study(_stores(a), a.study, heartbeat=heartbeat)


def _best_info(study: Any, best: Any, *, by_mean: bool = False) -> dict[str, Any]:
    """What `tuner best` reports; ``by_mean``: the trial was picked by its retrained mean, and
    the baselines are compared with its mean test score over those seeds."""
    from tuner import study as studies

    attrs = best.user_attrs
    retrained = (study.user_attrs.get(records.RETRAIN) or {}).get(str(best.number))
    return {
        "study": study.study_name,
        "trial": best.number,
        "objective": _objective(study),
        "value": studies.value(best),
        "params": best.params,
        "metrics": {
            k: int(v) if k in COUNTS and isinstance(v, float) and v.is_integer() else v
            for k, v in attrs.items()
            if k not in records.NOT_METRICS
        },
        records.RUN_ID: attrs.get(records.RUN_ID),
        records.MODEL_URI: attrs.get(records.MODEL_URI),
        records.CUDNN: attrs.get(records.CUDNN),
        "baselines": _baseline_report(study, best, retrained if by_mean else None),
        "retrain": retrained,
        "pareto": studies.pareto_front(study),
    }


# Metrics that count (stored as floats, as MLflow keeps every metric): whole numbers in JSON.
COUNTS = frozenset({records.EPOCHS, records.EPOCHS_RUN, "best_epoch", "params", "params_estimated"})


def _baseline_report(
    study: Any, best: Any, retrained: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The baselines and how ``best`` compares; with ``retrained`` (its `tuner retrain`
    record), by its mean test score over the retrained seeds rather than the search's one."""
    from tuner.baselines import compare

    b = study.user_attrs.get(records.BASELINES)
    if not b:
        return None
    if best is None:
        return compare(b, None)
    if retrained is None or retrained.get("test_mean") is None:
        report = compare(b, best.user_attrs)
        if best.user_attrs.get(records.BACK_TO_START):
            report["start"] = _start_note(study, best)
        return report
    # its test score alone: the search run's validation and per-target scores are not the mean
    attrs = {retrained["test_key"]: retrained["test_mean"]}
    who = f"the tuned LSTM (mean of {len(retrained['test'])} retrained seeds)"
    return compare(b, attrs, who)


# What a residual model starts from (``residual``), in words.
STARTS = {
    "ridge": "the ridge autoregression (ridge_ar)",
    "last": "the last value (naive)",
    "mean": "the window's mean",
}


def _start_note(study: Any, best: Any) -> str:
    """Why the best trial forecasts as its start does (``training.Start``)."""
    from tuner.config import KEEP_LEVEL

    fixed = ((study.user_attrs.get(records.SPEC) or {}).get("space") or {}).get("params") or {}
    residual = best.params.get("residual", fixed.get("residual"))
    start = STARTS.get(residual, "its start") if isinstance(residual, str) else "its start"
    lags = best.user_attrs.get(records.START_LAGS)
    if residual == "ridge" and lags and records.START_WINDOW not in best.user_attrs:
        # its window was shorter than the baseline's lags: a ridge of its own, not ridge_ar
        start = f"a ridge autoregression on {int(lags)} lags, fitted on its own windows"
    p = best.user_attrs.get(records.START_PVALUE)
    level = best.user_attrs.get(records.KEEP_LEVEL, KEEP_LEVEL)
    test = "" if p is None else f" (one-sided test, p = {p:.2g} >= {level:.2g})"
    return (
        f"trial {best.number}'s model is {start}: what its LSTM learned on top did not beat it "
        f"on validation beyond noise{test}, so the trial went back to it"
    )


# How the baselines' line names the error they are compared on.
METRIC_WORDS = {"mae_original": "MAE", "accuracy": "accuracy"}


def _objective(study: Any) -> str:
    """The name of the study's (first) objective, for the lines that show its value."""
    from tuner.errors import InputError
    from tuner.space import parse_space

    if study.metric_names:
        return str(study.metric_names[0])
    raw = (study.user_attrs.get(records.SPEC) or {}).get("space")
    try:
        return parse_space(raw or {}, source="the study", stored=True).objective
    except InputError:  # a study stored by another version: its value, unnamed
        return "value"


def _baseline_lines(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return []
    season = report.get("season")
    metric = report.get("metric")
    lines = [
        "baselines (validation / test"
        + (f" {METRIC_WORDS.get(metric, metric)}" if metric else "")
        + (f"; season {season}" if season else "")
        + "): "
        + "; ".join(
            f"{name} "
            + " / ".join(
                f"{v:.4g}"
                for k, v in scores.items()
                if k in (f"val_{report['metric']}", f"test_{report['metric']}")
            )
            for name, scores in report["baselines"].items()
        )
    ]
    if report.get("skill"):
        error = "; error = 1 - accuracy" if metric == "accuracy" else ""
        lines.append(
            f"skill (trial error / best baseline's{error}; < 1 is better): "
            + _params_line(report["skill"])
        )
    if report.get("verdict"):
        lines.append(report["verdict"])
    if report.get("start"):
        lines.append(report["start"])
    return lines


def runs_url(base: str, experiment_id: str | None, view: bool = True) -> str:
    """The MLflow UI's page of a study's runs, in its model-training view (MLflow 3 opens in
    its GenAI view otherwise; ``tracking.Tracker.ensure_study`` also tags the experiment), and
    with ``view`` in the study's view of its trials (``tracking.trials_view``: best first, the
    metrics in columns; a study made before it has none)."""

    base = base.rstrip("/")
    if not experiment_id:
        return base
    url = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{url}&viewStateShareKey={records.TRIALS_VIEW}" if view else url


def tuner_command() -> str:
    """How this shell runs tuner: ``tuner`` where it is on PATH, else the path it was run by
    (a fresh shell after ``pip install`` in a venv has ``.venv/bin/tuner``)."""
    import shutil

    argv0 = Path(sys.argv[0])
    found = shutil.which("tuner")
    if argv0.name == "tuner" and (found is None or Path(found).resolve() != argv0.resolve()):
        try:
            return str(argv0.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(argv0.resolve())
    return "tuner"


def _print_summary(study: Any, ran: int, tracking: str) -> None:
    from tuner import study as studies

    c = studies.counts(study)
    print(
        f"\nstudy {study.study_name!r}: {c['complete']} complete, {c['pruned']} pruned, "
        f"{studies.failed_text(c)} ({_ran_now(study, ran)})"
    )
    best = studies.best_trial(study)
    if best is not None:
        info = _best_info(study, best)
        line = _params_line({info["objective"]: studies.value(best), **info["metrics"]})
        print(f"best trial {best.number}: {line}")
        print("  params: " + _params_line(best.params))
        print(f"  model:  {info[records.MODEL_URI] or 'not logged'}")
    for line in _baseline_lines(_baseline_report(study, best)):
        print(line)
    front = studies.pareto_front(study)
    if front:
        names = ", ".join(front[0]["values"])
        print(f"pareto front ({names}): trials {', '.join(str(r['trial']) for r in front)}")
        print("  (tuner best lists them; tuner predict --trial N uses one)")
    experiment = study.user_attrs.get(records.EXPERIMENT)
    if tracking.startswith(("http://", "https://")):
        from tuner.errors import mask

        print(f"browse every trial and curve: {runs_url(mask(tracking), experiment)}")
    else:
        url = runs_url("http://127.0.0.1:5000", experiment)
        print(f"browse every trial and curve: {tuner_command()} ui   (then open {url})")


def _ran_now(study: Any, ran: int) -> str:
    """How many trials this run ran, and when none, why (and what runs more)."""
    from tuner import study as studies

    budget = study.user_attrs.get(records.BUDGET)
    if ran:
        return f"{ran} run now"
    if budget and studies.budget_left(study) == 0:
        spent = f"its budget of {budget} epochs is spent; a larger --budget-epochs extends it"
        return f"none run now: {spent}"
    return "none run now: the study had reached its target; a larger --trials extends it"


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _params_line(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float) and v.is_integer() and abs(v) >= 1e4:  # a count: every digit
            return str(int(v))
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in values.items())


# -- parser ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, its errors on one line as every other input error (no usage block): the
    option, what was wrong, and where the help is. Sub-commands' parsers are of this class too."""

    def error(self, message: str, prog: str | None = None) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"tuner: error: {message} (see {prog or self.prog} --help)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """An unknown option is reported by the top parser: its help hint names the command."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else None
            self.error(f"unrecognized arguments: {' '.join(extras)}", prog)
        return parsed


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tuner",
        description="Find good Keras LSTM architectures for your sequence data "
        "(Optuna search, MLflow records).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def stores(sp: argparse.ArgumentParser, tracking: bool = True) -> None:
        sp.add_argument(
            "--storage",
            help="Optuna storage URL (default: $TUNER_STORAGE, else "
            "SQLite under $TUNER_HOME or ./.tuner)",
        )
        if tracking:
            sp.add_argument(
                "--tracking-uri",
                help="MLflow tracking URI (default: "
                "$MLFLOW_TRACKING_URI, else SQLite under $TUNER_HOME or ./.tuner)",
            )

    def study_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--study", help="study name (default: the only study in the storage)")

    def quiet(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-q", "--quiet", action="store_true", help="no progress bar, summary or notes"
        )
        sp.add_argument("--verbose", action="store_true", help="debug messages too")

    def define(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("space", help="search space YAML (see search_spaces/)")
        sp.add_argument(
            "--data",
            required=True,
            help="CSV or Parquet table (classify, tag, text: also .npz; seq2seq: .npz)",
        )
        sp.add_argument(
            "--target",
            help="column(s) to predict, comma-separated (classify, text: the label column; "
            "tag: the per-step label or value column(s))",
        )
        sp.add_argument(
            "--features",
            help="input columns, comma-separated (default: every other numeric column)",
        )
        sp.add_argument("--time", help="column to order rows by")
        sp.add_argument("--id", help="classify and tag tables: the column naming each sequence")
        sp.add_argument("--text", help="text tables: the column holding the texts")
        sp.add_argument("--horizon", type=int, default=1, help="steps ahead to forecast (1)")
        sp.add_argument("--val-fraction", type=float, default=0.15, help="validation share (0.15)")
        sp.add_argument("--test-fraction", type=float, default=0.15, help="test share (0.15)")
        sp.add_argument("--nan", default="fail", help="NaN policy: fail, drop, interpolate")
        sp.add_argument("--study", help="study name (default: SPACE-DATA file names)")
        sp.add_argument(
            "--trials",
            type=int,
            help=f"target number of trials ({records.DEFAULT_TRIALS}; a resume keeps the study's; "
            "with --budget-epochs alone: "
            "until the budget is spent)",
        )
        sp.add_argument("--max-epochs", type=int, help="cap the space's epoch budget")
        sp.add_argument(
            "--budget-epochs",
            type=int,
            help="the study's compute budget: epochs of every trial together; no trial starts "
            "once it is spent, and the last one gets what is left",
        )
        sp.add_argument(
            "--season",
            type=int,
            help="forecast: the seasonal period in rows (default: detected on the training "
            "split); sets the seasonal-naive baseline and window: auto",
        )
        sp.add_argument(
            "--sampler", help="override the space's sampler: " + ", ".join(SAMPLER_NAMES)
        )
        sp.add_argument("--pruner", help="override the space's pruner: " + ", ".join(PRUNER_NAMES))
        stores(sp)
        quiet(sp)

    def limits(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--max-params",
            type=int,
            help="prune, before it is built, a trial of more parameters (counted from its shape)",
        )
        sp.add_argument(
            "--max-memory",
            type=float,
            help="prune, before it is built, a trial estimated to need more MiB to train "
            "(default: the memory of the GPU it runs on, else of the machine)",
        )

    run = sub.add_parser("run", help="run a study here (creates or resumes it)")
    define(run)
    limits(run)
    run.add_argument("--workers", type=int, default=1, help="local worker processes (1)")
    run.set_defaults(func=cmd_run)

    create = sub.add_parser("create", help="create a study for workers to join; trains nothing")
    define(create)
    create.set_defaults(func=cmd_create)

    worker = sub.add_parser("worker", help="join a study and run its trials")
    study_arg(worker)
    worker.add_argument("--data", required=True, help="the study's data file on this machine")
    worker.add_argument("--gpu", type=int, help="pin to this GPU (with memory growth)")
    worker.add_argument("--trials", type=int, help="stop after this many trials")
    worker.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    worker.add_argument(
        "--trials-per-process",
        type=int,
        default=10,
        help="run trials in a child process replaced after this many, so memory stays flat "
        "(10; 1: a fresh process per trial; 0: all in this process)",
    )
    worker.add_argument("--trial-process", action="store_true", help=argparse.SUPPRESS)
    limits(worker)
    stores(worker)
    quiet(worker)
    worker.set_defaults(func=cmd_worker)

    status = sub.add_parser("status", help="trials done / pruned / failed and the best so far")
    study_arg(status)
    stores(status, tracking=False)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=cmd_status)

    best = sub.add_parser("best", help="the best trial: params, metrics, model")
    study_arg(best)
    stores(best)
    best.add_argument(
        "--by-mean",
        action="store_true",
        help="the retrained trial with the best mean validation value over its seeds",
    )
    best.add_argument("--json", action="store_true", help="print the best trial as JSON")
    best.add_argument(
        "--register",
        metavar="NAME",
        help="log its model as an MLflow pyfunc model (raw rows in, predictions out) and "
        "register it as NAME; needs --data (its input example)",
    )
    best.add_argument("--data", help="with --register: a table of the study's kind (an example)")
    best.set_defaults(func=cmd_best)

    rep = sub.add_parser("reproduce", help="train trial N again from its parameters and seed")
    rep.add_argument("trial", type=int, help="the trial's number")
    study_arg(rep)
    rep.add_argument("--data", required=True, help="the study's data file on this machine")
    rep.add_argument("--json", action="store_true", help="print the results as JSON")
    stores(rep)
    rep.set_defaults(func=cmd_reproduce)

    ret = sub.add_parser(
        "retrain", help="retrain the best trials over several seeds: mean and spread"
    )
    study_arg(ret)
    ret.add_argument("--data", required=True, help="the study's data file on this machine")
    ret.add_argument("--top", type=int, default=3, help="how many of the best trials (3)")
    ret.add_argument("--seeds", type=int, default=3, help="new seeds per trial (3)")
    ret.add_argument("--json", action="store_true", help="print the results as JSON")
    stores(ret)
    ret.set_defaults(func=cmd_retrain)

    check = sub.add_parser("check", help="check a study for stale or unlinked trials and runs")
    study_arg(check)
    stores(check)
    check.add_argument(
        "--repair",
        action="store_true",
        help="fail trials whose worker is gone and queue their retries (after waiting one "
        "heartbeat grace period), then close MLflow runs left RUNNING and a second parent run",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_check)

    export = sub.add_parser("export", help="every trial as a table (.csv or .parquet)")
    study_arg(export)
    stores(export, tracking=False)
    export.add_argument(
        "-o", "--output", required=True, help="the table to write: .csv or .parquet"
    )
    export.set_defaults(func=cmd_export)

    pred = sub.add_parser("predict", help="predict on a table with the best trial's model")
    study_arg(pred)
    pred.add_argument("--trial", type=int, help="use this trial's model (default: the best's)")
    pred.add_argument(
        "--data", required=True, help="CSV or Parquet table (classify, text: also .npz)"
    )
    pred.add_argument("-o", "--output", required=True, help="predictions file: .csv or .parquet")
    stores(pred)
    pred.set_defaults(func=cmd_predict)

    ui = sub.add_parser("ui", help="open the MLflow UI on this study's store")
    ui.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else SQLite under "
        "$TUNER_HOME or ./.tuner)",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (5000)")
    ui.add_argument("--study", help="print the URL of this study's runs (default: the only one)")
    ui.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for it to answer (120)"
    )
    ui.set_defaults(func=cmd_ui)

    dash = sub.add_parser("dashboard", help="optuna-dashboard on the study storage")
    stores(dash, tracking=False)
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    dash.add_argument("--port", type=int, default=8080, help="port (8080)")
    dash.set_defaults(func=cmd_dashboard)

    proxy = sub.add_parser("proxy", help="serve the storage to many workers over gRPC")
    stores(proxy)
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    proxy.add_argument("--port", type=int, default=13000, help="port (13000)")
    proxy.set_defaults(func=cmd_proxy)

    db = sub.add_parser("db", help="database administration")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    init = dbsub.add_parser("init", help="create the Optuna and MLflow schemas, once")
    stores(init)
    init.set_defaults(func=cmd_db_init)
    return p


if __name__ == "__main__":
    sys.exit(main())
