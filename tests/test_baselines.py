"""Baselines on tiny hand-computed series, period detection, the window `auto` range, the skill
ratio and the budget arithmetic: pure numpy, no training."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tuner import baselines as b
from tuner import windowing
from tuner.data import Sequences, Series
from tuner.errors import InputError
from tuner.ridge import fit_ridge, fit_ridge_ar, ridge_lags


def series(values: np.ndarray, horizon: int = 1, targets: list[int] | None = None) -> Series:
    values = values.reshape(len(values), -1).astype(np.float64)
    splits = windowing.split_bounds(len(values), 0.2, 0.2)
    return Series(
        values=values,
        columns=tuple(f"c{i}" for i in range(values.shape[1])),
        target_index=targets or [values.shape[1] - 1],
        horizon=horizon,
        splits=splits,
    )


def test_naive_and_seasonal_naive_by_hand() -> None:
    # 0 1 2 3 4 0 1 2 3 4 ...: period 5. Splits of 50 rows: train 0-29, val 30-39, test 40-49.
    s = series(np.arange(50) % 5)
    out = b.forecast_baselines(s, window=5, period=5)
    # naive predicts the last value; the truth is that + 1, or -4 after a 4: mean |err| = 8/5
    assert out["naive"]["val_mae_original"] == pytest.approx(8 / 5)
    assert out["naive"]["test_mae_original"] == pytest.approx(8 / 5)
    assert out["naive"]["val_rmse_original"] == pytest.approx(math.sqrt((4 * 1 + 16) / 5))
    # one season back is exactly right
    assert out["seasonal_naive"]["test_mae_original"] == 0.0


def test_baselines_score_every_target_of_validation_and_test_whatever_the_window() -> None:
    # t^2: the naive forecast of row t misses by 2t - 1. Validation is rows 30-39, test 40-49;
    # a window of 5 reads rows 25-29 for the first validation target (row 30)
    s = series(np.arange(50, dtype=float) ** 2)
    for window in (2, 5, 9):
        out = b.forecast_baselines(s, window=window, period=None)
        assert out["naive"]["val_mae_original"] == pytest.approx(np.mean(2 * np.arange(30, 40) - 1))
        assert out["naive"]["test_mae_original"] == pytest.approx(
            np.mean(2 * np.arange(40, 50) - 1)
        )


def test_seasonal_naive_steps_beyond_a_season_use_the_latest_same_phase() -> None:
    values = np.arange(20, dtype=float)[:, None]
    pred = b.seasonal_naive(values, origin=np.array([9]), horizon=5, period=2)
    # steps 1..5 after row 9: rows 10..14; the same phase one or more seasons back, at most row 9
    assert pred.tolist() == [[8.0, 9.0, 8.0, 9.0, 8.0]]


def test_ridge_ar_recovers_a_linear_recurrence() -> None:
    # x_t = 0.6 x_{t-1} + 0.3 x_{t-2} + noise-free start: ridge finds it (to the penalty)
    x = np.zeros(300)
    x[:2] = [1.0, 2.0]
    rng = np.random.default_rng(0)
    for t in range(2, 300):
        x[t] = 0.6 * x[t - 1] + 0.3 * x[t - 2] + rng.normal(0, 0.1)
    s = series(x)
    out = b.forecast_baselines(s, window=2, period=None)
    assert "seasonal_naive" not in out  # no season given and none in an AR(2)
    assert out["ridge_ar"]["test_mae_original"] < out["naive"]["test_mae_original"]
    assert out["ridge_ar"]["test_mae_original"] == pytest.approx(0.08, abs=0.03)  # ~ noise


def test_ridge_fit_matches_least_squares_when_the_penalty_is_small() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4, 2))
    w = rng.normal(size=(8, 3))
    y = x.reshape(500, -1) @ w + 0.5
    ridge = fit_ridge(x, y)
    assert ridge.coef.shape == (8, 3) and ridge.intercept.shape == (3,)
    np.testing.assert_allclose(ridge.predict(x), y, atol=1e-2)


def test_ridge_ar_picks_its_lags_on_validation_and_reads_whole_windows() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(230, 8, 2))
    y = x[:, -1, :1] * 2.0 + rng.normal(0, 0.5, (230, 1))  # only the last row matters
    # 30 noisy training windows: all 8 rows (16 inputs) overfit, a short lag does not
    ridge = fit_ridge_ar(x[:30], y[:30], x[30:], y[30:], np.ones(1))
    assert ridge.lags in (1, 2) and ridge.coef.shape == (16, 1)
    assert not ridge.coef[: (8 - ridge.lags) * 2].any()  # the older rows' coefficients are 0
    full = fit_ridge(x[:30], y[:30])
    err = lambda r: np.mean(np.abs(r.predict(x[30:]) - y[30:]))  # noqa: E731
    assert err(ridge) < err(full)


def test_ridge_ar_tries_doubling_lags_so_a_short_memory_is_found_in_a_long_window() -> None:
    """An AR(2) series in windows of 40: the ladder reaches 2 lags (1, 2, 4, ..., 32, 40); the
    window's halves and quarters alone (1, 10, 20, 40) would fit 10 noisy coefficients."""
    assert ridge_lags(48) == [1, 2, 4, 8, 16, 32, 48] and ridge_lags(1) == [1]
    rng = np.random.default_rng(3)
    z = np.zeros(700)
    for t in range(2, len(z)):
        z[t] = 1.2 * z[t - 1] - 0.5 * z[t - 2] + rng.normal()
    x = np.lib.stride_tricks.sliding_window_view(z[:-1], 40)[:, :, None]
    y = z[40:, None]
    ridge = fit_ridge_ar(x[:120], y[:120], x[120:], y[120:], np.ones(1))
    assert ridge.lags == 2
    np.testing.assert_allclose(ridge.coef[-2:, 0], [-0.5, 1.2], atol=0.2)


