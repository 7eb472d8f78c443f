"""The best model's figures (issue 14), drawn from scripted arrays and stand-in models that
predict by rule: no framework, no training."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tuner import windowing
from tuner.baselines import majority_tokens
from tuner.data import Pairs, Series, Steps
from tuner.figures import Split, confusion_figure, forecast_figure, position_figure
from tuner.fitting import Fit, best_figure


def png(figure) -> bytes:
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


def test_a_forecast_figure_shows_the_series_the_model_and_the_baselines() -> None:
    t = np.arange(50, dtype=float)
    split = Split("test", t, t + 0.5, {"naive (last value)": t - 1.0})
    figure = forecast_figure([Split("validation", t, t, {}), split], "co2")
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == [
        "validation: co2, one step ahead",
        "test: co2, one step ahead",
    ]
    labels = [line.get_label() for line in axes[1].get_lines()]
    assert labels == ["actual", "LSTM (MAE 0.5)", "naive (last value) (1)"]
    assert png(figure).startswith(b"\x89PNG")


def test_a_confusion_matrix_counts_each_actual_class_by_prediction() -> None:
    actual = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    figure = confusion_figure(actual, predicted, ["a", "b", "c"])
    ax = figure.get_axes()[0]
    counts = ax.get_images()[0].get_array()
    assert counts.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert ax.get_title() == "test split: 6 sequences, accuracy 0.667"
    assert png(figure).startswith(b"\x89PNG")


def test_accuracy_by_position_shows_only_positions_that_hold_tokens() -> None:
    counts = np.array([10, 10, 5, 0])
    figure = position_figure(np.array([1.0, 0.5, 0.2, 0]), np.array([0.5, 0.5, 0.4, 0]), counts)
    ax = figure.get_axes()[0]
    model, baseline = ax.get_lines()
    assert model.get_xdata().tolist() == [1, 2, 3], "position 4 holds no scored token"
    assert model.get_label() == "LSTM (0.640 over all tokens)"  # (10 + 5 + 1) / 25
    assert baseline.get_label() == "majority_by_position (0.480 over all tokens)"
    assert ax.get_title() == "test split: token accuracy by target position (25 tokens)"
    assert png(figure).startswith(b"\x89PNG")


@dataclass
class Rule:
    """A stand-in model: ``predict`` applies ``rule`` to its inputs."""

    rule: Any

    def predict(self, x: Any, batch_size: int = 0, verbose: int = 0) -> np.ndarray:
        return self.rule(x)


@dataclass
class InOrder:
    """A stand-in for a stateful model's ordered pass: a forecast at every row of the stream."""

    stream: Any
    rule: Any

    def forecasts(self, trained: Any) -> np.ndarray:
        return self.rule(self.stream.x_all.reshape(-1, self.stream.x_all.shape[-1]))


def lines(figure: Any, panel: int) -> dict[str, np.ndarray]:
    """A panel's lines by the start of their label."""
    ax = figure.get_axes()[panel]
    return {line.get_label().split(" (")[0]: np.asarray(line.get_ydata()) for line in ax.lines}


@pytest.mark.parametrize("stateful", [False, True])
def test_a_forecast_figure_aligns_the_series_the_model_and_the_baselines(stateful: bool) -> None:
    """On the series 0, 1, 2, ... a model that repeats the last value is the naive forecast,
    each actual is one more, the seasonal naive (4) is three less; both paths (windows, and a
    stateful model read in order) end at the series' last value."""
    values = np.arange(300, dtype=np.float64)[:, None]
    series = Series(values, ("v",), [0], 2, windowing.split_bounds(300, 0.2, 0.2))
    repeat = lambda rows: np.repeat(rows[:, :1], 2, axis=1)  # noqa: E731 (both steps)
    if stateful:
        stream = series.stream("standard", 8, 4)
        done = Fit(None, Rule(None), stream, InOrder(stream, repeat))  # type: ignore[arg-type]
    else:
        arrays = series.arrays("standard", 8)
        done = Fit(None, Rule(lambda x: repeat(x[:, -1])), arrays)  # type: ignore[arg-type]
    name, figure = best_figure(done, series, 4, 32)
    assert name == "predictions"
    for panel in (0, 1):
        drawn = lines(figure, panel)
        assert list(drawn) == ["actual", "LSTM", "naive", "seasonal naive"]
        assert np.allclose(drawn["LSTM"], drawn["naive"])
        assert np.allclose(drawn["actual"], drawn["naive"] + 1)
        assert np.allclose(drawn["seasonal naive"], drawn["actual"] - 4)
    assert drawn["actual"][-1] == pytest.approx(298), (
        "the last forecast of horizon 2 is made at row 297"
    )
    assert png(figure).startswith(b"\x89PNG")


def test_a_labelling_tagger_counts_its_test_steps() -> None:
    y = np.array([[0, 1, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]])
    x = np.zeros((4, 3, 1), dtype=np.float32)
    splits = (np.array([0, 1]), np.array([2]), np.array([3]))
    steps = Steps(x, y, splits, classes=["off", "on"])
    always_on = Rule(lambda x: np.tile([0.2, 0.8], (len(x), x.shape[1], 1)))
    name, figure = best_figure(Fit(None, always_on, steps.arrays("none", 3)), steps, None, 8)
    ax = figure.get_axes()[0]
    assert name == "confusion_matrix"
    assert ax.get_images()[0].get_array().tolist() == [[0, 1], [0, 2]]
    assert ax.get_title() == "test split: 3 steps, accuracy 0.667"
    png(figure)


def test_a_tagger_s_values_are_drawn_per_step_in_the_target_s_units() -> None:
    y = np.arange(24, dtype=np.float32).reshape(4, 6, 1)
    steps = Steps(
        np.zeros((4, 6, 1), np.float32),
        y,
        (np.array([0, 1]), np.array([2]), np.array([3])),
        targets=["level"],
        y_center=np.array([5.5]),
        y_scale=np.array([2.0]),
    )
    zero = Rule(lambda x: np.zeros((len(x), x.shape[1], 1)))  # the training mean, standardized
    name, figure = best_figure(Fit(None, zero, steps.arrays("none", 6)), steps, None, 8)
    drawn = lines(figure, 0)
    assert name == "predictions" and figure.get_axes()[0].get_title().endswith("level, per step")
    assert drawn["actual"].tolist() == list(range(18, 24))
    assert np.allclose(drawn["LSTM"], 5.5) and np.allclose(drawn["mean of the training split"], 5.5)
    png(figure)


def test_a_seq2seq_figure_scores_each_position_up_to_each_end() -> None:
    target = np.array([[3, 4, 0, 0], [3, 5, 6, 0], [3, 4, 6, 0], [2, 5, 0, 0]])
    splits = (np.array([0, 1, 2]), np.array([2]), np.array([3]))
    pairs = Pairs(np.ones_like(target), target, splits)
    assert majority_tokens(pairs).tolist() == [3, 4, 6, 0]
    copy = Rule(lambda x: np.eye(7)[np.array([[2, 5, 6, 6]])])  # right until the end's 0
    done = Fit(None, copy, pairs.for_config(None))  # type: ignore[arg-type]
    name, figure = best_figure(done, pairs, None, 8)
    drawn = lines(figure, 0)
    assert name == "accuracy_by_position"
    assert drawn["LSTM"].tolist() == [1.0, 1.0, 0.0], "the end (position 3) is scored, not 4"
    assert drawn["majority_by_position"].tolist() == [0.0, 0.0, 0.0]
    png(figure)
