"""A trial's MLflow run through a tracking-server outage, against a scripted client: nothing is
lost, nothing is sent twice, training never waits on it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tuner import retry
from tuner.tracking import Tracker, TrialRun


class Down(Exception):
    pass


class FakeClient:
    """An MLflow client whose server is down while ``down`` is set; ``lose_answer`` makes the
    next create_run succeed on the server but raise on the way back."""

    def __init__(self) -> None:
        self.down = False
        self.lose_answer = False
        self.runs: dict[str, dict] = {}

    def _call(self) -> None:
        if self.down:
            raise Down("Connection refused")

    def create_run(self, experiment_id, run_name, tags):
        self._call()
        run_id = f"r{len(self.runs)}"
        self.runs[run_id] = {"tags": dict(tags), "params": [], "metrics": [], "status": "RUNNING"}
        if self.lose_answer:
            self.lose_answer = False
            raise Down("read timed out")
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id))

    def search_runs(self, experiment_ids, filter_string, max_results):
        self._call()
        log_id = filter_string.split("'")[1]
        return [
            SimpleNamespace(info=SimpleNamespace(run_id=k))
            for k, r in self.runs.items()
            if r["tags"].get("tuner.log_id") == log_id
        ]

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._call()
        run = self.runs[run_id]
        run["params"] += params
        for m in metrics:  # MLflow keeps one row per (key, timestamp, step, value)
            if m not in run["metrics"]:
                run["metrics"].append(m)
        run["tags"].update({t.key: t.value for t in tags})

    def set_terminated(self, run_id, status):
        self._call()
        self.runs[run_id]["status"] = status

    def set_tag(self, run_id, key, value):
        self._call()
        self.runs[run_id]["tags"][key] = value

    def get_run(self, run_id):
        self._call()
        run = self.runs[run_id]
        params = {p.key: p.value for p in run["params"]}
        return SimpleNamespace(
            info=SimpleNamespace(status=run["status"]), data=SimpleNamespace(params=params)
        )


@pytest.fixture
def client(monkeypatch) -> FakeClient:
    monkeypatch.setattr(retry.clock, "sleep", lambda s: None)
    return FakeClient()


def trial_run(client: FakeClient, flush_seconds: float = 0.0) -> TrialRun:
    """A trial's run; these outage scenarios send every epoch at once (``flush_seconds=0``)."""
    tracker = Tracker.__new__(Tracker)
    tracker.client = client
    run = TrialRun(tracker, "1", "parent", "s", 7, {"units": 8}, {"tuner.cudnn_eligible": "true"})
    run.flush_seconds = flush_seconds
    return run


