"""Stateful forecasters: the batch layout that lets a state follow the series, the ordered
scoring pass, the refused combinations, and one real study through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import to_numpy

from tuner.config import TrialConfig
from tuner.data import DataOptions, Series, load
from tuner.errors import InputError
from tuner.space import parse_space


@pytest.fixture
def series(tmp_path: Path) -> Series:
    path = tmp_path / "s.csv"
    t = np.arange(500)
    pd.DataFrame({"t": t, "x": t * 1.0, "y": np.sin(t / 7)}).to_csv(path, index=False)
    # x is the row number on purpose (the layout checks read it), so it is named an input
    options = DataOptions(path=str(path), target=("y",), time="t", horizon=3, features=("x",))
    return load(options, 10)


def test_each_batch_continues_the_one_before_in_every_part(series: Series) -> None:
    s = series.stream("none", 10, 4)
    assert s.streams == 4 and s.x_train.shape[1:] == (10, 2)
    rows = s.x_train[:, :, 0]  # column x is the row number
    b = s.streams
    for i in range(len(rows) // b - 1):
        for j in range(b):
            assert rows[(i + 1) * b + j, 0] == rows[i * b + j, -1] + 1
    assert rows.max() + 3 < series.splits[0].stop, "every target inside the training split"
    # each step's target: the next three rows' y, step-major
    y = series.values[:, 1]
    first = int(rows[0, 0])
    np.testing.assert_allclose(s.y_train[0, 0], y[first + 1 : first + 4], atol=1e-6)
    assert s.x_all.shape == (50, 10, 2) and s.start == 0
    # scored: the origins of every target of validation and test, the targets windowed trials
    # of any length score (the first origin is the row before the split)
    assert s.val[0] == series.splits[1].start - 1 and s.test[-1] == 500 - 3 - 1
    ahead = s.y_all.reshape(-1, 3)
    for w in (5, 10):
        windowed = series.arrays("none", w)
        np.testing.assert_allclose(ahead[s.val - s.start], windowed.y_val, atol=1e-6)
        np.testing.assert_allclose(ahead[s.test - s.start], windowed.y_test, atol=1e-6)
    assert np.isnan(s.y_all.reshape(-1, 3)[-1]).all(), "the last row's targets lie past the end"


def test_fewer_parts_than_the_batch_when_the_split_is_short(series: Series) -> None:
    assert series.stream("none", 100, 64).streams == 3  # 347 usable rows hold 3 segments


@pytest.mark.parametrize(
    "params, says",
    [
        ({"stateful": True, "bidirectional": True}, "stateful applies only when bidirectional"),
        ({"stateful": True, "residual": "last"}, "residual applies only when stateful is false"),
        ({"stateful": True, "decoder": "seq2seq"}, "decoder applies only when stateful"),
        ({"stateful": True, "pooling": ["last", "mean"]}, "pooling applies only when"),
    ],
)
def test_what_cannot_be_stateful_is_refused(params, says: str) -> None:
    with pytest.raises(InputError, match=says):
        parse_space({"params": params}, source="s.yaml")
    with pytest.raises(InputError, match="does not apply to task 'classify'"):
        parse_space({"task": "classify", "params": {"stateful": True}}, source="s.yaml")


def test_a_stateful_draw_skips_what_does_not_apply() -> None:
    from optuna.trial import FixedTrial

    from tuner.sampling import sample

    space = parse_space(
        {"params": {"stateful": [False, True], "residual": ["none", "last"]}}, source="s"
    )
    config = sample(FixedTrial({"stateful": True}), space)
    assert config.stateful and config.residual == "none"


def test_the_stateful_model_carries_its_state_and_reads_every_step() -> None:
    pytest.importorskip("keras")
    from tuner.model import build_model
    from tuner.training import reset_states

    config = TrialConfig(layers=2, units=(6, 4), stateful=True)
    model = build_model(config, "forecast", (5, 2), 3, target_index=[1], batch=2)
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
    first = to_numpy(model(x))
    assert first.shape == (2, 5, 3)
    assert not np.allclose(to_numpy(model(x)), first), "the second batch starts from the state"
    reset_states(model)
    np.testing.assert_allclose(to_numpy(model(x)), first, atol=1e-6)


@pytest.mark.slow
def test_a_stateful_study_runs_and_predicts_in_order(space_file, co2_csv) -> None:
    import optuna
    from conftest import CO2_OPTIONS, best_plots

    from tuner.cli import main
    from tuner.predict import predict
    from tuner.storage import embedded

    space = space_file("""
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  stateful: true
  units: 8
  window: 8
  batch_size: 4
  learning_rate: 0.01
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--horizon", "2"]
    assert main([*argv, "--study", "s", "--trials", "1", "-q"]) == 0
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    trial = study.best_trial
    assert (
        trial.user_attrs["test_mae_original"] < 10 and "best_val_mae_original" in trial.user_attrs
    )
    assert "best_predictions.png" in best_plots(study, tracking), "read in order"
    out = predict(study, tracking, str(co2_csv))
    assert len(out) == (300 - 300 % 8) * 2, "a forecast at every row of whole segments"
    assert out["co2_pred"].between(300, 340).all()


def test_the_long_series_space_loads_with_its_textbook_starts() -> None:
    from tuner.space import load_space

    space = load_space(Path(__file__).parents[1] / "search_spaces" / "forecast_long.yaml")
    starts = space.start_with
    assert [s["stateful"] for s in starts] == [False, False, True, False, False]
    assert starts[1]["decoder"] == "seq2seq" and starts[2]["units"] == 64
