"""Several objectives (issue 13): a list ``objective`` weighs the first (a validation score)
against the model's size and its prediction time; the Pareto front in ``tuner best``, MLflow and
``tuner export``; pruning reads the first objective only."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from tuner import study as studies
from tuner.errors import InputError
from tuner.space import parse_space
from tuner.strategies import FirstObjective

TWO = {"objective": ["val_mae_original", "params", "latency_ms"]}


def test_a_list_objective_is_the_first_then_its_costs() -> None:
    space = parse_space(TWO, source="s.yaml")
    assert space.objective == "val_mae_original" and space.direction == "minimize"
    assert space.objectives == ("val_mae_original", "params", "latency_ms")
    assert space.directions == ["minimize", "minimize", "minimize"]
    one = parse_space({"task": "classify", "objective": ["val_accuracy", "params"]}, source="s")
    assert one.directions == ["maximize", "minimize"]
    assert parse_space({}, source="s").objectives == ("val_mae_original",)


@pytest.mark.parametrize(
    "raw, says",
    [
        ({"objective": ["val_mae_original"]}, "the objective first, then"),
        ({"objective": ["val_mae_original", "size"]}, "got 'size'"),
        ({"objective": ["val_mae_original", "params", "params"]}, "once each"),
        ({"objective": ["params", "val_mae_original"]}, "params comes after it"),
        ({**TWO, "sampler": "cmaes"}, "cmaes does not take several objectives"),
        ({**TWO, "pruner": "hyperband"}, "hyperband does not take several objectives"),
        (
            {**TWO, "pruner": {"name": "patient", "patience": 2, "wrapped": "hyperband"}},
            "hyperband does not take several objectives",
        ),
    ],
)
def test_a_list_objective_is_checked_in_one_line(raw, says: str) -> None:
    with pytest.raises(InputError, match=says) as e:
        parse_space(raw, source="s.yaml")
    assert e.value.field in ("objective", "sampler", "pruner") and "\n" not in str(e.value)


def _study(directions: list[str]) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.set_metric_names(["val_mae_original", "params"][: len(directions)])
    return study


def _done(study: optuna.Study, number: int, values: list[float], curve=()) -> None:
    study.add_trial(
        create_trial(
            values=values,
            params={"units": 8 * (number + 1)},
            distributions={"units": IntDistribution(1, 512)},
            intermediate_values=dict(enumerate(curve)),
        )
    )


def test_the_best_trial_and_the_pareto_front_of_several_objectives() -> None:
    study = _study(["minimize", "minimize"])
    for i, values in enumerate([[0.5, 100], [0.3, 900], [0.6, 50], [0.7, 950]]):
        _done(study, i, values)
    assert studies.best_trial(study).number == 1, "the best first objective"
    assert studies.value(studies.best_trial(study)) == 0.3
    front = studies.pareto_front(study)
    assert [row["trial"] for row in front] == [1, 0, 2], "trial 3 is beaten on both"
    assert front[0] == {
        "trial": 1,
        "values": {"val_mae_original": 0.3, "params": 900},
        "params": {"units": 16},
    }
    single = _study(["minimize"])
    _done(single, 0, [0.4])
    assert studies.pareto_front(single) == [] and studies.value(studies.best_trial(single)) == 0.4


def test_dominance_reads_each_objective_s_direction() -> None:
    from tuner.outcome import dominates

    both = ["minimize", "minimize"]
    assert dominates([1, 2], [1, 3], both) and not dominates([1, 3], [1, 3], both)
    assert not dominates([0, 4], [1, 3], both) and not dominates([1, 3], [0, 4], both)
    assert dominates([0.9, 10], [0.8, 10], ["maximize", "minimize"])


def test_pruning_reads_the_first_objective_of_several() -> None:
    """Optuna's trials cannot report with several objectives, nor its pruners read a direction:
    the worker stores each epoch's first objective, and the pruner sees the first direction."""
    study = _study(["minimize", "minimize"])
    for i in range(3):
        _done(study, i, [0.1, 10], curve=[1.0, 0.5, 0.2])
    trial = study.ask()
    for epoch, value in enumerate([1.5, 1.2, 1.1]):  # worse than every finished curve
        study._storage.set_trial_intermediate_value(trial._trial_id, epoch, value)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    with pytest.raises(RuntimeError):
        _ = study.direction  # what the pruner would read without the view
    frozen = study._storage.get_trial(trial._trial_id)
    assert bool(pruner.prune(FirstObjective(study), frozen)) is True  # type: ignore[arg-type]
    good = study.ask()
    for epoch, value in enumerate([0.9, 0.4, 0.1]):
        study._storage.set_trial_intermediate_value(good._trial_id, epoch, value)
    frozen = study._storage.get_trial(good._trial_id)
    assert bool(pruner.prune(FirstObjective(study), frozen)) is False  # type: ignore[arg-type]
    assert study.get_trials(states=(TrialState.RUNNING,))[0].intermediate_values[2] == 1.1


@pytest.mark.slow
def test_a_two_objective_study_shows_its_pareto_front(space_file, co2_csv, capsys, plots) -> None:
    import pandas as pd
    from conftest import CO2_OPTIONS
    from mlflow import MlflowClient

    from tuner.cli import main
    from tuner.storage import embedded

    space = space_file("""
task: forecast
objective: [val_mae_original, params, latency_ms]
epochs: 2
sampler: random
pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 0}  # the third trial is asked
params:
  units: [4, 32]
  window: 8
start_with:
  - {units: 32}
  - {units: 4}
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s"]
    assert main([*argv, "--trials", "3"]) == 0
    assert "pareto front (val_mae_original, params, latency_ms): trials" in capsys.readouterr().out
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.metric_names == ["val_mae_original", "params", "latency_ms"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) >= 2, [(t.state.name, t.user_attrs.get("reason")) for t in study.trials]
    for t in done:
        assert t.values[1] == t.user_attrs["params"] and t.values[2] > 0
    capsys.readouterr()
    assert main(["best", "--study", "s", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    front = best["pareto"]
    assert front and list(front[0]["values"]) == ["val_mae_original", "params", "latency_ms"]
    assert best["trial"] == front[0]["trial"], "the best first objective leads the front"
    for row in front:  # every front trial keeps its model: predict with any of them
        assert "model_uri" in study.trials[row["trial"]].user_attrs, row
    last = co2_csv.parent / "front.csv"
    data = ["--data", str(co2_csv), "-o", str(last)]
    assert main(["predict", "--study", "s", "--trial", str(front[-1]["trial"]), *data]) == 0
    assert main(["best", "--study", "s"]) == 0
    assert "pareto front" in capsys.readouterr().out

    out = co2_csv.parent / "trials.csv"
    assert main(["export", "--study", "s", "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert {"values_val_mae_original", "values_params", "values_latency_ms"} <= set(table.columns)
    assert sorted(table.loc[table["pareto"], "number"]) == sorted(r["trial"] for r in front)

    client = MlflowClient(tracking)
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert "pareto.csv" in {a.path for a in client.list_artifacts(parent)}
    assert "plots/pareto_front.html" in {a.path for a in client.list_artifacts(parent, "plots")}
