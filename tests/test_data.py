"""Reading and checking data: one-line errors naming file, field and value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuner.data import DataOptions, Scaler, load
from tuner.errors import InputError


def opts(path: Path | str, **kw) -> DataOptions:
    return DataOptions(path=str(path), **{"target": ("co2",), "time": "date", **kw})


def test_co2_with_interpolation(co2_csv: Path) -> None:
    series = load(opts(co2_csv, nan="interpolate"), max_window=16)
    assert series.values.shape == (300, 1) and np.isfinite(series.values).all()
    assert series.columns == ("co2",) and series.target_index == [0]


def test_nan_policies(co2_csv: Path) -> None:
    with pytest.raises(InputError, match=r"co2.csv: co2: NaN at line \d+ \(use --nan drop") as e:
        load(opts(co2_csv), max_window=16)
    # issue 14: the line a user opens the file at (the header is line 1), not a 0-based row
    line = int(str(e.value).split("NaN at line ")[1].split()[0])
    date, co2 = co2_csv.read_text().splitlines()[line - 1].split(",")
    assert co2 == "", (line, date, co2)
    dropped = load(opts(co2_csv, nan="drop"), max_window=16)
    assert len(dropped.values) == 300 - pd.read_csv(co2_csv)["co2"].isna().sum()
    with pytest.raises(InputError, match="--nan: unknown NaN policy 'zero'"):
        load(opts(co2_csv, nan="zero"), max_window=16)


def test_features_and_targets_order_and_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"t": range(200), "temp": np.sin(np.arange(200.0)), "load": np.arange(200.0)})
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    series = load(DataOptions(str(path), target=("load",), time="t"), max_window=10)
    assert series.columns == ("temp", "load") and series.target_index == [1]


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"path": "missing.csv"}, r"^missing.csv: no such file$"),
        ({"target": ("ppm",)}, r"co2.csv: ppm: no such column; columns: date, co2"),
        ({"target": ()}, r"--target: name the column"),
        ({"time": "when"}, r"when: no such column"),
        ({"val_fraction": 0.7}, r"--val-fraction: must be in \(0, 0.5\), got 0.7"),
        ({"horizon": 0}, r"--horizon: must be >= 1, got 0"),
    ],
)
def test_bad_options(co2_csv: Path, kw: dict, expected: str) -> None:
    options = opts(co2_csv, nan="drop")
    options = DataOptions(**{**options.__dict__, **kw})
    with pytest.raises(InputError, match=expected):
        load(options, max_window=16)


def test_non_numeric_column(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": ["x"] * 50, "b": range(50)}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"d.csv: a: not a number at line 2: 'x'"):
        load(DataOptions(str(path), target=("a",)), max_window=4)  # a target must be numbers
    # numbers but one cell: that cell's line and value, not the column's first (valid) value
    values = [str(v) for v in np.arange(50.0)]
    values[30] = "n/a?"
    pd.DataFrame({"a": values, "b": range(50)}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(InputError, match=r"e.csv: a: not a number at line 32: 'n/a\?'$"):
        load(DataOptions(str(tmp_path / "e.csv"), target=("a",)), max_window=4)
    series = load(DataOptions(str(path), target=("b",), features=("a",)), max_window=4)
    assert series.columns == ("a=x", "b"), "a text input is one-hot encoded"


def test_series_too_short_for_window_horizon_and_splits(co2_csv: Path) -> None:
    with pytest.raises(
        InputError,
        match=r"300 rows leave 45 for the validation split, fewer than .* \(60\) \+ horizon \(1\)",
    ):
        load(opts(co2_csv, nan="interpolate"), max_window=60)


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match=r"d.xlsx: unknown file type '.xlsx'"):
        load(DataOptions(str(path), target=("a",)), max_window=4)


def test_classification_npz_stratified(npz_binary: Path) -> None:
    seqs = load(DataOptions(str(npz_binary), task="classify"), max_window=12)
    train, val, test = seqs.splits
    assert len(train) + len(val) + len(test) == 60
    assert not set(train) & set(val) and not set(val) & set(test)
    for part in (train, val, test):  # stratified: both classes in every split
        assert set(seqs.y[part]) == {0, 1}
    assert seqs.n_outputs == 1 and seqs.classes == [0, 1]


def test_classification_errors(tmp_path: Path, npz_binary: Path) -> None:
    one = tmp_path / "one.npz"
    np.savez(one, X=np.zeros((20, 5, 1)), y=np.zeros(20))
    with pytest.raises(
        InputError, match=r"one.npz: y: a classification needs at least 2 classes, found 1"
    ):
        load(DataOptions(str(one), task="classify"), max_window=5)
    with pytest.raises(InputError, match="fewer than the largest window"):
        load(DataOptions(str(npz_binary), task="classify"), max_window=13)
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((3, 2, 1)))
    with pytest.raises(InputError, match=r"bad.npz: missing arrays \['X', 'y'\]"):
        load(DataOptions(str(bad), task="classify"), max_window=1)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, X=np.array([object()] * 3), y=np.array([1, 2, 3]))
    with pytest.raises(InputError, match="cannot read the arrays"):
        load(DataOptions(str(pickled), task="classify"), max_window=1)


def test_sktime_s_channels_first_layout_gets_its_fix_named(tmp_path: Path, caplog) -> None:
    """Issue 14: samples x channels x timesteps was read as one step of 251 features."""
    path = tmp_path / "gunpoint.npz"
    y = np.arange(20) % 2
    np.savez(path, X=np.zeros((20, 1, 251)), y=y)
    with pytest.raises(InputError, match=r"1 time step of 251 features.*transpose\(0, 2, 1\)") as e:
        load(DataOptions(str(path), task="classify"), max_window=1)
    assert e.value.field == "X" and "\n" not in str(e.value)
    np.savez(path, X=np.random.default_rng(0).normal(size=(20, 3, 40)), y=y)
    with caplog.at_level("INFO", logger="tuner"):
        load(DataOptions(str(path), task="classify"), max_window=1)
    assert "3 time steps of 40 features" in caplog.text


def test_classification_long_table_multiclass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"seq": i, "step": s, "x": rng.normal() + i % 3, "label": f"c{i % 3}"}
        for i in range(45)
        for s in range(6)
    ]
    path = tmp_path / "long.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False)
    seqs = load(
        DataOptions(str(path), task="classify", target=("label",), id="seq", time="step"),
        max_window=6,
    )
    assert seqs.x.shape == (45, 6, 1) and seqs.classes == ["c0", "c1", "c2"] and seqs.n_outputs == 3
    # rows were shuffled: sequences come back ordered by id, each ordered by step
    first = pd.DataFrame(rows).query("seq == 0").sort_values("step")["x"].to_numpy()
    assert np.allclose(seqs.x[0, :, 0], first)
    assert seqs.y[0] == seqs.classes.index("c0")


def test_scalers_fit_on_train_only() -> None:
    x = np.array([[0.0], [10.0], [20.0], [1000.0]])
    assert Scaler.fit("minmax", x[:3]).transform(np.array([[20.0]]))[0, 0] == pytest.approx(1.0)
    s = Scaler.fit("standard", x[:3])
    assert s.inverse(s.transform(x), [0]) == pytest.approx(x, abs=1e-4)  # float32 round trip
    assert Scaler.fit("robust", x).center[0] == pytest.approx(15.0)


def test_fingerprint_tracks_content(co2_csv: Path, tmp_path: Path) -> None:
    a = load(opts(co2_csv, nan="drop"), max_window=8).fingerprint()
    assert a == load(opts(co2_csv, nan="drop"), max_window=8).fingerprint()
    other = tmp_path / "other.csv"
    df = pd.read_csv(co2_csv)
    df.loc[5, "co2"] += 0.1
    df.to_csv(other, index=False)
    assert a != load(opts(other, nan="drop"), max_window=8).fingerprint()


def test_interpolation_never_fills_across_a_split(tmp_path: Path) -> None:
    # rows 0..99: train 0..69, validation 70..84, test 85..99; a gap spanning the train/val boundary
    values = np.arange(100, dtype=float)
    values[68:73] = np.nan
    values[70] = np.nan
    path = tmp_path / "gap.csv"
    pd.DataFrame({"v": values}).to_csv(path, index=False)
    series = load(DataOptions(str(path), target=("v",), nan="interpolate"), max_window=4)
    # train's tail is filled from train alone (edge value 67), validation's head from validation (73)
    assert series.values[68:70, 0].tolist() == [67.0, 67.0]
    assert series.values[70:73, 0].tolist() == [73.0, 73.0, 73.0]


def test_classify_interpolation_with_nothing_to_interpolate_from(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 5, 2))
    x[3, :, 1] = np.nan
    path = tmp_path / "gaps.npz"
    np.savez(path, X=x, y=np.arange(30) % 2)
    with pytest.raises(InputError, match=r"gaps.npz: X: sequence 3 has a feature with no value"):
        load(DataOptions(str(path), task="classify", nan="interpolate"), max_window=5)


def test_a_directory_or_another_separator_is_named(tmp_path: Path) -> None:
    """Issue 14: `--data DIR` said "no such file"; a ;-separated file only listed one column."""
    with pytest.raises(InputError, match=r": is a directory; name the data file in it$"):
        load(opts(tmp_path), max_window=4)
    semi = tmp_path / "semi.csv"
    semi.write_text("date;co2\n2020-01-01;1.0\n2020-01-08;2.0\n")
    with pytest.raises(InputError, match=r"looks ';'-separated; tuner reads comma-separated"):
        load(opts(semi), max_window=4)


def test_a_parquet_datetime_index_can_be_the_time_column(tmp_path: Path) -> None:
    days = pd.date_range("2026-01-01", periods=120, freq="D", name="day")
    frame = pd.DataFrame({"load": np.arange(120.0)[::-1]}, index=days)
    path = tmp_path / "load.parquet"
    frame.to_parquet(path)
    series = load(DataOptions(str(path), target=("load",), time="day"), max_window=5)
    assert series.values[0, 0] == 119.0 and series.columns == ("load",)


def test_a_parquet_file_s_leftover_row_numbers_are_not_an_input(tmp_path: Path) -> None:
    frame = pd.DataFrame({"load": np.arange(200.0)}).query("load % 3 != 0")  # rows 1, 2, 4, ...
    path = tmp_path / "load.parquet"
    frame.to_parquet(path)  # the unnamed index is stored as-is
    series = load(DataOptions(str(path), target=("load",)), max_window=5)
    assert series.columns == ("load",)


def test_file_order_is_named_when_a_column_looks_like_a_time(tmp_path: Path, caplog) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"when": [f"2026-01-{d:02d}" for d in range(1, 29)], "y": range(28)}).to_csv(
        path, index=False
    )
    with caplog.at_level("INFO", logger="tuner"):
        load(DataOptions(str(path), target=("y",)), max_window=3)
    assert "column 'when' looks like a time: --time when sorts by it" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="tuner"):
        load(DataOptions(str(path), target=("y",), time="when"), max_window=3)
    assert "looks like a time" not in caplog.text


def test_a_column_that_counts_up_is_not_an_input_unless_named(tmp_path: Path, caplog) -> None:
    """A yearly table without --time: 'year' was scaled and fed to every trial as an input
    (the baselines too), with no note; a row's position runs past the training range."""
    path = tmp_path / "nile.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"year": np.arange(1871.0, 1931.0), "volume": rng.normal(900, 100, 60)})
    frame["rain"] = rng.normal(size=60)  # an input that does not count up
    frame.to_csv(path, index=False)
    with caplog.at_level("INFO", logger="tuner"):
        series = load(DataOptions(str(path), target=("volume",)), max_window=3)
    assert series.columns == ("rain", "volume")
    assert "column 'year' counts up in even steps" in caplog.text
    assert "(--time year makes it the time)" in caplog.text
    named = load(DataOptions(str(path), target=("volume",), features=("year",)), max_window=3)
    assert named.columns == ("year", "volume")
    timed = load(DataOptions(str(path), target=("volume",), time="year"), max_window=3)
    assert timed.columns == ("rain", "volume")


