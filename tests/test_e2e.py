"""Real studies with tiny data, through the CLI's main(argv): Optuna storage and MLflow checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import CO2_OPTIONS
from mlflow import MlflowClient
from optuna.trial import TrialState

from tuner.check import check
from tuner.cli import main
from tuner.storage import embedded
from tuner.testing import sqlite_trial_reporting
from tuner.tracking import Tracker

pytestmark = pytest.mark.slow

TINY_FORECAST = """
task: forecast
epochs: 2
seed: 1
sampler: {name: random}
pruner: none
params:
  layers: {low: 1, high: 2}
  units: {low: 4, high: 8}
  window: {low: 4, high: 8}
  batch_size: 64
  optimizer: [adam, rmsprop]
  momentum: {low: 0.0, high: 0.5}
start_with:
  - {layers: 1, units: 8}
"""


def run_args(space: Path, data: Path, *extra: str) -> list[str]:
    return ["run", str(space), "--data", str(data), *CO2_OPTIONS, "--study", "s", "-q", *extra]


def stores():
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    return study, MlflowClient(tracking), Tracker(tracking)


def test_forecast_study_end_to_end_then_resume(space_file, co2_csv, capsys, plots) -> None:
    space = space_file(TINY_FORECAST)
    assert main(run_args(space, co2_csv, "--trials", "3")) == 0
    study, client, tracker = stores()
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    first = trials[0].params  # the enqueued textbook trial, the rest sampled
    assert (first["layers"], first["units"]) == (1, 8)

    report = check(study, tracker)
    assert report.ok, report.problems
    assert report.runs == 3

    exp = client.get_experiment_by_name("s")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["tuner.role"] == "study"
    settings = parent.data.params  # issue 14: what the study ran with, not only the space
    assert (settings["target"], settings["horizon"], settings["nan"]) == ("co2", "1", "interpolate")
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"plots", "trials.csv"} <= parent_files
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.html", "plots/optimization_history.png"} <= plots
    assert "plots/best_predictions.png" in plots  # the best model against the series
    # issue 14: the plots render offline: a PNG, and HTML that fetches no script
    folder = Path(client.download_artifacts(parent.info.run_id, "plots"))
    assert (folder / "optimization_history.png").read_bytes().startswith(b"\x89PNG")
    html = (folder / "optimization_history.html").read_text()
    assert re.findall(r"<script[^>]*\ssrc=", html) == [] and len(html) > 1_000_000
    for t in trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.experiment_id == exp.experiment_id
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.state"] == "COMPLETE"
        assert run.data.tags["tuner.cudnn_eligible"] == "true"
        assert {"units_1", "optimizer", "window", "learning_rate", "scaler"} <= set(run.data.params)
        curve = client.get_metric_history(run.info.run_id, "val_mae_original")
        assert [m.step for m in curve] == [0, 1]
        assert run.data.metrics["best_val_mae_original"] == pytest.approx(t.value)
        assert min(m.value for m in curve) == pytest.approx(t.value)
        assert "val_rmse_original" in run.data.metrics

    best = study.best_trial
    assert best.user_attrs["model_uri"] == f"runs:/{best.user_attrs['mlflow_run_id']}/model"
    model_files = {a.path for a in client.list_artifacts(best.user_attrs["mlflow_run_id"], "model")}
    assert model_files == {"model/model.keras", "model/preprocess.json"}
    assert "test_mae_original" in best.user_attrs
    # issue 14: exactly one run carries the best mark and the name that says so
    marked = client.search_runs([exp.experiment_id], "tags.`tuner.best` = 'true'")
    assert [r.info.run_id for r in marked] == [best.user_attrs["mlflow_run_id"]]
    assert marked[0].info.run_name == f"trial-{best.number} (best)"

    # resume: the same command with a higher target adds trials, never restarts
    assert main(run_args(space, co2_csv, "--trials", "5")) == 0
    study, client, tracker = stores()
    assert len(study.get_trials()) == 5
    assert check(study, tracker).ok
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"

    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["study"], status["complete"], status["target"]) == ("s", 5, 5)
    assert main(["best", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trial"] == study.best_trial.number and info["model_uri"].startswith("runs:/")
    assert info["objective"] == "val_mae_original" and isinstance(
        info["metrics"]["epochs_run"], int
    )
    assert main(["check"]) == 0
    for name in ("trials.csv", "trials.parquet"):
        assert main(["export", "-o", name]) == 0
        table = pd.read_csv(name) if name.endswith("csv") else pd.read_parquet(name)
        assert len(table) == 5 and "params_units" in table.columns
        assert not [c for c in table.columns if c.startswith("system_attrs")], "Optuna's own"
        assert table["user_attrs_epochs_run"].dtype.kind == "i", "counts as whole numbers"
        assert table["params_units"].dtype.kind == "i", "an integer parameter too"


def test_a_study_reports_its_baselines_and_the_best_trials_skill(
    space_file, co2_csv, capsys
) -> None:
    """The summary, `tuner best --json` and the parent run carry the baselines; the hybrid
    option (an LSTM on the ridge's residual) and window: auto run for real."""
    space = space_file(
        TINY_FORECAST.replace("window: {low: 4, high: 8}", "window: auto\n  residual: [ridge]")
    )
    assert (
        main(
            [
                "run",
                str(space),
                "--data",
                str(co2_csv),
                *CO2_OPTIONS,
                "--study",
                "s",
                "--trials",
                "2",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "window: auto -> " in err
    assert "baselines (validation / test" in out and "ridge_ar" in out and "naive" in out
    verdicts = ("beats every baseline", "ties the best baseline", "does NOT beat the simple")
    assert sum(v in out for v in verdicts) == 1, out  # one plain verdict
    study, client, _ = stores()
    assert main(["best", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["baselines"]
    assert info["best_baseline"] in info["baselines"]
    assert {"skill_val", "skill_test", "mase_test"} <= set(info["skill"])
    assert isinstance(info["beats_baselines"], bool)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert "baseline_naive_test_mae_original" in parent.data.metrics
    assert "best_skill_test" in parent.data.metrics
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "baselines.csv" in files
    window = study.best_trial.params["window"]
    assert window != 24 and "window" in study.best_trial.params  # searched in the auto range
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert complete and all("start_pvalue" in t.user_attrs for t in complete), "judged"
    ridge = study.user_attrs["tuner_baselines"]["scores"]["ridge_ar"]
    lags = int(ridge["lags"])
    from tuner.launch import max_window, with_data

    _, stored_space, data = with_data(study, str(co2_csv))
    for t in complete:  # each ridge start reads the lags the study's ridge baseline chose
        assert t.user_attrs["start_lags"] == min(lags, t.params["window"])
        if t.params["window"] >= lags:  # ... and is that baseline, when its window holds them
            assert t.user_attrs["start_window"] == study.user_attrs["tuner_baselines"]["window"]
            test = t.user_attrs.get("test_mae_original")  # scored: best when it completed
            if t.user_attrs.get("back_to_start") and test is not None:  # the baseline's own
                assert test == pytest.approx(ridge["test_mae_original"], rel=1e-4)
    assert data.ridge_window == max_window(stored_space)  # the baseline's window: the largest
    assert data.ridge_lags == lags  # a worker's data, too
    best = study.best_trial.user_attrs
    back = bool(best.get("back_to_start")) and "start_lags" in best  # back to a ridge start
    itself = "start_window" in best  # ... that is the study's baseline, or a ridge of its own
    assert ("'s model is the ridge autoregression (ridge_ar)" in out) == (back and itself), out
    assert ("'s model is a ridge autoregression on" in out) == (back and not itself), out


def test_a_prepared_study_s_ridge_starts_read_its_ridge_baseline_s_lags(
    space_file, co2_csv
) -> None:
    """What `tuner run`'s own workers train on (the prepared data, not read again)."""
    from tuner.data import DataOptions
    from tuner.launch import prepare, ridge_baseline_lags
    from tuner.storage import resolve

    space = space_file(TINY_FORECAST.replace("window: {low: 4, high: 8}", "window: auto"))
    options = DataOptions(str(co2_csv), target=("co2",), time="date", nan="interpolate")
    prepared = prepare(str(space), options, resolve(None, None))
    lags = ridge_baseline_lags(prepared.baselines)
    assert lags and prepared.dataset.ridge_lags == lags


def test_an_epoch_budget_ends_the_study_and_trims_the_last_trial(space_file, co2_csv) -> None:
    space = space_file(TINY_FORECAST)  # 2 epochs a trial, no early stopping
    assert main(run_args(space, co2_csv, "--budget-epochs", "5")) == 0
    study, _, tracker = stores()
    runs = [t.user_attrs["epochs_run"] for t in study.get_trials()]
    assert runs == [2.0, 2.0, 1.0]  # no trial target: the budget ended it, the last got 1
    assert [t.user_attrs["epochs"] for t in study.get_trials()] == [2, 2, 1]
    assert check(study, tracker).ok
    # a resume without --budget-epochs keeps the budget (spent: nothing runs); a larger one
    # given on resume is spent too
    assert main(run_args(space, co2_csv)) == 0
    study, _, tracker = stores()
    assert len(study.get_trials()) == 3
    assert main(run_args(space, co2_csv, "--budget-epochs", "8")) == 0
    study, _, tracker = stores()
    assert sum(t.user_attrs["epochs_run"] for t in study.get_trials()) == 8
    assert check(study, tracker).ok


def test_reproduce_a_trial_then_retrain_the_best_over_seeds(space_file, co2_csv, capsys) -> None:
    space = space_file(TINY_FORECAST)
    assert main(run_args(space, co2_csv, "--trials", "2")) == 0
    data = ["--data", str(co2_csv)]
    capsys.readouterr()
    assert main(["reproduce", "1", *data, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    recorded, again = out["recorded"], out["reproduced"]
    assert again["epochs_run"] == recorded["epochs_run"] == 2
    assert again["value"] == pytest.approx(recorded["value"], rel=1e-5)  # same seed, same curve
    assert again["best_val_loss"] == pytest.approx(recorded["best_val_loss"], rel=1e-5)
    assert main(["reproduce", "1", *data]) == 0
    table = capsys.readouterr().out
    rows = [line.split()[0] for line in table.splitlines()[2:]]
    assert rows.count("value") == 1 and "value (val_mae_original)" in table, table
    assert table.rstrip().endswith("the same"), table

    assert main(["retrain", "--top", "2", "--seeds", "2", *data, "--json"]) == 0
    summaries = json.loads(capsys.readouterr().out)
    assert sorted(s["trial"] for s in summaries) == [0, 1]
    for s in summaries:
        assert len(s["val"]) == len(s["test"]) == 2 and s["failed"] == 0
        assert s["val_mean"] == pytest.approx(sum(s["val"]) / 2)
    study, client, tracker = stores()
    exp = study.user_attrs["mlflow_experiment_id"]
    runs = client.search_runs([exp], filter_string="tags.`tuner.role` = 'retrain'")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["tuner.retrain_of"] for r in runs} == {"0", "1"}
    assert check(study, tracker).ok, "retrain runs are not taken for trials' runs"

    assert main(["best", "--by-mean", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trial"] == summaries[0]["trial"]  # retrain lists the best mean first
    assert info["retrain"]["seeds"] and len(info["retrain"]["val"]) == 2
    assert "(mean of 2 retrained seeds)" in info["baselines"]["verdict"]

    assert main(["reproduce", "7", *data]) == 2
    assert "no trial 7" in capsys.readouterr().err


def test_pruned_trials_are_killed_runs_with_their_curves(space_file, co2_csv) -> None:
    space = space_file(
        TINY_FORECAST.replace("epochs: 2", "epochs: 3").replace(
            "pruner: none", "pruner: {name: threshold, upper: 0.0}"
        )
    )
    assert main(run_args(space, co2_csv, "--trials", "2")) == 0
    study, client, tracker = stores()
    assert [t.state for t in study.get_trials()] == [TrialState.PRUNED] * 2
    for t in study.get_trials():
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "PRUNED"
        assert run.data.tags["tuner.reason"] == "pruned at epoch 0"
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 1
    assert check(study, tracker).ok


def test_classification_study(space_file, npz_binary) -> None:
    space = space_file("""
task: classify
objective: val_accuracy
epochs: 2
sampler: random
pruner: none
params:
  units: {low: 4, high: 8}
  bidirectional: [false, true]
  batch_size: 16
""")
    assert (
        main(["run", str(space), "--data", str(npz_binary), "--study", "s", "--trials", "2", "-q"])
        == 0
    )
    study, client, tracker = stores()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    run = client.get_run(study.best_trial.user_attrs["mlflow_run_id"])
    assert run.data.params["window"] == "12", "a classifier's window defaults to the whole sequence"
    assert 0.0 <= run.data.metrics["val_accuracy"] <= 1.0 and "test_accuracy" in run.data.metrics
    assert check(study, tracker).ok
    parent = study.user_attrs["mlflow_parent_run_id"]
    for run_id in (run.info.run_id, parent):  # issue 14: the best model's confusion matrix
        assert "plots/best_confusion_matrix.png" in {
            a.path for a in client.list_artifacts(run_id, "plots")
        }


def test_four_local_workers_on_the_embedded_store_twice(space_file, co2_csv, capfd) -> None:
    """Scenario 8: SQLite in WAL mode with a busy timeout, four writers, a run then a resume."""
    space = space_file(TINY_FORECAST)
    for target in (6, 10):
        assert main(run_args(space, co2_csv, "--trials", str(target), "--workers", "4")) == 0
        study, client, tracker = stores()
        trials = study.get_trials()
        assert sorted(t.number for t in trials) == list(range(target))
        assert all(t.state == TrialState.COMPLETE for t in trials)
        report = check(study, tracker)
        assert report.ok and report.runs == target, report.problems
    err = capfd.readouterr().err
    assert "locked" not in err and "storage error" not in err, err[-2000:]


def test_bad_input_exits_2_and_creates_nothing(space_file, co2_csv, clean_env, capsys) -> None:
    space = space_file(TINY_FORECAST)
    cases = [
        (
            run_args(space_file("params:\n  units: {low: 9, high: 3}\n", "bad.yaml"), co2_csv),
            "bad.yaml:2: params.units: `low <= high` must hold, but got (low=9, high=3).",
        ),
        (run_args(space, Path("nope.csv")), "nope.csv: no such file"),
        (
            ["run", str(space), "--data", str(co2_csv), "--target", "ppm"],
            "co2.csv: ppm: no such column",
        ),
        (run_args(space, co2_csv, "--study", "bad name"), "--study: invalid study name 'bad name'"),
        (
            run_args(
                space,
                co2_csv,
                "--storage",
                "postgresql://u@127.0.0.1:5432/db",
                "--tracking-uri",
                "postgresql://u@localhost:5432/db",
            ),
            "same database",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tuner: error: ") and expected in err[0], err
    assert not clean_env.exists(), "nothing was written to the embedded store"


def test_help_is_fast_and_imports_no_framework() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from tuner.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'optuna', 'mlflow', 'pandas') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def start_training(space_file, co2_csv, home: Path, **env: str) -> subprocess.Popen:
    """`tuner run` of 4 long trials in its own session, returned once a trial has reported."""
    import os
    import time

    space = space_file(TINY_FORECAST.replace("epochs: 2", "epochs: 500"))
    argv = [sys.executable, "-m", "tuner", *run_args(space, co2_csv, "--trials", "4")]
    env = {**os.environ, "TUNER_HOME": str(home), **env}
    proc = subprocess.Popen(
        argv, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if not (home / "optuna.db").exists():
            continue
        if sqlite_trial_reporting(home / "optuna.db"):
            return proc
    proc.kill()
    raise AssertionError(f"no trial started: {proc.communicate()[1][-2000:]}")


def test_sigint_to_the_run_parent_alone_stops_its_workers(space_file, co2_csv, clean_env) -> None:
    """Issue 10: ``kill -INT`` to `tuner run` (a process manager, an IDE), not to its group."""
    import os
    import signal

    import psutil

    proc = start_training(space_file, co2_csv, clean_env)
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "tuner run trains in worker processes"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, proc.stderr.read()[-2000:]
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"workers still running after SIGINT to their parent: {alive}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    study, _, tracker = stores()
    assert TrialState.RUNNING not in [t.state for t in study.get_trials()]
    report = check(study, tracker)
    assert report.ok, report.problems


def test_check_repair_fails_and_requeues_a_killed_run_s_trials(
    space_file, co2_csv, clean_env, monkeypatch, capsys
) -> None:
    """Issue 10: right after `tuner run` was killed, repair left its trials RUNNING (a fresh
    process skipped the sweep; the cached storage had no heartbeat settings) and closed their
    runs as "no live trial"."""
    import os
    import signal
    import time

    monkeypatch.setenv("TUNER_HEARTBEAT", "1,2")
    proc = start_training(space_file, co2_csv, clean_env, TUNER_HEARTBEAT="1,2")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    study, _, _ = stores()
    [killed] = study.get_trials(states=(TrialState.RUNNING,))
    time.sleep(3)  # past the 2 s grace
    assert main(["check", "--study", "s"]) == 1
    assert f"trial {killed.number} is RUNNING and its worker is gone" in capsys.readouterr().out

    assert main(["check", "--study", "s", "--repair"]) == 0
    out = capsys.readouterr().out
    assert f"failed stale trial {killed.number}, queued its retry" in out, out
    study, client, tracker = stores()
    trials = study.get_trials()
    assert TrialState.RUNNING not in [t.state for t in trials]
    [dead] = [t for t in trials if t.number == killed.number]
    assert dead.state == TrialState.FAIL
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.WAITING
    run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and "heartbeat stale" in run.data.tags["tuner.reason"]
    assert check(study, tracker).ok


def test_check_after_create_notes_an_unfinished_study_and_fails_nothing(
    space_file, co2_csv, capsys
) -> None:
    """A new user's trial: `tuner check` right after `tuner create` failed (the parent run
    is open, awaiting workers: that is the study's state, not a fault)."""
    space = space_file(TINY_FORECAST)
    argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main([*argv, "--trials", "2"]) == 0
    capsys.readouterr()
    assert main(["check", "--study", "s"]) == 0
    out = capsys.readouterr().out
    assert "note: unfinished: 0 of 2 trials complete or pruned, 1 waiting" in out, out
    assert "is open, awaiting workers" in out and out.rstrip().endswith("ok"), out


def test_check_finds_and_repair_closes_a_second_parent_and_a_run_of_no_trial(
    space_file, co2_csv
) -> None:
    """Issue 10: runs `tuner check` never looked at: a second top-level run in the study's
    experiment (left by racing creates) and a child run naming a trial the study lacks."""
    space = space_file(TINY_FORECAST)
    argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main(argv) == 0
    study, client, tracker = stores()
    exp = study.user_attrs["mlflow_experiment_id"]
    parent = study.user_attrs["mlflow_parent_run_id"]
    second = client.create_run(exp, tags={"tuner.role": "study"}).info.run_id
    stray = client.create_run(
        exp, tags={"mlflow.parentRunId": parent, "optuna.trial_number": "7"}
    ).info.run_id
    problems = check(study, tracker).problems
    assert any(second in p and "second parent run" in p for p in problems), problems
    assert any(stray in p and "names trial 7" in p for p in problems), problems
    report = check(study, tracker, repair=True)
    assert f"closed second parent run {second}" in report.repaired
    assert f"closed run {stray} of no trial (7)" in report.repaired
    assert client.get_run(second).info.status == "KILLED"
    assert client.get_run(stray).info.status == "KILLED"
    after = check(study, tracker).problems
    assert not any("second parent" in p or "names trial" in p for p in after), after
    assert main(argv) == 0  # a resume keeps the study's own parent, not the newer closed one
    study, _, _ = stores()
    assert study.user_attrs["mlflow_parent_run_id"] == parent


def test_a_window_auto_study_resumes_with_the_range_it_was_resolved_to(
    space_file, co2_csv, capsys
) -> None:
    """Review of issue 10: `window: auto` resolving differently after an upgrade refused to
    resume every such study ("exists with different search space")."""
    space = space_file(TINY_FORECAST.replace("  window: {low: 4, high: 8}\n", "  window: auto\n"))
    argv = ["create", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main(argv) == 0
    study, _, _ = stores()
    spec = study.user_attrs["tuner_spec"]
    old = {"low": 3, "high": 9}  # as an older tuner resolved it
    spec["space"]["params"]["window"] = old
    study.set_user_attr("tuner_spec", spec)
    assert main(argv) == 0, capsys.readouterr().err
    study, _, _ = stores()
    assert study.user_attrs["tuner_spec"]["space"]["params"]["window"] == old


def test_the_summary_and_tuner_ui_lead_to_the_study_s_runs(space_file, co2_csv, capsys) -> None:
    """Issue 14: the experiment opens in MLflow's model-training view, and both the run's
    summary and `tuner ui` (one server worker, its URL printed once it answers) name the runs
    page of the study."""
    import contextlib
    import os
    import signal
    import urllib.request

    import psutil

    from tuner.testing import free_port, kill_group, tail, wait_for

    space = space_file(TINY_FORECAST)
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s"]
    assert main([*argv, "--trials", "1"]) == 0
    study, client, _ = stores()
    exp_id = study.user_attrs["mlflow_experiment_id"]
    kind = client.get_experiment(exp_id).tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"
    out = capsys.readouterr().out
    page = f"/#/experiments/{exp_id}/runs?workflowType=machine_learning&viewStateShareKey=trials"
    assert f"ui   (then open http://127.0.0.1:5000{page})" in out
    # the view the URL names: trials best first, by metrics every trial's run has
    view = json.loads(client.get_experiment(exp_id).tags["mlflow.sharedViewState.trials"])
    best = client.get_run(study.best_trial.user_attrs["mlflow_run_id"])
    assert view["orderByKey"] == "metrics.`best_val_mae_original`" and view["orderByAsc"]
    shown = [c.split("`")[1] for c in view["selectedColumns"] if c.startswith("metrics.")]
    assert shown and set(shown) <= set(best.data.metrics), (shown, sorted(best.data.metrics))

    port = free_port()
    log = Path("ui.log")
    with open(log, "ab") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "tuner", "ui", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # as a terminal starts it: pytest run in the background (`pytest &`) passes SIGINT
            # ignored to its children, and a Python started so ignores Ctrl-C
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    server: list[psutil.Process] = []
    try:
        line = wait_for(
            lambda: next((x for x in tail(log, 50) if x.startswith("MLflow UI: ")), None),
            180,
            "tuner ui printing its URL",
        )
        assert line.split()[2] == f"http://127.0.0.1:{port}{page}"
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get?experiment_id={exp_id}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.load(response)["experiment"]["name"] == "s"
        # A new user's Ctrl-C printed the server's shutdown lines and a threading traceback:
        # the server runs in its own session, quiet, and tuner ui stops all of it.
        server = psutil.Process(ui.pid).children(recursive=True)
        assert server, "the MLflow server runs under tuner ui"
        os.killpg(ui.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        assert ui.wait(timeout=60) == 130
        _, alive = psutil.wait_procs(server, timeout=5)
        assert not alive, alive
        text = log.read_text()
        assert text.splitlines()[-1] == "stopped" and "Traceback" not in text, text
        assert "INFO" not in text and "Uvicorn" not in text, text
    finally:
        kill_group(ui)
        for process in server:  # in its own session: not in tuner ui's group
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