class Calls(FakeClient):
    """Counts the calls that carried metrics, and names every call."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0
        self.calls: list[str] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        assert len(metrics) + len(params) + len(tags) <= 1000 and len(params) <= 100  # MLflow's
        self.batches += bool(metrics)
        self.calls.append("log_batch")
        super().log_batch(run_id, metrics, params, tags)

    def set_terminated(self, run_id, status):
        self.calls.append("set_terminated")
        super().set_terminated(run_id, status)


def test_epoch_points_are_sent_in_batches_and_all_of_them_at_the_end(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(retry.clock, "monotonic", lambda: clock[0])
    client = Calls()
    run = trial_run(client, flush_seconds=5.0)
    assert client.calls == [] and run.run_id == "r0", "created; the parameters wait for points"
    for epoch in range(10):  # one epoch a second
        clock[0] += 1.0
        run.log_epoch(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0})
    assert client.batches == 2, "sent at the 5th and the 10th second, not at every epoch"
    clock[0] += 1.0
    run.log_epoch(10, {"loss": 0.01, "val_loss": 2.0})
    assert run.unrecorded() == ["2 metric points"], "kept, not lost, until the next flush"
    client.calls.clear()
    assert run.end("COMPLETE", {"best_loss": 0.01}) == []
    assert client.calls == ["log_batch", "set_terminated"], "the end's tags ride with its points"
    [stored] = client.runs.values()
    assert [m.step for m in stored["metrics"] if m.key == "loss"] == list(range(11))
    assert stored["status"] == "FINISHED" and stored["tags"]["optuna.state"] == "COMPLETE"
    assert [p.key for p in stored["params"]] == ["units"], "sent once, with the first points"


def test_a_long_curve_is_sent_within_mlflows_batch_limits() -> None:
    client = Calls()
    run = trial_run(client)
    run.flush_seconds = 1e9  # nothing sent before the end
    for epoch in range(600):
        run.log_epoch(epoch, {"loss": 1.0, "val_loss": 2.0})
    assert run.end("COMPLETE", {}) == []
    [stored] = client.runs.values()
    assert len(stored["metrics"]) == 1200 and client.batches == 2
    assert stored["tags"]["optuna.state"] == "COMPLETE"


def test_an_outage_mid_trial_is_caught_up_with_nothing_lost_or_doubled(client, caplog) -> None:
    run = trial_run(client)
    run.log_epoch(0, {"loss": 1.0})
    client.down = True
    run.log_epoch(1, {"loss": 0.5})
    run._next_try = 0  # the backoff has passed
    run.log_epoch(2, {"loss": 0.25})
    assert run.unrecorded() == ["2 metric points"]
    client.down, run._next_try = False, 0
    assert run.end("COMPLETE", {"best_loss": 0.25}) == []
    [stored] = client.runs.values()
    assert [(m.key, m.step) for m in stored["metrics"]] == [
        ("loss", 0),
        ("loss", 1),
        ("loss", 2),
        ("best_loss", 0),
    ]
    assert stored["status"] == "FINISHED" and stored["tags"]["optuna.state"] == "COMPLETE"
    err = caplog.text
    assert err.count("MLflow did not answer for trial 7") == 1 and "caught up" in err


def test_a_run_created_while_the_answer_was_lost_is_found_not_duplicated(client) -> None:
    client.lose_answer = True
    run = trial_run(client)
    assert run.run_id is None and len(client.runs) == 1
    run._next_try = 0
    run.log_epoch(0, {"loss": 1.0})
    assert run.run_id == "r0" and len(client.runs) == 1, "found by its tuner.log_id tag"
    assert client.runs["r0"]["params"][0].key == "units"


def test_a_server_down_past_the_bound_leaves_a_list_of_what_is_missing(client, caplog) -> None:
    client.down = True
    run = trial_run(client)
    run.log_epoch(0, {"loss": 1.0})
    assert run.end("PRUNED", {}, "pruned at epoch 0", seconds=0.0) == ["the run (MLflow was down)"]
    assert client.runs == {}
    assert "MLflow is still down; trial 7's run is missing the run" in caplog.text


def test_a_run_killed_before_its_first_batch_gets_its_parameters_when_closed(client) -> None:
    """The parameters ride with the first batch of points: a worker killed before it leaves a
    run without them, until the worker that finds the trial stale closes the run."""
    run = trial_run(client, flush_seconds=60.0)
    run.log_epoch(0, {"loss": 1.0})  # held: the first batch is not due yet
    assert client.runs["r0"]["params"] == []
    study = SimpleNamespace(study_name="s", user_attrs={})
    trial = SimpleNamespace(number=7, params={"units": 8}, user_attrs={"mlflow_run_id": "r0"})
    for _ in range(2):  # a second sweep sends nothing again
        run.tracker.kill_trial_run(study, trial, "its worker stopped answering")
    assert [(p.key, p.value) for p in client.runs["r0"]["params"]] == [("units", "8")]
    assert client.runs["r0"]["status"] == "KILLED"
    assert client.runs["r0"]["tags"]["optuna.state"] == "FAIL"


@pytest.mark.parametrize(
    "objective, direction, test_metric",
    [
        ("val_mae_original", "minimize", "test_mae_original"),
        ("val_accuracy", "maximize", "test_accuracy"),
    ],
)
def test_the_trials_view_sorts_best_first_and_shows_what_is_compared(
    objective: str, direction: str, test_metric: str
) -> None:
    from tuner.tracking import trials_view

    view = trials_view(objective, direction)
    assert view["orderByKey"] == f"metrics.`best_{objective}`"
    assert view["orderByAsc"] is (direction == "minimize"), "the best trial on the first row"
    assert view["selectedColumns"] == [
        f"metrics.`best_{objective}`",
        f"metrics.`{test_metric}`",
        "metrics.`epochs_run`",
        "metrics.`params`",
        "attributes.`Duration`",
    ]


class Artifacts:
    """Records what a study's close uploads."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def log_text(self, run_id, text, path):
        self.paths.append(path)

    def log_figure(self, run_id, figure, path):
        self.paths.append(path)

    def list_artifacts(self, run_id, path):
        return []


@pytest.mark.parametrize("state", ["FAIL", "PRUNED"])
@pytest.mark.parametrize("reported", [False, True])
def test_a_study_without_a_complete_trial_draws_no_empty_plot(
    monkeypatch, caplog, reported: bool, state: str
) -> None:
    """A new user's double Ctrl-C: the close drew every plot of a study with no complete trial,
    and Optuna warned of each empty one on the terminal."""
    import logging

    import optuna

    monkeypatch.setenv("TUNER_PLOTS", "1")
    study = optuna.create_study()
    trial = study.ask()
    if reported:
        trial.report(0.5, 0)
    study.tell(trial, state=optuna.trial.TrialState[state])
    tracker = Tracker.__new__(Tracker)
    tracker.client = client = Artifacts()
    optuna.logging.enable_propagation()  # Optuna's warnings reach caplog
    try:
        with caplog.at_level(logging.WARNING):
            tracker._log_plots("parent", study)
    finally:
        optuna.logging.disable_propagation()
    expected = ["plots/intermediate_values.html", "plots/intermediate_values.png"]
    drawn = reported and state == "PRUNED"  # Optuna draws no failed trial's values
    assert client.paths == ["trials.csv", *(expected if drawn else [])]
    warned = [r for r in caplog.records if r.name.startswith("optuna") and r.levelno >= 30]
    assert not warned, caplog.text
