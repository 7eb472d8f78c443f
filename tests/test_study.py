"""Studies: spec on the study, resume rules, samplers and pruners by name, trial counts."""

from __future__ import annotations

import optuna
import pytest

from tuner import records, strategies
from tuner import study as studies
from tuner.errors import InputError
from tuner.records import StudySpec
from tuner.space import parse_space
from tuner.storage import make_storage

RAW = {
    "params": {"layers": {"low": 1, "high": 2}, "units": {"low": 8, "high": 32}},
    "start_with": [{"layers": 1, "units": 16}],
}


def spec(raw=RAW, fingerprint="sha256:aa"):
    return StudySpec(space=raw, data={"file": "d.csv"}, fingerprint=fingerprint, max_epochs=None)


@pytest.fixture
def storage(storage_url):
    return make_storage(storage_url, heartbeat=False)


@pytest.mark.parametrize("name", list(strategies.SAMPLERS))
def test_every_sampler_by_name(name: str) -> None:
    raw = {
        "sampler": name,
        "params": {"layers": {"low": 1, "high": 2}, "optimizer": ["adam", "sgd"]},
    }
    needs = {"gp": ("torch", "the gp sampler needs PyTorch"), "cmaes": ("cmaes", "needs the cmaes")}
    if name in needs and not __import__("importlib.util").util.find_spec(needs[name][0]):
        # refused when the space is loaded: a worker once crashed at its first trial
        with pytest.raises(InputError, match=needs[name][1]):
            parse_space(raw, source="s.yaml")
        return
    space = parse_space(raw, source="s.yaml")
    assert isinstance(space.make_sampler(), optuna.samplers.BaseSampler)


