"""The tag task (a target per time step): reading labels and values, their refusals, the
TimeDistributed head, the per-step baselines, and one real study of each kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import best_plots, to_numpy

from tuner import samples
from tuner.config import TrialConfig
from tuner.data import DataOptions, Steps, load
from tuner.errors import InputError
from tuner.space import parse_space


def npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    path = tmp_path / "steps.npz"
    np.savez(path, X=x, y=y)
    return path


def long_table(tmp_path: Path, x: np.ndarray, y: np.ndarray, name: str = "level") -> Path:
    n, t, _ = x.shape
    rows = pd.DataFrame(
        {
            "id": np.repeat([f"s{i}" for i in range(n)], t),
            "t": np.tile(np.arange(t), n),
            "reading": x[:, :, 0].reshape(-1),
            "change": x[:, :, 1].reshape(-1),
            name: y.reshape(-1),
        }
    )
    path = tmp_path / "steps.csv"
    rows.sample(frac=1.0, random_state=0).to_csv(path, index=False)  # any row order
    return path


def test_labels_per_step_from_an_npz(tmp_path: Path) -> None:
    x, y = samples.regimes(60, 20)
    steps = load(DataOptions(path=str(npz(tmp_path, x, y)), task="tag"), 1)
    assert isinstance(steps, Steps) and steps.labels and steps.metric == "accuracy"
    assert steps.classes == ["high", "low", "mid"] and steps.n_outputs == 3
    assert steps.y.shape == (60, 20) and steps.default_window == 20
    a = steps.for_config(TrialConfig(window=8))
    assert a.x_train.shape[1:] == (8, 2) and a.y_train.shape[1] == 8
    assert np.array_equal(a.y_val, steps.y[steps.splits[1], -8:]), "the last window steps"


def test_values_per_step_are_standardized_on_train(tmp_path: Path) -> None:
    x, y = samples.levels(60, 20)
    steps = load(DataOptions(path=str(npz(tmp_path, x, 10 + 5 * y)), task="tag"), 1)
    assert not steps.labels and steps.metric == "mae_original" and steps.n_outputs == 1
    a = steps.for_config(TrialConfig(window=20, scaler="minmax"))
    assert abs(float(a.y_train.mean())) < 1e-5 and abs(float(a.y_train.std()) - 1) < 1e-4
    assert steps.output_scale(a) is not None
    assert np.allclose(steps.output_scale(a), (10 + 5 * y)[steps.splits[0]].std())


def test_a_long_table_reads_by_id_in_time_order(tmp_path: Path) -> None:
    x, y = samples.levels(30, 12)
    options = DataOptions(
        path=str(long_table(tmp_path, x, y)), task="tag", id="id", time="t", target=("level",)
    )
    steps = load(options, 1)
    assert steps.targets == ["level"] and steps.x.shape == (30, 12, 2)
    # the rows are shuffled in the file: each sequence comes back whole, in time order
    s0 = pd.read_csv(options.path).query("id == 's0'").sort_values("t")
    k = [i for i, row in enumerate(steps.x) if np.allclose(row[:, 0], s0["reading"])]
    assert len(k) == 1 and np.allclose(steps.y[k[0], :, 0], s0["level"])


def test_text_labels_in_a_long_table(tmp_path: Path) -> None:
    x, y = samples.regimes(30, 12)
    options = DataOptions(
        path=str(long_table(tmp_path, x, y, name="regime")),
        task="tag",
        id="id",
        time="t",
        target=("regime",),
    )
    steps = load(options, 1)
    assert steps.labels and steps.classes == ["high", "low", "mid"]
    assert steps.y.shape == (30, 12) and steps.y.dtype.kind == "i"


@pytest.mark.parametrize(
    "x, y, says",
    [
        (np.zeros((20, 5, 1)), np.zeros((20, 4)), "first two axes"),
        (np.zeros((20, 5, 1)), np.zeros((20, 5, 2), "int64"), "one per step"),
        (np.zeros((20, 5, 1)), np.full((20, 5), np.nan), "not finite"),
        (np.zeros((20, 5, 1)), np.ones((20, 5), "int64"), "at least 2 classes"),
        (np.zeros((2, 5, 1)), np.arange(10).reshape(2, 5), "too few to split"),
    ],
)
def test_bad_per_step_arrays_are_refused(tmp_path: Path, x, y, says: str) -> None:
    with pytest.raises(InputError, match=says) as e:
        load(DataOptions(path=str(npz(tmp_path, x, y)), task="tag"), 1)
    assert "\n" not in str(e.value)


def test_several_targets_must_be_values(tmp_path: Path) -> None:
    x, y = samples.regimes(10, 6)
    path = long_table(tmp_path, x, y, name="regime")
    pd.read_csv(path).assign(other=1.5).to_csv(path, index=False)
    options = DataOptions(path=str(path), task="tag", id="id", target=("regime", "other"))
    with pytest.raises(InputError, match="labels .* are one column") as e:
        load(options, 1)
    assert e.value.field == "regime"


def test_the_objective_must_fit_the_targets(tmp_path: Path) -> None:
    from tuner.launch import check_objective

    x, y = samples.levels(30, 8)
    steps = load(DataOptions(path=str(npz(tmp_path, x, y)), task="tag"), 1)
    space = parse_space({"task": "tag", "objective": "val_accuracy"}, source="tag.yaml")
    with pytest.raises(InputError, match="targets are values") as e:
        check_objective(space, steps)
    assert e.value.field == "objective" and e.value.source == "tag.yaml"
    check_objective(parse_space({"task": "tag"}, source="tag.yaml"), steps)  # val_loss: fine
    losses = parse_space({"task": "tag", "params": {"loss": ["mse", "huber"]}}, source="tag.yaml")
    with pytest.raises(InputError, match="val_loss is not comparable across trials when loss"):
        check_objective(losses, steps)


def test_pooling_and_convolutions_do_not_apply_to_tag() -> None:
    for name, value in (("pooling", "mean"), ("frontend", "conv"), ("residual", "last")):
        with pytest.raises(InputError, match="does not apply to task 'tag'"):
            parse_space({"task": "tag", "params": {name: value}}, source="s.yaml")


def test_per_step_baselines_and_what_context_adds(tmp_path: Path) -> None:
    from tuner.baselines import compute

    x, y = samples.regimes(200, 40)
    b = compute(load(DataOptions(path=str(npz(tmp_path, x, y)), task="tag"), 1), 1)
    assert b["metric"] == "accuracy" and b["best"] == "per_step"
    assert b["scores"]["per_step"]["test_accuracy"] > b["scores"]["majority"]["test_accuracy"]
    x, y = samples.levels(200, 40)
    b = compute(load(DataOptions(path=str(npz(tmp_path, x, y)), task="tag"), 1), 1)
    assert b["metric"] == "mae_original" and set(b["scores"]) == {"mean", "per_step"}
    assert b["scores"]["per_step"]["val_mae_original"] < b["scores"]["mean"]["val_mae_original"]


@pytest.mark.parametrize("regression", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_layer_returns_sequences_into_a_time_distributed_head(
    regression: bool, bidirectional: bool
) -> None:
    keras = pytest.importorskip("keras")
    from tuner.model import build_model

    config = TrialConfig(layers=2, units=(8, 4), bidirectional=bidirectional)
    model = build_model(config, "tag", (9, 2), 3, regression=regression)
    out = to_numpy(model(np.random.default_rng(0).normal(size=(4, 9, 2)).astype("float32")))
    assert out.shape == (4, 9, 3)
    head = model.get_layer("head")
    assert isinstance(head, keras.layers.TimeDistributed)
    assert head.layer.activation.__name__ == ("linear" if regression else "softmax")
    if not regression:
        assert np.allclose(out.sum(axis=2), 1.0, atol=1e-5)


@pytest.mark.slow
def test_a_labelling_study_runs_and_predicts_every_step(space_file, tmp_path: Path) -> None:
    import optuna

    from tuner.check import check
    from tuner.cli import main
    from tuner.storage import embedded
    from tuner.tracking import Tracker

    x, y = samples.regimes(80, 16)
    data = npz(tmp_path, x, y)
    space = space_file("""
