"""What a person looks at first about a best model (issue 14), as PNG figures for MLflow:
a forecast's one-step-ahead predictions against the actual series on the validation and test
splits, with the naive and seasonal-naive forecasts on the same axes (a stateful forecast's
too, read in order); a tagger's values per step against the actual ones on a few test
sequences; a classifier's or a labelling tagger's confusion matrix on the test split; a seq2seq
model's token accuracy at each target position against the baseline's. Matplotlib only (no
framework): the caller predicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Split:
    """One panel: a split's first target, one step ahead (or one sequence's steps), in its own
    units: the actual values, the model's and each baseline's (name -> values)."""

    name: str
    actual: np.ndarray
    predicted: np.ndarray
    baselines: dict[str, np.ndarray]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def forecast_figure(
    splits: list[Split],
    target: str,
    what: str = "one step ahead",
    axis: str = "window of the {} split",
) -> Any:
    """One panel per split: actual, the model, and the baselines, each with its MAE. ``what``
    ends each panel's title, ``axis`` (formatted with the panel's name) labels its x axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(splits), 1, figsize=(11, 3.6 * len(splits)), squeeze=False)
    for ax, split in zip(axes[:, 0], splits, strict=True):
        steps = np.arange(len(split.actual))
        ax.plot(steps, split.actual, color="black", linewidth=1.4, label="actual")
        mae = float(np.mean(np.abs(split.predicted - split.actual)))
        ax.plot(steps, split.predicted, color="tab:blue", label=f"LSTM (MAE {mae:.4g})")
        for (name, values), color in zip(
            split.baselines.items(), ("tab:orange", "tab:green"), strict=False
        ):
            err = float(np.mean(np.abs(values - split.actual)))
            ax.plot(
                steps, values, color=color, linewidth=0.9, alpha=0.8, label=f"{name} ({err:.4g})"
            )
        ax.set_title(f"{split.name}: {target}, {what}")
        ax.set_xlabel(axis.format(split.name))
        ax.set_ylabel(target)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(
    actual: np.ndarray, predicted: np.ndarray, classes: list[Any], unit: str = "sequences"
) -> Any:
    """Counts of each actual class (rows) predicted as each class (columns), test split; what is
    counted is ``unit`` (a tagger's: steps)."""
    plt = _pyplot()
    k = len(classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (actual.astype(int), predicted.astype(int)), 1)
    size = min(12.0, 2.5 + 0.6 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                color = "white" if counts[i, j] > counts.max() / 2 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=color)
    accuracy = float(np.trace(counts) / max(1, counts.sum()))
    ax.set_title(f"test split: {counts.sum()} {unit}, accuracy {accuracy:.3f}")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    fig.tight_layout()
    return fig


def position_figure(model: np.ndarray, baseline: np.ndarray, counts: np.ndarray) -> Any:
    """A seq2seq model's token accuracy at each target position of the test split (teacher
    forcing, as it is scored), against ``majority_by_position``'s; ``counts`` is how many
    scored tokens each position holds (positions after every target's end hold none)."""
    plt = _pyplot()
    positions = np.flatnonzero(counts)
    fig, ax = plt.subplots(figsize=(11, 4))
    total = max(1, int(counts.sum()))
    for values, label, color in (
        (model, "LSTM", "tab:blue"),
        (baseline, "majority_by_position", "tab:orange"),
    ):
        overall = float(np.sum(values * counts) / total)
        ax.plot(
            positions + 1,
            values[positions],
            marker="o",
            color=color,
            label=f"{label} ({overall:.3f} over all tokens)",
        )
    ax.set_ylim(0, 1.02)
    ax.set_title(f"test split: token accuracy by target position ({total} tokens)")
    ax.set_xlabel("target position (1 = the first token)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
