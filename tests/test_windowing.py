"""Window indices and split boundaries: the classic off-by-one leaks."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.data import Series
from tuner.windowing import count, split_bounds, windows


def test_windows_match_the_documented_indices() -> None:
    rows = np.arange(10, dtype=float)[:, None]  # row i holds the value i
    x, y = windows(rows, rows, length=3, horizon=2)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2)
    assert x[0, :, 0].tolist() == [0, 1, 2] and y[0].tolist() == [3, 4]
    assert x[5, :, 0].tolist() == [5, 6, 7] and y[5].tolist() == [8, 9]


def test_windows_are_views_not_copies() -> None:
    inputs = np.random.default_rng(0).normal(size=(500, 3))
    x, _ = windows(inputs, inputs[:, :1], length=50, horizon=1)
    assert np.shares_memory(x, inputs)
    assert x.nbytes > inputs.nbytes  # 450 windows of 50 rows, but no new memory


def test_multi_target_multi_step_is_step_major() -> None:
    t = np.arange(20, dtype=float).reshape(10, 2)  # two targets: even and odd numbers
    _, y = windows(t, t, length=2, horizon=3)
    # window 0: targets of rows 2, 3, 4 -> [r2t0, r2t1, r3t0, r3t1, r4t0, r4t1]
    assert y[0].tolist() == [4, 5, 6, 7, 8, 9]


def test_too_few_rows_is_an_error() -> None:
    assert count(4, 3, 2) == 0
    with pytest.raises(ValueError, match="4 rows hold no window of length=3 and horizon=2"):
        windows(np.zeros((4, 1)), np.zeros((4, 1)), 3, 2)


def test_split_bounds_are_chronological_and_cover_everything() -> None:
    train, val, test = split_bounds(1000, 0.15, 0.1)
    assert (train.start, train.stop, val.stop, test.stop) == (0, 750, 900, 1000)


def test_targets_stay_in_their_split_and_every_window_scores_all_of_them() -> None:
    values = np.arange(100, dtype=float)[:, None]
    series = Series(values, ("v",), [0], horizon=2, splits=split_bounds(100, 0.2, 0.2))
    a = series.arrays("none", 5)
    # train is rows 0..59, validation 60..79, test 80..99
    assert a.x_train[0, 0, 0] == 0 and a.x_train[-1, -1, 0] == 57
    assert a.y_train[-1].tolist() == [58, 59], "no training target past the training split"
    # validation and test: inputs reach back before the split, targets are all of its rows
    assert a.x_val[0, :, 0].tolist() == [55, 56, 57, 58, 59] and a.y_val[0].tolist() == [60, 61]
    assert a.y_val[-1].tolist() == [78, 79] and len(a.y_val) == 19
    assert a.x_test[0, 0, 0] == 75 and a.y_test[0].tolist() == [80, 81]
    assert a.y_test[-1].tolist() == [98, 99]
    longer = series.arrays("none", 12)
    for split in ("val", "test"):  # windows of every length forecast the same targets
        assert getattr(longer, f"y_{split}").tolist() == getattr(a, f"y_{split}").tolist()
    assert len(longer.y_train) == len(a.y_train) - 7, "training windows stay inside train"
    standard = series.arrays("standard", 5).scaler
    assert standard.center[0] == pytest.approx(29.5)  # mean of rows 0..59, not of all 100
    assert series.arrays("none", 5) is a, "arrays are cached per (scaler, window)"