@pytest.mark.parametrize(
    "conf, cls",
    [
        ("median", optuna.pruners.MedianPruner),
        ({"name": "percentile", "percentile": 25.0}, optuna.pruners.PercentilePruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ({"name": "patient", "patience": 2, "wrapped": "median"}, optuna.pruners.PatientPruner),
        ({"name": "threshold", "upper": 1.0}, optuna.pruners.ThresholdPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_every_pruner_by_name(conf, cls) -> None:
    space = parse_space({"pruner": conf}, source="s.yaml")
    assert isinstance(space.make_pruner(), cls)


def test_hyperband_s_brackets_fit_the_epoch_cap() -> None:
    """``--max-epochs 15`` on a 30-epoch space: brackets sized for 30 would never reach their
    last rungs."""
    space = parse_space({"epochs": 30, "pruner": "hyperband"}, source="s.yaml")
    assert space.make_pruner()._max_resource == 30
    assert space.make_pruner(15)._max_resource == 15
    assert space.make_pruner(60)._max_resource == 30


@pytest.mark.parametrize(
    "conf",
    [
        {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 4},
        {"name": "percentile", "percentile": 50.0, "n_startup_trials": 2},
        {
            "name": "patient",
            "patience": 0,
            "wrapped": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
        },
        {"name": "threshold", "upper": 1.0},
        {"name": "none"},
    ],
)
def test_the_worker_skips_asking_only_where_the_pruner_could_not_prune(conf) -> None:
    """Against the real pruner: a trial far worse than every finished one is not pruned before
    ``prunes_from`` (so skipping the question changes nothing), and is pruned there. Pruners
    without a warm-up (successive halving, hyperband) are asked from the first epoch (0)."""
    space = parse_space({"pruner": conf}, source="s.yaml")
    study = optuna.create_study(pruner=space.make_pruner())
    for _ in range(3):
        done = study.ask()
        for step in range(8):
            done.report(0.1, step)
        study.tell(done, 0.1)
    trial = study.ask()
    verdicts = []
    for step in range(8):
        trial.report(100.0 + step, step)
        verdicts.append(trial.should_prune())
    first = strategies.prunes_from(space.pruner)
    if first is None:
        assert not any(verdicts)
    else:
        assert not any(verdicts[:first]) and verdicts[first], verdicts


def test_worker_processes_draw_different_random_streams() -> None:
    space = parse_space({"params": {"learning_rate": {"low": 1e-6, "high": 1.0}}}, source="s.yaml")

    def first_draw(sampler) -> float:
        study = optuna.create_study(sampler=sampler)
        return study.ask().suggest_float("learning_rate", 1e-6, 1.0)

    assert first_draw(space.make_sampler()) == first_draw(space.make_sampler())
    assert first_draw(space.make_sampler(1)) != first_draw(space.make_sampler(2))
    qmc = parse_space({"sampler": "qmc"}, source="s.yaml")
    assert qmc.make_sampler(7)._seed == qmc.make_sampler()._seed


def test_a_worker_s_stream_is_random_not_its_process_id(monkeypatch) -> None:
    """Issue 10: ``seed + pid`` collided across containers (the same pid in each replica)."""
    import importlib
    import os

    monkeypatch.setattr(os, "getpid", lambda: 1)
    try:
        streams = {importlib.reload(strategies).SAMPLER_STREAM for _ in range(4)}
    finally:
        importlib.reload(strategies)
    assert len(streams) == 4
    space = parse_space({"seed": 5}, source="s.yaml")
    assert space.sampler_seed() == (5 + strategies.SAMPLER_STREAM) % 2**31
    assert parse_space({"seed": 5, "sampler": "qmc"}, source="s").sampler_seed() == 5


def test_unknown_pruner_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match="unknown pruner 'early'; valid: median, percentile"):
        parse_space({"pruner": "early"}, source="s.yaml")


def test_an_interrupted_trial_whose_retry_ran_is_not_counted_failed(storage) -> None:
    """A new user's Ctrl-C: the stopped trial stayed "failed" after its retry completed, and
    the progress line read "trials 4/3"."""
    from tuner import liveness

    study = optuna.create_study(study_name="c", storage=storage)
    stopped = study.ask()
    stopped.set_user_attr(records.REASON, "interrupted by SIGINT")
    stopped.set_user_attr(records.RUN_ID, "run-of-the-stopped-one")
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    liveness.requeue(study, stopped.number)
    retry = study.ask()  # WAITING: ask takes it first
    assert liveness.retried_trial_number(study.trials[retry.number]) == stopped.number
    # its original's attributes describe the original's run: an export showed the completed
    # retry "interrupted by SIGINT", and the waiting one with its original's MLflow run
    assert study.trials[retry.number].user_attrs == {}
    assert study.trials[retry.number].params == study.trials[stopped.number].params
    study.tell(retry, 1.0)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # its own error: failed
    c = studies.counts(study)
    assert (c["complete"], c["failed"], c["interrupted"], c["fail"]) == (1, 1, 1, 2)
    assert studies.failed_text(c) == "1 failed, 1 interrupted (queued again as a new trial)"


def test_create_stores_spec_and_enqueues_textbook_trials(storage) -> None:
    space = parse_space(RAW, source="s.yaml")
    study, created = studies.create_or_resume(storage, "s1", space, spec(), target=5)
    assert created
    assert study.user_attrs[records.SPEC] == spec().to_dict()
    assert study.user_attrs[records.TARGET] == 5
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"layers": 1, "units": 16}]
    assert studies.counts(study)["counted"] == 1

    again, created = studies.create_or_resume(storage, "s1", space, spec(), target=8)
    assert not created and again.user_attrs[records.TARGET] == 8
    assert len(again.get_trials()) == 1, "resuming does not enqueue the textbook trials again"
    loaded, stored = studies.load(storage, "s1")
    assert stored == spec() and isinstance(loaded.sampler, optuna.samplers.TPESampler)


def test_a_target_below_the_start_configurations_enqueues_only_the_first(storage) -> None:
    """``--trials 1`` on a space of three start configurations ran all three (a user asked for
    one trial); a resume with a larger target enqueues those left out, once."""
    raw = {**RAW, "start_with": [{"layers": 1, "units": u} for u in (16, 24, 32)]}
    space = parse_space(raw, source="s.yaml")

    def fixed(study: optuna.Study) -> list[int]:
        return [t.system_attrs["fixed_params"]["units"] for t in study.get_trials()]

    study, _ = studies.create_or_resume(storage, "s1", space, spec(raw), target=1)
    assert fixed(study) == [16]
    trial = study.ask()  # the first start configuration runs and finishes
    study.tell(trial, 0.5)
    again, _ = studies.create_or_resume(storage, "s1", space, spec(raw), target=2)
    assert fixed(again) == [16, 24]
    again, _ = studies.create_or_resume(storage, "s1", space, spec(raw), target=10)
    assert fixed(again) == [16, 24, 32]


def test_resume_refuses_other_data_or_space(storage) -> None:
    space = parse_space(RAW, source="s.yaml")
    studies.create_or_resume(storage, "s1", space, spec(), target=5)
    with pytest.raises(InputError, match="study 's1' exists with different data"):
        studies.create_or_resume(storage, "s1", space, spec(fingerprint="sha256:bb"), 5)
    other = {**RAW, "epochs": 3}
    with pytest.raises(InputError, match=r"different search space \(epochs: None then, 3 now\)"):
        studies.create_or_resume(storage, "s1", parse_space(other, source="s"), spec(other), 5)
    # a nested difference names its leaf
    other = {**RAW, "params": {**RAW["params"], "units": {"low": 8, "high": 64}}}
    with pytest.raises(InputError, match=r"\(params.units.high: 32 then, 64 now\);"):
        studies.create_or_resume(storage, "s1", parse_space(other, source="s"), spec(other), 5)
    moved = StudySpec(space=RAW, data={"file": "d.csv", "time": "t"}, fingerprint="sha256:aa")
    with pytest.raises(InputError, match=r"different data options \(time: None then, 't' now"):
        studies.create_or_resume(storage, "s1", space, moved, 5)
    # a new user's --horizon 2: its fingerprint differs too, and the options say what changed
    ahead = StudySpec(space=RAW, data={"file": "d.csv", "horizon": 2}, fingerprint="sha256:bb")
    with pytest.raises(InputError, match=r"different data options \(horizon: 1 then, 2 now\)"):
        studies.create_or_resume(storage, "s1", space, ahead, 5)
    # the same content under another name resumes
    renamed = StudySpec(space=RAW, data={"file": "copy.csv"}, fingerprint="sha256:aa")
    assert not studies.create_or_resume(storage, "s1", space, renamed, 5)[1]


def test_the_same_command_again_keeps_the_target_and_changes_are_noted(storage, caplog) -> None:
    """A new user's resume: without --trials the target fell back to the default (from 50 to
    20), a lower --trials lowered it, and a new --max-epochs went unsaid."""
    import logging

    space = parse_space(RAW, source="s.yaml")
    studies.create_or_resume(storage, "s1", space, spec(), target=50)
    again, _ = studies.create_or_resume(storage, "s1", space, spec(), target=None)
    assert again.user_attrs[records.TARGET] == 50
    fresh, created = studies.create_or_resume(storage, "s2", space, spec(), target=None)
    assert created and fresh.user_attrs[records.TARGET] == records.DEFAULT_TRIALS
    capped = StudySpec(space=RAW, data={"file": "d.csv"}, fingerprint="sha256:aa", max_epochs=5)
    with caplog.at_level(logging.INFO, logger="tuner"):
        studies.create_or_resume(storage, "s1", space, capped, target=8)
    assert [r.getMessage() for r in caplog.records if r.name == "tuner"] == [
        "note: the study's trial target goes down from 50 to 8",
        "note: trials now train up to 5 epochs (--max-epochs), the study's earlier ones up to "
        "the space's: they are ranked together",
    ]


def test_resume_may_change_sampler_and_pruner(storage) -> None:
    space = parse_space(RAW, source="s.yaml")
    studies.create_or_resume(storage, "s1", space, spec(), target=5)
    other = {**RAW, "sampler": "random", "pruner": "none"}
    study, created = studies.create_or_resume(
        storage, "s1", parse_space(other, source="s"), spec(other), 5
    )
    assert not created and isinstance(study.sampler, optuna.samplers.RandomSampler)
    assert isinstance(study.pruner, optuna.pruners.NopPruner)


def test_cli_lists_every_sampler_and_pruner() -> None:
    from tuner.cli import PRUNER_NAMES, SAMPLER_NAMES

    assert tuple(strategies.SAMPLERS) == SAMPLER_NAMES
    assert tuple(strategies.PRUNERS) == PRUNER_NAMES


def test_unknown_study_and_only_study(storage) -> None:
    with pytest.raises(InputError, match="no study in this storage yet"):
        studies.only_study_name(storage)
    studies.create_or_resume(storage, "s1", parse_space(RAW, source="s"), spec(), 2)
    assert studies.only_study_name(storage) == "s1"
    with pytest.raises(InputError, match=r"--study: no study 'nope' in this storage; studies: s1"):
        studies.load(storage, "nope")


def test_fingerprint_mismatch_is_refused() -> None:
    with pytest.raises(
        InputError, match=r"^d.csv: fingerprint: this data differs from the study's"
    ):
        studies.check_fingerprint(spec(), "sha256:bb", "d.csv")


def test_a_study_created_by_an_earlier_version_resumes(storage) -> None:
    """Options added since (``text``), the objective chosen for several targets (``val_nmae``)
    and checks added since (a parameter that can never apply) do not lock a study out."""
    old_data = {"file": "d.csv", "task": "forecast", "target": ["a", "b"], "features": None}
    old_space = {"params": {"units": {"low": 8, "high": 32}, "merge_mode": "sum"}}
    with pytest.raises(InputError, match="merge_mode applies only when bidirectional"):
        parse_space(old_space, source="s.yaml")
    space = parse_space(old_space, source="s", stored=True)
    old = StudySpec(space=old_space, data=old_data, fingerprint="sha256:aa", max_epochs=None)
    studies.create_or_resume(storage, "s1", space, old, target=5)
    now = {**old_space, "objective": "val_nmae"}
    data_now = {**old_data, "text": None, "horizon": 1, "nan": "fail"}
    new = StudySpec(space=now, data=data_now, fingerprint="sha256:aa", max_epochs=None)
    study, created = studies.create_or_resume(storage, "s1", space, new, target=5)
    assert not created
    assert study.user_attrs[records.SPEC]["space"] == old_space, "its objective kept"
    loaded, stored = studies.load(storage, "s1")
    assert stored.space == old_space
    with pytest.raises(InputError, match="different data options"):
        other = StudySpec(
            space=now, data={**data_now, "horizon": 2}, fingerprint="sha256:aa", max_epochs=None
        )
        studies.create_or_resume(storage, "s1", space, other, target=5)


def test_check_notes_a_study_stopped_before_its_mlflow_records(storage, tmp_path) -> None:
    """A new user's Ctrl-C seconds after `tuner run`: check failed ("no MLflow experiment or
    parent run") and --repair could not mend it, though the same command would."""
    from tuner.check import check
    from tuner.tracking import Tracker

    space = parse_space(RAW, source="s.yaml")
    study, _ = studies.create_or_resume(storage, "s1", space, spec(), target=2)
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")  # never reached
    report = check(study, tracker)
    assert report.ok and report.notes == [
        "not started: stopped before its MLflow records were made; the same `tuner run` command "
        "starts it"
    ]
    study.tell(study.ask(), 1.0)  # a trial ran: its records are missing, a problem
    assert check(study, tracker).problems == ["the study has no MLflow experiment or parent run"]


def test_export_writes_counts_and_integer_parameters_as_whole_numbers(tmp_path, capsys) -> None:
    """A new user's export: a conditional integer parameter (empty for some trials) and
    epochs_run came out as 32.0 and 3.0."""
    import pandas as pd
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from tuner.cli import main

    url = f"sqlite:///{tmp_path}/optuna.db"
    space = parse_space({"params": {"units": 8}}, source="s.yaml")
    study, _ = studies.create_or_resume(make_storage(url, heartbeat=False), "e", space, spec(), 3)
    frontend = CategoricalDistribution([False, True])
    for i, on in enumerate((True, False)):
        params, dists = {"frontend": on}, {"frontend": frontend}
        if on:
            params["conv_filters"], dists["conv_filters"] = 32, IntDistribution(8, 64)
        study.add_trial(
            optuna.trial.create_trial(
                value=float(i), params=params, distributions=dists, user_attrs={"epochs_run": 3}
            )
        )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    out = tmp_path / "trials.csv"
    assert main(["export", "--storage", url, "--study", "e", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    table = pd.read_csv(out)
    assert table["params_conv_filters"].tolist()[0] == 32 and ",32," in lines[1], lines
    assert ",3.0" not in lines[1] and table["user_attrs_epochs_run"].isna().tolist()[-1]