task: tag
objective: val_accuracy
epochs: 2
sampler: random
pruner: none
params:
  units: 8
  bidirectional: [false, true]
  batch_size: 16
  learning_rate: 0.01
""")
    assert (
        main(["run", str(space), "--data", str(data), "--study", "s", "--trials", "2", "-q"]) == 0
    )
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    assert 0 <= study.best_trial.user_attrs["test_accuracy"] <= 1
    assert check(study, Tracker(tracking)).ok
    assert "best_confusion_matrix.png" in best_plots(study, tracking), "of the test steps"
    out_file = tmp_path / "p.csv"
    assert main(["predict", "--study", "s", "--data", str(data), "-o", str(out_file)]) == 0
    out = pd.read_csv(out_file)
    assert list(out.columns) == [
        "sequence",
        "step",
        "predicted",
        "p_high",
        "p_low",
        "p_mid",
        "actual",
        "split",
    ]
    assert len(out) == 80 * 16 and set(out["predicted"]) <= {"low", "mid", "high"}
    assert (out["actual"].to_numpy() == y.reshape(-1)).all()
    test = out[out["split"] == "test"]  # the study's own split: its test accuracy, per step
    accuracy = (test["predicted"] == test["actual"]).mean()
    assert accuracy == pytest.approx(study.best_trial.user_attrs["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_a_regression_study_on_a_long_table_predicts_in_the_target_s_units(
    space_file, tmp_path: Path
) -> None:
    import optuna

    from tuner.cli import main
    from tuner.storage import embedded

    x, y = samples.levels(60, 10)
    data = long_table(tmp_path, x, 100 + 10 * y)
    space = space_file("""
task: tag
objective: val_mae_original
epochs: 3
sampler: random
pruner: none
params:
  units: 8
  batch_size: 8
  learning_rate: 0.01
""")
    argv = ["run", str(space), "--data", str(data), "--id", "id", "--time", "t"]
    assert main([*argv, "--target", "level", "--study", "s", "--trials", "1", "-q"]) == 0
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.best_trial.user_attrs["test_mae_original"] < 20
    assert "best_predictions.png" in best_plots(study, tracking), "values per step"
    out_file = tmp_path / "p.csv"
    assert main(["predict", "--study", "s", "--data", str(data), "-o", str(out_file)]) == 0
    out = pd.read_csv(out_file)
    assert list(out.columns) == ["sequence", "t", "level_pred", "level_actual", "split"]
    test = out[out["split"] == "test"]
    mae = (test["level_pred"] - test["level_actual"]).abs().mean()
    assert mae == pytest.approx(study.best_trial.user_attrs["test_mae_original"], rel=1e-4)
    assert len(out) == 600 and out["t"].tolist()[:10] == list(range(10))
    assert out["level_pred"].between(60, 140).all(), "in the target's units, not standardized"
    assert (out["level_pred"] - out["level_actual"]).abs().mean() < 20


def test_the_shipped_tag_space_loads_with_its_textbook_start() -> None:
    from tuner.space import load_space

    space = load_space(Path(__file__).parents[1] / "search_spaces" / "tag.yaml")
    assert space.task == "tag" and space.objective == "val_loss"
    assert space.start_with[0]["layers"] == 2 and space.start_with[0]["units"] == 128