def test_a_ridge_start_reads_the_lags_of_the_study_s_ridge_baseline() -> None:
    """Every ``residual: ridge`` trial starts from the baseline's lag count (at most its window),
    whatever its window and scaler; a study stored without the lags chooses per window."""
    from tuner.launch import start_from_ridge_baseline

    rng = np.random.default_rng(4)
    z = np.zeros(400)
    for t in range(2, len(z)):
        z[t] = 1.2 * z[t - 1] - 0.5 * z[t - 2] + rng.normal()
    baselines = {"scores": {"ridge_ar": {"lags": 8.0, "val_mae_original": 1.0}}, "window": 32}
    s = series(z)
    start_from_ridge_baseline(s, baselines)
    assert s.ridge_lags == 8 and s.ridge_window == 32
    assert s.ridge("minmax", 16).lags == 8 and s.ridge("standard", 32).lags == 8
    assert s.ridge("standard", 3).lags == 3  # a shorter window reads all of it
    chosen = series(z)
    start_from_ridge_baseline(chosen, {"scores": {}, "window": 32})
    assert chosen.ridge_lags is None and chosen.ridge_window is None
    assert chosen.ridge("standard", 16).lags in (2, 4)
    sequences = Sequences.__new__(Sequences)
    start_from_ridge_baseline(sequences, baselines)  # not a forecast: nothing to start from
    assert not hasattr(sequences, "ridge_lags")
    s.ridge_lags = 4  # set again: the ridges cached for 8 lags are not served
    assert s.ridge("minmax", 16).lags == 4
    from types import SimpleNamespace

    from tuner.rerun import _start_as_recorded

    _start_as_recorded(s, SimpleNamespace(user_attrs={"start_lags": 2.0}))  # tuner reproduce
    assert s.ridge("minmax", 16).lags == 2 and s.ridge("minmax", 16).baseline_window is None
    recorded = {"start_lags": 8.0, "start_window": 32.0}  # it started from the baseline
    _start_as_recorded(s, SimpleNamespace(user_attrs=recorded))
    assert (s.ridge_lags, s.ridge_window) == (8, 32)
    assert s.ridge("minmax", 16).baseline_window == 32
    _start_as_recorded(s, SimpleNamespace(user_attrs={}))  # recorded before start_lags
    assert s.ridge_lags is None and s.ridge_window is None