def test_nan_drop_says_how_many_rows_it_removed(tmp_path: Path, caplog) -> None:
    path = tmp_path / "t.csv"
    values = np.arange(40.0)
    values[[5, 17]] = np.nan
    pd.DataFrame({"y": values}).to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="tuner"):
        series = load(DataOptions(str(path), target=("y",), nan="drop"), max_window=3)
    assert len(series.values) == 38
    assert "--nan drop removed 2 of 40 rows" in caplog.text


def test_text_inputs_are_one_hot_encoded_from_the_training_split(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    n = 100
    kind = ["a", "b", "c"] * 33 + ["a"]
    kind[95] = "new"  # a category only the test split has: all zeros
    pd.DataFrame({"kind": kind, "sales": np.arange(n, dtype=float)}).to_csv(path, index=False)
    series = load(DataOptions(str(path), target=("sales",)), max_window=3)
    assert series.columns == ("kind=a", "kind=b", "kind=c", "sales")
    assert series.categories == {"kind": ["a", "b", "c"]}
    assert series.values[0, :3].tolist() == [1.0, 0.0, 0.0]
    assert series.values[95, :3].tolist() == [0.0, 0.0, 0.0]

    from tuner.predict import _read_series

    options = DataOptions(str(path), target=("sales",))
    values, _, _ = _read_series(options, list(series.columns), series.categories)
    np.testing.assert_array_equal(values, series.values)

    kind[7] = None  # a missing category is a missing value, not "none of them"
    pd.DataFrame({"kind": kind, "sales": np.arange(n, dtype=float)}).to_csv(path, index=False)
    with pytest.raises(InputError, match="line 9") as e:
        load(DataOptions(str(path), target=("sales",)), max_window=3)
    assert e.value.field == "kind" and "\n" not in str(e.value)
    dropped = load(DataOptions(str(path), target=("sales",), nan="drop"), max_window=3)
    assert len(dropped.values) == n - 1


def test_a_text_input_of_too_many_values_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": [f"u{i}" for i in range(60)], "y": range(60)}).to_csv(path, index=False)
    with pytest.raises(InputError, match="42 distinct values") as e:  # 60 rows, 42 in train
        load(DataOptions(str(path), target=("y",)), max_window=3)
    assert e.value.field == "id" and "--features" in str(e.value)
    load(DataOptions(str(path), target=("y",), features=()), max_window=3)  # left out: fine
