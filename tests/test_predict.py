"""Prediction with a saved model: unsafe files refused, windows and units as in training."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CO2_OPTIONS

from tuner import data, windowing
from tuner.errors import InputError
from tuner.predict import _classify, _forecast, load_model, predict, predict_with
from tuner.records import ModelCard


def tiny_lstm(window: int = 4, features: int = 2, outputs: int = 1):
    import keras

    inputs = keras.Input((window, features))
    return keras.Model(inputs, keras.layers.Dense(outputs)(keras.layers.LSTM(3)(inputs)))


def test_a_lambda_layer_is_refused_and_a_plain_model_loads(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((4, 2))
    doubled = keras.layers.Lambda(lambda x: x * 2, name="doubler")(keras.layers.LSTM(3)(inputs))
    unsafe = tmp_path / "unsafe.keras"
    keras.Model(inputs, doubled).save(unsafe)
    with pytest.raises(InputError) as e:
        load_model(unsafe)
    message = str(e.value)
    assert "\n" not in message and str(unsafe) in message and "Lambda layer" in message

    plain = tmp_path / "plain.keras"
    tiny_lstm().save(plain)
    model = load_model(plain)
    assert model.predict(np.zeros((2, 4, 2)), verbose=0).shape == (2, 1)


def test_pickles_and_other_formats_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Boom:  # unpickling this would create the marker file
        def __reduce__(self):
            return (Path.touch, (marker,))

    cases = {
        "model.pkl": pickle.dumps(Boom()),
        "model.keras": pickle.dumps(Boom()),  # a pickle renamed: not a zip
        "model.h5": b"\x89HDF\r\n\x1a\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match="not a Keras 3 .keras file") as e:
            load_model(path)
        assert str(path) in str(e.value)
    assert not marker.exists()
    with pytest.raises(InputError, match="no such model file"):
        load_model(tmp_path / "missing.keras")


def test_objects_from_outside_keras_are_refused(tmp_path: Path) -> None:
    """A crafted config naming another module (the Keras CVE-2025-1550 pattern)."""
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"layers": [{"module": "os", "class_name": "system", "config": {}}]},
    }
    path = tmp_path / "crafted.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", "{}")
    with pytest.raises(InputError, match="from module 'os'"):
        load_model(path)


def test_prediction_windows_are_the_training_windows_plus_the_last() -> None:
    values = np.arange(20, dtype=np.float64).reshape(10, 2)
    x_train, _ = windowing.windows(values, values[:, [1]], 3, 2)
    x_all, _ = windowing.windows(values, values[:, [1]], 3, 0)
    assert len(x_all) == 10 - 3 + 1
    np.testing.assert_array_equal(x_all[: len(x_train)], x_train)
    np.testing.assert_array_equal(x_all[-1], values[7:10])


def test_forecast_rows_align_with_time_and_original_units(tmp_path: Path) -> None:
    """A model that repeats the target's last input (no training): every prediction must equal
    the origin's value in original units, and the time columns must line up."""
    import keras

    window, horizon = 3, 2
    csv = tmp_path / "t.csv"
    frame = pd.DataFrame({"day": [f"d{i:02d}" for i in range(8)], "x": np.arange(8.0)})
    frame["y"] = 100 + 10 * frame["x"] ** 2
    frame.iloc[::-1].to_csv(csv, index=False)  # unsorted: the time column orders it
    inputs = keras.Input((window, 2))
    dense = keras.layers.Dense(horizon)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((window * 2, horizon))
    kernel[-1, :] = 1.0  # the last step's target column (y is column 1 of [x, y])
    dense.set_weights([kernel, np.zeros(horizon)])
    scaler = data.Scaler("standard", np.array([3.0, 200.0]), np.array([2.0, 50.0]))
    prep = ModelCard(
        "forecast", window, {}, {}, columns=["x", "y"], target_index=[1], horizon=horizon
    )
    options = data.DataOptions(path=str(csv), target=("y",), time="day", horizon=horizon)

    out = _forecast(model, prep, options, scaler)
    assert list(out.columns) == [
        "origin",
        "step",
        "day",
        "split",
        "y_pred",
        "y_actual",
        "y_interpolated",
    ]
    # 8 rows: train 0-5, val 6, test 7 (0.15 each, rounded); past the table: future
    assert out["split"].tolist()[:4] == ["train"] * 4 and out["split"].iloc[-1] == "future"
    assert not out["y_interpolated"].any()
    assert len(out) == (8 - window + 1) * horizon
    first, last = out.iloc[0], out.iloc[-1]
    assert (first["origin"], first["step"], first["day"]) == ("d02", 1, "d03")
    assert first["y_actual"] == 100 + 10 * 9
    assert (last["origin"], last["step"], last["day"]) == ("d07", 2, None)
    assert np.isnan(last["y_actual"])
    origin_value = out["origin"].str[1:].astype(int).map(lambda i: 100 + 10 * i**2)
    np.testing.assert_allclose(out["y_pred"], origin_value, rtol=1e-5)