@pytest.mark.parametrize("scaler", ["standard", "minmax", "robust", "none"])
def test_a_ridge_start_is_the_study_s_ridge_baseline_in_the_trial_s_units(scaler: str) -> None:
    """A trial whose window holds the baseline's lags starts from the baseline itself: its
    start forecasts what the baseline forecasts, whatever the trial's scaler and window, so a
    trial that goes back to its start ties the baseline instead of missing it by a hair."""
    from tuner.launch import start_from_ridge_baseline

    rng = np.random.default_rng(5)
    z = np.zeros(2000)
    for i in range(2, len(z)):  # an AR(2): a few lags suffice
        z[i] = 1.2 * z[i - 1] - 0.5 * z[i - 2] + rng.normal()
    # three columns in different units and centres: two targets out of column order (the
    # outputs are step-major: c2, c0, c2, c0), two steps ahead, and an input that is no target
    noise = rng.normal(size=2000)
    values = np.stack([50 + 10 * z, 100 + noise, 3 * np.roll(z, 3) + rng.normal(size=2000)], axis=1)
    s = series(values, horizon=2, targets=[2, 0])
    scores = b.forecast_baselines(s, window=16, period=None)
    start_from_ridge_baseline(s, {"scores": scores, "window": 16})
    lags = s.ridge_lags
    assert lags is not None and 1 < lags < 16

    def forecasts(window: int) -> tuple[np.ndarray, np.ndarray]:
        """The start's test forecasts and the truth, in original units."""
        a = s.arrays(scaler, window)
        assert a.scaler is not None
        ridge = s.ridge(scaler, window)
        assert ridge.baseline_window == 16 and ridge.lags == lags
        return tuple(a.scaler.inverse(v, [2, 0, 2, 0]) for v in (ridge.predict(a.x_test), a.y_test))

    pred, truth = forecasts(16)  # the baseline's own window: the same targets
    mae = float(np.mean(np.abs(pred - truth)))
    assert mae == pytest.approx(scores["ridge_ar"]["test_mae_original"], rel=1e-5)
    for window in (lags, 40):  # other windows: the same forecast of every target both score
        other = forecasts(window)[0]
        common = min(len(other), len(pred))
        np.testing.assert_allclose(other[-common:], pred[-common:], rtol=1e-4, atol=1e-4)
    # a window shorter than the lags: a ridge on the lags it holds, fitted on its own windows
    assert s.ridge(scaler, lags - 1).baseline_window is None


def test_forecast_baselines_score_every_output_in_original_units() -> None:
    # two targets in very different units, two steps ahead: naive's error is per output
    t = np.arange(60, dtype=float)
    s = series(np.stack([t, 1000 * t], axis=1), horizon=2, targets=[0, 1])
    out = b.forecast_baselines(s, window=3, period=None)
    # step 1 is off by 1 (x1000), step 2 by 2 (x1000): mean over the 4 outputs
    assert out["naive"]["test_mae_original"] == pytest.approx((1 + 2 + 1000 + 2000) / 4)


@pytest.mark.parametrize("period", [7, 24, 52])
def test_detect_period_of_a_noisy_sine_with_a_trend(period: int) -> None:
    rng = np.random.default_rng(period)
    t = np.arange(20 * period)
    x = np.sin(2 * np.pi * t / period) + 0.01 * t + rng.normal(0, 0.3, len(t))
    assert b.detect_period(x) == period


def test_no_period_in_noise_or_a_random_walk() -> None:
    rng = np.random.default_rng(0)
    assert b.detect_period(rng.normal(size=1000)) is None
    assert b.detect_period(np.cumsum(rng.normal(size=1000))) is None
    assert b.detect_period(np.arange(3.0)) is None  # too short to say


def test_window_auto_range() -> None:
    assert b.window_range(24, 10_000) == (24, 72)  # one season to three
    assert b.window_range(7, 10_000) == (7, 21)
    assert b.window_range(3, 10_000) == (4, 9)
    assert b.window_range(None, 10_000) == (8, 64)  # no season: the old default
    assert b.window_range(52, 400) == (52, 100)  # a quarter of the rows caps it
    assert b.window_range(52, 40) == (10, 10)  # too few rows: one small window
    low, high = b.window_range(5, 4)
    assert 1 <= low <= high


def test_mase_scale_is_the_in_sample_seasonal_naive_error() -> None:
    s = series(np.arange(50, dtype=float) * 2)  # train rows 0..29, step 2 per row
    assert b.mase_scale(s, None) == 2.0
    assert b.mase_scale(s, 5) == 10.0


