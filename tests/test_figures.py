"""The best model's figures (issue 14), drawn from scripted arrays: no framework, no training."""

from __future__ import annotations

import io

import numpy as np

from tuner.figures import Split, confusion_figure, forecast_figure


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