def test_classify_gives_a_class_and_probabilities(tmp_path: Path, caplog) -> None:
    npz = tmp_path / "s.npz"
    np.savez(npz, X=np.random.default_rng(0).normal(size=(5, 6, 2)))  # no labels: fine
    scaler = data.Scaler("none", np.zeros(2), np.ones(2))
    options = data.DataOptions(path=str(npz), task="classify")
    for classes, outputs in ((["no", "yes"], 1), (["a", "b", "c"], 3)):
        import keras

        inputs = keras.Input((4, 2))
        head = keras.layers.Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax")
        model = keras.Model(inputs, head(keras.layers.LSTM(3)(inputs)))
        prep = ModelCard("classify", 4, {}, {}, classes=classes)
        with caplog.at_level("INFO", logger="tuner"):
            out = _classify(model, prep, options, scaler)
        assert "s.npz: sequences of 6 steps; the model reads the last 4 of each" in caplog.text
        assert list(out.columns) == ["sequence", "predicted", *[f"p_{c}" for c in classes]]
        probs = out[[f"p_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        assert set(out["predicted"]) <= set(classes)
    np.savez(npz, X=np.zeros((3, 6, 2)), y=np.array(["a", "d", "b"]))  # "d": not a class
    with caplog.at_level("INFO", logger="tuner"):
        out = _classify(model, prep, options, scaler)
    assert out["actual"].tolist() == ["a", "d", "b"]
    assert "labels the model never saw in training (it cannot predict them): 'd'" in caplog.text
    caplog.clear()  # whole-number labels stored as floats are the classes' integers
    np.savez(npz, X=np.zeros((3, 6, 2)), y=np.array([0.0, 1.0, 1.0]))
    with caplog.at_level("INFO", logger="tuner"):
        _classify(model, ModelCard("classify", 4, {}, {}, classes=[0, 1, 2]), options, scaler)
    assert "never saw" not in caplog.text
    # a tagger's data (a label per step): refused in one line, not pandas' ValueError
    np.savez(npz, X=np.random.default_rng(0).normal(size=(5, 6, 2)), y=np.zeros((5, 6)))
    with pytest.raises(InputError, match=r"y: labels of shape \(5, 6\): a classifier's are one"):
        _classify(model, prep, options, scaler)


def test_labelled_sequences_say_the_study_split_each_is_in(tmp_path: Path) -> None:
    """With labels (the study's own data), each row says its split, as training made it
    (stratified, seeded): the test rows' accuracy is the study's test accuracy."""
    import keras

    rng = np.random.default_rng(0)
    y = np.array(["a", "b"] * 20)
    npz = tmp_path / "s.npz"
    np.savez(npz, X=rng.normal(size=(40, 6, 1)), y=y)
    options = data.DataOptions(path=str(npz), task="classify")
    inputs = keras.Input((4, 1))
    model = keras.Model(
        inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.LSTM(2)(inputs))
    )
    scaler = data.Scaler("none", np.zeros(1), np.ones(1)).to_json()
    card = ModelCard("classify", 4, scaler, options.to_spec(), classes=["a", "b"])
    trained = data.load(options, max_window=4)
    out = predict_with(model, card, str(npz), "m", splits=trained.splits)
    for name, rows in zip(("train", "val", "test"), trained.splits, strict=True):
        assert (out.index[out["split"] == name] == rows).all()
    np.savez(npz, X=rng.normal(size=(40, 6, 1)), y=np.array(["a", "z"] * 20))  # other labels
    out = predict_with(model, card, str(npz), "m")  # not the study's data: no splits
    assert "split" not in out.columns and (out["actual"] == np.array(["a", "z"] * 20)).all()


@pytest.mark.slow
def test_predict_with_the_best_model_of_a_real_study(space_file, co2_csv, tmp_path) -> None:
    import optuna

    from tuner.cli import main
    from tuner.storage import embedded

    space = space_file("""
task: forecast
epochs: 2
seed: 1
sampler: {name: random}
pruner: none
params:
  units: {low: 4, high: 8}
  window: {low: 4, high: 8}
  batch_size: 32
  learning_rate: 0.01
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main([*argv, "--trials", "2"]) == 0
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)

    out = predict(study, tracking, str(co2_csv))
    window = study.best_trial.params["window"]
    assert len(out) == 300 - window + 1  # horizon 1: one row per window, the last one beyond
    assert list(out.columns) == [
        "origin",
        "step",
        "date",
        "split",
        "co2_pred",
        "co2_actual",
        "co2_interpolated",
    ]
    raw = pd.read_csv(co2_csv)
    empty = set(raw.loc[raw["co2"].isna(), "date"])  # filled in by --nan interpolate
    assert set(out.loc[out["co2_interpolated"], "date"]) == empty & set(out["date"])
    assert np.isfinite(out["co2_pred"]).all()
    assert out["co2_pred"].between(300, 340).all(), "in ppm, not in scaled units"
    known = out.dropna(subset=["co2_actual"])
    assert (known["co2_pred"] - known["co2_actual"]).abs().mean() < 10
    # the step past the table: a week after the last origin, in the future split
    assert out["origin"].iloc[-1] == "1963-12-21" and out["date"].iloc[-1] == "1963-12-28"
    assert out["split"].iloc[-1] == "future"
    assert set(out["split"]) == {"train", "val", "test", "future"}, "the study's own data"
    # another table (the first 200 weeks): its rows are in no split of the study
    other = tmp_path / "other.csv"
    raw.iloc[:200].to_csv(other, index=False)
    out = predict(study, tracking, str(other))
    assert out["split"].iloc[-1] == "future" and out["split"].iloc[:-1].isna().all()

    with pytest.raises(InputError, match="trial 99"):
        predict(study, tracking, str(co2_csv), trial_number=99)


def test_a_model_of_another_input_shape_is_refused_in_one_line() -> None:
    """Issue 10: a valid .keras model of the wrong input shape gave a traceback inside Keras."""
    from tuner.predict import _check_fits

    model = tiny_lstm(window=4, features=2)
    _check_fits(model, (4, 2), "runs:/x/model", "windows")  # its own shape: fine
    for window, features in ((5, 2), (4, 3)):
        with pytest.raises(InputError) as info:
            what = f"windows of {window} steps x {features} features"
            _check_fits(model, (window, features), "runs:/x/model", what)
        message = str(info.value)
        assert message.startswith("runs:/x/model: the model takes inputs of shape (None, 4, 2)")
        assert f"{window} steps x {features} features" in message and "\n" not in message
    with pytest.raises(InputError, match="describes raw text"):  # a text card, a window model
        _check_fits(model, (1,), "runs:/x/model", "raw text, one string per row")


def test_predictions_say_their_split_what_was_filled_in_and_when_the_future_is(
    tmp_path: Path,
) -> None:
    """Issue 14: no split column, interpolated actuals not flagged, no date past the table."""
    import keras

    window, horizon = 2, 2
    csv = tmp_path / "daily.csv"
    days = pd.date_range("2026-01-01", periods=10, freq="D").strftime("%Y-%m-%d")
    y = np.arange(10.0)
    y[4] = np.nan  # filled in by --nan interpolate
    pd.DataFrame({"date": days, "y": y}).to_csv(csv, index=False)
    inputs = keras.Input((window, 1))
    model = keras.Model(inputs, keras.layers.Dense(horizon)(keras.layers.Flatten()(inputs)))
    card = ModelCard("forecast", window, {}, {}, columns=["y"], target_index=[0], horizon=horizon)
    options = data.DataOptions(
        path=str(csv), target=("y",), time="date", horizon=horizon, nan="interpolate"
    )
    out = _forecast(model, card, options, data.Scaler("none", np.zeros(1), np.ones(1)))
    filled = out[out["y_interpolated"]]
    assert set(filled["date"]) == {"2026-01-05"} and (filled["y_actual"] == 4.0).all()
    future = out[out["split"] == "future"]
    assert future["date"].tolist() == ["2026-01-11", "2026-01-11", "2026-01-12"]
    assert set(out["split"]) == {"train", "val", "test", "future"}


@pytest.mark.parametrize("years", [np.arange(1871, 1881), np.arange(1871.0, 1881.0)])
def test_a_numeric_time_goes_on_in_numbers_past_the_table(tmp_path: Path, years) -> None:
    """A year column (ints, or floats as a CSV of 1871.0 gives) is not read as nanoseconds
    since 1970: the future rows are the next years, and the table writes to Parquet."""
    import keras

    window, horizon = 2, 2
    csv = tmp_path / "yearly.csv"
    pd.DataFrame({"year": years, "y": np.arange(10.0)}).to_csv(csv, index=False)
    inputs = keras.Input((window, 1))
    model = keras.Model(inputs, keras.layers.Dense(horizon)(keras.layers.Flatten()(inputs)))
    card = ModelCard("forecast", window, {}, {}, columns=["y"], target_index=[0], horizon=horizon)
    options = data.DataOptions(path=str(csv), target=("y",), time="year", horizon=horizon)
    out = _forecast(model, card, options, data.Scaler("none", np.zeros(1), np.ones(1)))
    future = out[out["split"] == "future"]
    assert future["year"].tolist() == [1881, 1881, 1882]
    assert out["year"].iloc[0] == 1873
    out.to_parquet(tmp_path / "p.parquet")  # one numeric column, not numbers and strings
    assert pd.read_parquet(tmp_path / "p.parquet")["year"].iloc[-1] == 1882


@pytest.mark.slow
def test_a_seq2seq_forecaster_trains_and_predicts_every_step_ahead(space_file, co2_csv) -> None:
    import optuna

    from tuner.cli import main
    from tuner.storage import embedded

    space = space_file("""
task: forecast
epochs: 2
seed: 1
sampler: {name: random}
pruner: none
params:
  decoder: seq2seq
  units: 8
  window: 8
  batch_size: 32
  learning_rate: 0.01
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--horizon", "3"]
    assert main([*argv, "--study", "s", "--trials", "1", "-q"]) == 0
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    out = predict(study, tracking, str(co2_csv))
    assert len(out) == (300 - 8 + 1) * 3 and sorted(set(out["step"])) == [1, 2, 3]
    assert out["co2_pred"].between(300, 340).all(), "in ppm, every step ahead"


def test_parquet_times_and_row_numbers_go_on_past_the_table_in_their_own_type(
    tmp_path: Path,
) -> None:
    """A new user's Parquet table: with timestamps, the origins printed as timestamps and the
    future dates as text; without --time, the `row` column turned float and the future row
    was empty."""
    import keras

    window, horizon = 2, 2
    days = pd.date_range("2026-01-01", periods=10, freq="D")
    path = tmp_path / "daily.parquet"
    pd.DataFrame({"date": days, "y": np.arange(10.0)}).to_parquet(path)
    inputs = keras.Input((window, 1))
    model = keras.Model(inputs, keras.layers.Dense(horizon)(keras.layers.Flatten()(inputs)))
    card = ModelCard("forecast", window, {}, {}, columns=["y"], target_index=[0], horizon=horizon)
    scaler = data.Scaler("none", np.zeros(1), np.ones(1))
    timed = data.DataOptions(path=str(path), target=("y",), time="date", horizon=horizon)
    out = _forecast(model, card, timed, scaler)
    assert out["date"].dtype == out["origin"].dtype and out["date"].dtype.kind == "M"
    future = out[out["split"] == "future"]
    assert list(future["date"]) == list(pd.to_datetime(["2026-01-11", "2026-01-11", "2026-01-12"]))
    out.to_csv(tmp_path / "p.csv", index=False)
    written = pd.read_csv(tmp_path / "p.csv")
    assert written["origin"].iloc[-1] == "2026-01-10" and written["date"].iloc[-1] == "2026-01-12"

    untimed = data.DataOptions(path=str(path), target=("y",), horizon=horizon)
    out = _forecast(model, card, untimed, scaler)
    assert out["row"].dtype.kind == "i" and out["row"].iloc[-1] == 11  # two steps past row 9
    out.to_parquet(tmp_path / "p.parquet")
    assert pd.read_parquet(tmp_path / "p.parquet")["row"].dtype.kind == "i"