def sequences(x: np.ndarray, y: np.ndarray) -> Sequences:
    idx = np.arange(len(y))
    return Sequences(
        x=x.astype(np.float32),
        y=y,
        classes=sorted(set(y.tolist())),
        splits=(idx[:6], idx[6:8], idx[8:]),
    )


def test_majority_and_nearest_neighbour_by_hand() -> None:
    # class 0 sequences sit at 0, class 1 at 10; train has 4 of class 0 and 2 of class 1
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    x = (y[:, None, None] * 10.0 + np.arange(3)[None, :, None] * 0.1).repeat(2, axis=2)
    out = b.classify_baselines(sequences(x, y))
    assert out["majority"]["val_accuracy"] == 0.5  # val labels 1, 0: majority says 0
    assert out["majority"]["test_accuracy"] == 0.5
    assert out["majority"]["val_loss"] == pytest.approx(-(math.log(2 / 6) + math.log(4 / 6)) / 2)
    assert out["nearest_neighbour"]["val_accuracy"] == 1.0
    assert out["nearest_neighbour"]["test_accuracy"] == 1.0


def test_nearest_in_chunks_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    ref, q = rng.normal(size=(50, 6)), rng.normal(size=(37, 6))
    brute = np.argmin(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(b.nearest(ref, q, chunk=8), brute)


def test_compute_picks_the_best_baseline_on_validation() -> None:
    s = series(np.arange(80) % 5)
    out = b.compute(s, window=5)
    assert out["period"] == 5
    assert out["best"] == "seasonal_naive"  # exact on every split
    assert set(out["scores"]) == {"naive", "seasonal_naive", "ridge_ar"}


def test_skill_ratio_and_mase() -> None:
    baselines = {
        "task": "forecast",
        "best": "naive",
        "scores": {"naive": {"val_mae_original": 2.0, "test_mae_original": 4.0}},
        "mase_scale": 8.0,
    }
    trial = {"best_val_mae_original": 1.0, "test_mae_original": 2.0}
    assert b.skill(baselines, trial) == {"skill_val": 0.5, "skill_test": 0.5, "mase_test": 0.25}
    classify = {
        "task": "classify",
        "best": "nearest_neighbour",
        "scores": {"nearest_neighbour": {"val_accuracy": 0.8, "test_accuracy": 0.9}},
    }
    got = b.skill(classify, {"best_val_accuracy": 0.9, "test_accuracy": 0.8})
    assert got == pytest.approx({"skill_val": 0.5, "skill_test": 2.0})  # error rates
    assert b.skill(classify, {}) == {}  # nothing to compare


def test_the_verdict_says_plainly_when_the_lstm_loses() -> None:
    baselines = {
        "task": "forecast",
        "best": "ridge_ar",
        "period": 24,
        "scores": {
            "naive": {"val_mae_original": 3.0, "test_mae_original": 3.0},
            "ridge_ar": {"val_mae_original": 1.0, "test_mae_original": 2.0},
        },
    }
    wins = b.compare(baselines, {"test_mae_original": 1.5, "best_val_mae_original": 0.9})
    assert wins["beats_baselines"] is True and wins["season"] == 24
    assert wins["verdict"].startswith("the tuned LSTM beats every baseline: test MAE 1.5")
    loses = b.compare(baselines, {"test_mae_original": 2.5})
    assert loses["beats_baselines"] is False
    assert "does NOT beat" in loses["verdict"] and "prefer ridge_ar" in loses["verdict"]
    for mine in (2.0 * (1 - 1e-7), 2.0 * (1 + 1e-7)):  # the ridge baseline's forecasts, float32
        tie = b.compare(baselines, {"test_mae_original": mine})
        assert tie["beats_baselines"] is False
        assert tie["verdict"].startswith("the tuned LSTM ties the best baseline: test MAE 2 ")
    untested = b.compare(baselines, {"best_val_mae_original": 0.9})
    assert untested["beats_baselines"] is None and "no test score" in untested["verdict"]
    assert "skill" not in b.compare(baselines, None)  # no complete trial yet


def test_a_perfect_score_on_both_sides_is_a_tie_not_a_loss() -> None:
    """A new user's text study: 100% test accuracy, as the bag of words baseline, read "does
    NOT beat the simple baselines"."""
    baselines = {
        "task": "text",
        "best": "bag_of_words",
        "scores": {
            "majority": {"val_accuracy": 0.5, "test_accuracy": 0.5},
            "bag_of_words": {"val_accuracy": 1.0, "test_accuracy": 1.0},
        },
    }
    tie = b.compare(baselines, {"best_val_accuracy": 1.0, "test_accuracy": 1.0})
    assert tie["beats_baselines"] is False and tie["skill"]["skill_test"] == 1.0
    assert tie["verdict"].startswith("the tuned LSTM ties the best baseline: test accuracy 1 vs 1")
    # accuracies are counts, not float32 forecasts: a token's difference is no tie
    short = b.compare(baselines, {"test_accuracy": 1.0 - 1e-6})
    assert "does NOT beat" in short["verdict"]


def test_best_by_mean_compares_the_retrained_mean_with_the_baselines() -> None:
    """A new user's trial: `tuner best --by-mean` judged the pick by the search's own test
    score, not by the retrained seeds' mean it was picked by."""
    from types import SimpleNamespace

    from tuner.cli import _baseline_report

    baselines = {
        "task": "forecast",
        "best": "naive",
        "scores": {"naive": {"val_mae_original": 2.0, "test_mae_original": 2.0}},
    }
    study = SimpleNamespace(user_attrs={"tuner_baselines": baselines})
    best = SimpleNamespace(user_attrs={"best_val_mae_original": 1.0, "test_mae_original": 1.0})
    retrained = {"test_key": "test_mae_original", "test": [2.5, 3.5], "test_mean": 3.0}
    searched = _baseline_report(study, best)
    assert searched is not None and searched["beats_baselines"] is True
    mean = _baseline_report(study, best, retrained)
    assert mean is not None and mean["beats_baselines"] is False
    assert mean["skill"] == {"skill_test": 1.5}, "the search run's validation is not the mean's"
    assert mean["verdict"].startswith("the tuned LSTM (mean of 2 retrained seeds) does NOT beat")


def test_a_best_trial_back_at_its_start_says_which_start() -> None:
    """A fixed `residual: ridge` is the space's, not among the trial's parameters."""
    from types import SimpleNamespace

    from tuner.cli import _baseline_lines, _baseline_report

    baselines = {
        "task": "forecast",
        "best": "ridge_ar",
        "scores": {"ridge_ar": {"val_mae_original": 1.0, "test_mae_original": 1.0}},
    }
    spec = {"space": {"params": {"residual": "ridge", "units": [8, 16]}}}
    study = SimpleNamespace(user_attrs={"tuner_baselines": baselines, "tuner_spec": spec})
    attrs = {"test_mae_original": 1.0, "back_to_start": 1.0, "start_pvalue": 0.42}
    best = SimpleNamespace(number=3, params={"units": 8}, user_attrs=attrs)
    lines = _baseline_lines(_baseline_report(study, best))
    assert lines[-1].startswith("trial 3's model is the ridge autoregression (ridge_ar): ")
    assert "(one-sided test, p = 0.42 >= 0.05)" in lines[-1]  # recorded before keep_level
    spent = SimpleNamespace(number=3, params={}, user_attrs={**attrs, "keep_level": 0.0076})
    assert (
        "(one-sided test, p = 0.42 >= 0.0076)"
        in _baseline_lines(_baseline_report(study, spent))[-1]
    )
    searched = SimpleNamespace(number=3, params={"residual": "last"}, user_attrs=attrs)
    assert "is the last value (naive)" in _baseline_lines(_baseline_report(study, searched))[-1]
    # a window shorter than the baseline's lags refits a ridge of its own: not ridge_ar
    own = SimpleNamespace(number=3, params={}, user_attrs={**attrs, "start_lags": 61.0})
    assert (
        "'s model is a ridge autoregression on 61 lags, fitted on its own windows: "
        in (_baseline_lines(_baseline_report(study, own))[-1])
    )
    baseline = {**attrs, "start_lags": 64.0, "start_window": 156.0}  # the baseline itself
    itself = SimpleNamespace(number=3, params={}, user_attrs=baseline)
    assert (
        "is the ridge autoregression (ridge_ar)"
        in (_baseline_lines(_baseline_report(study, itself))[-1])
    )
    kept = SimpleNamespace(number=3, params={}, user_attrs={"test_mae_original": 1.0})
    assert not any("model is" in x for x in _baseline_lines(_baseline_report(study, kept)))


def test_a_rerun_that_went_back_to_its_start_says_why_it_differs() -> None:
    from tuner.cli import _start_difference

    kept = {"value": 0.9, "start_pvalue": 0.01}
    back = {"value": 1.0, "start_pvalue": 0.2, "back_to_start": 1.0}
    assert _start_difference(kept, {"value": 0.91, "start_pvalue": 0.02}) is None
    assert _start_difference({"value": 0.9}, {"value": 0.9}) is None  # not a residual model
    old = _start_difference({"value": 0.9}, back)
    assert old is not None and old.startswith("the trial was recorded before residual models")
    assert _start_difference(kept, back) == (
        "the recorded run kept its training, the rerun went back to its start "
        "(p = 0.01 then, p = 0.2 now; it keeps below 0.05)"
    )
    assert _start_difference(kept, {"epochs_run": 3.0}) is None  # the rerun did not finish
    relagged = _start_difference({"value": 0.9, **back}, {**back, "start_lags": 2.0})
    assert relagged is not None and "recorded without its ridge start's lags" in relagged
    assert _start_difference(back, {"value": 0.9}) == (
        "the recorded run went back to its start, the rerun kept its training "
        "(p = 0.2 then, untested now; it keeps below 0.05)"
    )
    second = _start_difference({**kept, "keep_level": 0.0076}, back)  # the study's second judged
    assert second is not None and second.endswith(
        "(p = 0.01 then, p = 0.2 now; it keeps below 0.0076)"
    )


def test_a_rerun_judges_at_the_level_its_trial_was_judged_at() -> None:
    from types import SimpleNamespace

    import optuna

    from tuner.rerun import config_of
    from tuner.space import parse_space

    space = parse_space(
        {"task": "forecast", "params": {"residual": "ridge", "window": 8}}, source="s"
    )
    spec: Any = SimpleNamespace(max_epochs=None)
    dataset: Any = SimpleNamespace(default_window=None)
    trial = optuna.trial.create_trial(
        params={}, distributions={}, value=1.0, user_attrs={"keep_level": 0.0034}
    )
    assert config_of(trial, space, spec, dataset).keep_level == 0.0034
    older = optuna.trial.create_trial(params={}, distributions={}, value=1.0)
    assert config_of(older, space, spec, dataset).keep_level == 0.05  # the level of its time


class FakeTrial:
    def __init__(
        self, epochs_run: float | None, reported: int, state: str = "COMPLETE", **attrs
    ) -> None:
        from optuna.trial import TrialState

        self.user_attrs = {} if epochs_run is None else {"epochs_run": epochs_run}
        self.user_attrs.update(attrs)
        self.intermediate_values = {i: 0.0 for i in range(reported)}
        self.state = TrialState[state]


class FakeStudy:
    def __init__(self, trials: list[FakeTrial], budget: int | None) -> None:
        self.trials = trials
        self.user_attrs = {"tuner_budget_epochs": budget}

    def get_trials(self, deepcopy: bool = False) -> list[FakeTrial]:
        return self.trials


def test_budget_counts_finished_epochs_and_running_progress() -> None:
    from tuner import study as studies

    trials = [
        FakeTrial(10.0, 10),
        FakeTrial(3.0, 3, "PRUNED"),
        FakeTrial(None, 2, "FAIL", epochs=10),  # failed after 2 epochs: its reservation is free
        FakeTrial(None, 4, "RUNNING", epochs=6),  # 6 reserved at its claim, 4 run so far
        FakeTrial(None, 3, "RUNNING"),  # no reservation (no budget when claimed): what it ran
    ]
    assert studies.epochs_used(FakeStudy(trials, 30)) == 10 + 3 + 2 + 6 + 3
    assert studies.budget_left(FakeStudy(trials, 30)) == 6
    assert studies.budget_left(FakeStudy(trials, 15)) == 0  # spent: never negative
    assert studies.budget_left(FakeStudy(trials, None)) is None


@pytest.mark.parametrize(
    "rows, val, test, horizon",
    [(200, 0.4, 0.4, 5), (120, 0.15, 0.15, 1), (5000, 0.1, 0.1, 24), (300, 0.2, 0.2, 3)],
)
def test_window_auto_always_fits_every_split(rows, val, test, horizon, space_file) -> None:
    """Whatever the split sizes, the resolved range leaves a window + horizon in each split."""
    from tuner.launch import _auto_window
    from tuner.space import load_space

    t = np.arange(rows)
    values = np.sin(2 * np.pi * t / 24) + 0.01 * t
    s = Series(
        values=values[:, None],
        columns=("y",),
        target_index=[0],
        horizon=horizon,
        splits=windowing.split_bounds(rows, val, test),
    )
    space = load_space(space_file("params:\n  window: auto\n"))
    resolved = _auto_window(space, s, None, dataset_path="d.csv")
    window = resolved.searched["window"]
    train = s.splits[0].stop - s.splits[0].start
    assert 1 <= window.low <= window.high <= max(2, (train - horizon) // 4)
    for part in s.splits:
        assert windowing.count(part.stop - part.start, window.high, horizon) >= 1


def test_the_ridge_start_gets_the_ridge_baseline_s_lags() -> None:
    """B7 (elecdemand): the ridge-start trial drew window 68 and started from a weaker ridge
    (validation MAE 0.0220) than the baseline's 144 lags (0.0202) it was compared with."""
    from tuner.launch import _ridge_start_window
    from tuner.space import parse_space

    raw = {
        "params": {"residual": ["none", "ridge"], "window": "auto", "units": [8, 16]},
        "start_with": [{"residual": "ridge", "units": 8}, {"units": 16}],
    }
    space = parse_space(raw, source="s.yaml").with_window(48, 144)
    out = _ridge_start_window(space, {"scores": {"ridge_ar": {"lags": 144.0}}})
    assert [s.get("window") for s in out.start_with] == [144, None]
    clamped = _ridge_start_window(space, {"scores": {"ridge_ar": {"lags": 1.0}}})
    assert clamped.start_with[0]["window"] == 48  # within the resolved range
    assert _ridge_start_window(space, {"scores": {}}) is space  # classify: no ridge


def test_several_targets_are_compared_scale_free(tmp_path) -> None:
    """Issue 13: the MAE averaged a kWh target with a degrees one; now each target's MAE is
    recorded and the comparison is nmae, the mean of each one's MAE over its std."""
    import pandas as pd

    from tuner.data import DataOptions, load
    from tuner.launch import check_objective
    from tuner.space import parse_space

    t = np.arange(400)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"kwh": 1000 + 300 * np.sin(t / 8) + rng.normal(0, 20, 400), "temp": np.cos(t / 5)}
    )
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    series = load(DataOptions(str(path), target=("kwh", "temp")), 8)
    result = b.compute(series, 8)
    assert result["metric"] == "nmae" and set(result["mase_scales"]) == {"mae_kwh", "mae_temp"}
    naive = result["scores"]["naive"]
    units = frame.iloc[series.splits[0]].std(ddof=0)
    expected = (naive["val_mae_kwh"] / units["kwh"] + naive["val_mae_temp"] / units["temp"]) / 2
    assert naive["val_nmae"] == pytest.approx(expected, rel=1e-6)
    best = result["scores"][result["best"]]
    assert best["val_nmae"] == min(s["val_nmae"] for s in result["scores"].values())

    attrs = {
        "best_val_nmae": best["val_nmae"] / 2,
        "test_nmae": best["test_nmae"] / 2,
        "test_mae_kwh": 10.0,
        "test_mae_temp": 0.1,
    }
    s = b.skill(result, attrs)
    assert s["skill_val"] == pytest.approx(0.5) and s["skill_test"] == pytest.approx(0.5)
    assert s["mase_test_kwh"] == pytest.approx(10.0 / result["mase_scales"]["mae_kwh"])
    assert s["mase_test"] == pytest.approx((s["mase_test_kwh"] + s["mase_test_temp"]) / 2)
    assert b.compare(result, attrs)["beats_baselines"] is True

    space = check_objective(parse_space({"params": {}}, source="s.yaml"), series)
    assert space.objective == "val_nmae" and space.raw["objective"] == "val_nmae"
    named = parse_space({"objective": "val_mae_original"}, source="s.yaml")
    assert check_objective(named, series).objective == "val_mae_original"

    one = load(DataOptions(str(path), target=("kwh",)), 8)
    with pytest.raises(InputError, match="val_nmae compares several targets") as e:
        check_objective(parse_space({"objective": "val_nmae"}, source="s.yaml"), one)
    assert e.value.field == "objective" and e.value.source == "s.yaml"
