"""`tuner run`'s progress (issue 14): the bar moves during the first trial, and where no bar
can be drawn, one line per finished trial. Scripted studies, no training."""

from __future__ import annotations

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import create_trial

from tuner import records
from tuner.processes import Progress


def study_with_a_running_trial() -> optuna.Study:
    study = optuna.create_study()
    study.set_user_attr(records.TARGET, 4)
    study.add_trial(
        create_trial(value=0.5, params={"u": 8}, distributions={"u": IntDistribution(1, 64)})
    )
    running = study.ask()
    running.set_user_attr(records.EPOCHS, 10)
    for epoch in range(4):
        study._storage.set_trial_intermediate_value(running._trial_id, epoch, 1.0)
    return study


def test_a_running_trial_counts_the_share_of_its_epochs() -> None:
    progress = Progress(study_with_a_running_trial(), quiet=True)  # no bar: the share alone
    assert progress._running_share() == 0.4


def test_without_a_terminal_each_finished_trial_is_a_line(capsys) -> None:
    study = study_with_a_running_trial()
    progress = Progress(study, quiet=False)  # pytest's stderr is not a terminal
    assert progress.lines and progress.bar is None
    progress.update()
    progress.update()  # nothing finished since: no second line
    study.tell(study.get_trials()[1].number, 0.25)
    progress.update()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "trials 1/4: complete=1 pruned=0 failed=0 best=0.5",
        "trials 2/4: complete=2 pruned=0 failed=0 best=0.25",
    ]


def test_a_budget_without_a_trial_target_counts_epochs_not_a_sentinel(capsys) -> None:

    study = study_with_a_running_trial()
    study.set_user_attr(records.TARGET, records.NO_TRIAL_TARGET)  # --budget-epochs alone
    study.set_user_attr(records.BUDGET, 20)
    Progress(study, quiet=False).update()
    running = study.get_trials()[1]
    assert capsys.readouterr().err.splitlines() == [
        # the running trial has reserved its 10 planned epochs
        "trials 1: complete=1 pruned=0 failed=0 best=0.5 epochs=10/20",
    ]
    assert running.state.name == "RUNNING"


def test_the_summary_says_why_a_resumed_run_ran_nothing() -> None:
    """A resume of a study whose budget was spent said "(4 run now)": it counted the trials of
    earlier runs, and gave no reason when it ran none."""
    from tuner.cli import _ran_now

    study = optuna.create_study()
    study.add_trial(
        create_trial(
            value=0.5,
            params={"u": 8},
            distributions={"u": IntDistribution(1, 64)},
            user_attrs={records.EPOCHS_RUN: 16},
        )
    )
    assert _ran_now(study, 2) == "2 run now"
    assert _ran_now(study, 0).endswith("reached its target; a larger --trials extends it")
    study.set_user_attr(records.BUDGET, 16)
    assert _ran_now(study, 0) == (
        "none run now: its budget of 16 epochs is spent; a larger --budget-epochs extends it"
    )
    study.set_user_attr(records.BUDGET, 17)  # one epoch left: the target is what stopped it
    assert "reached its target" in _ran_now(study, 0)


def test_the_lines_name_the_objective_and_the_error_they_compare() -> None:
    """A classifier's summary showed ``value=0.9776`` (its val_loss) beside baselines in
    accuracy, neither named."""
    from tuner.cli import _baseline_lines, _objective, _params_line
    from tuner.records import StudySpec

    study = optuna.create_study()
    spec = StudySpec(space={"task": "classify"}, data={"file": "d.npz"}, fingerprint="x")
    study.set_user_attr(records.SPEC, spec.to_dict())
    assert _objective(study) == "val_loss"
    spec = StudySpec(
        space={"objective": "val_mae_original"}, data={"file": "d.csv"}, fingerprint="x"
    )
    study.set_user_attr(records.SPEC, spec.to_dict())
    assert _objective(study) == "val_mae_original"
    report = {
        "metric": "accuracy",
        "baselines": {"majority": {"val_accuracy": 0.375, "test_accuracy": 0.25}},
        "skill": {"skill_val": 5.667},
    }
    lines = _baseline_lines(report)
    assert lines[0] == "baselines (validation / test accuracy): majority 0.375 / 0.25"
    assert lines[1].startswith("skill (trial error / best baseline's; error = 1 - accuracy;")
    report = {
        "metric": "mae_original",
        "season": 52,
        "baselines": {"naive": {"test_mae_original": 2.0}},
    }
    assert _baseline_lines(report) == ["baselines (validation / test MAE; season 52): naive 2"]
    # a count stored as a float shows every digit; other floats four significant ones
    assert _params_line({"params": 86771.0, "lr": 0.0031416, "acc": 1.0}) == (
        "params=86771 lr=0.003142 acc=1"
    )


def test_a_start_configuration_the_budget_left_unrun_is_not_a_failure() -> None:
    """A budget run said "2 complete, 1 failed": the third start configuration never ran."""
    from optuna.trial import TrialState

    from tuner import study as studies

    study = optuna.create_study()
    study.add_trial(
        create_trial(value=0.5, params={"u": 8}, distributions={"u": IntDistribution(1, 64)})
    )
    study.add_trial(create_trial(state=TrialState.FAIL))  # a real failure
    study.enqueue_trial({"u": 16})
    assert studies.fail_waiting(study, records.BUDGET_SPENT_REASON) == [2]
    c = studies.counts(study)
    assert (c["fail"], c["not_run"]) == (2, 1)
    assert studies.failed_text(c) == "1 failed, 1 not run (the budget was spent first)"
    assert studies.failed_text({**c, "failed": 1, "not_run": 0}) == "1 failed"
