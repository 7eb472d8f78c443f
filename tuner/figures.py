"""What a person looks at first about a best model (issue 14), as PNG figures for MLflow:
a forecast's one-step-ahead predictions against the actual series on the validation and test
splits, with the naive and seasonal-naive forecasts on the same axes; a classifier's confusion
matrix on the test split. Matplotlib only (no framework): the caller predicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Split:
    """One split's first target, one step ahead, in its own units: the actual values, the
    model's forecasts and each baseline's (name -> values)."""

    name: str
    actual: np.ndarray
    predicted: np.ndarray
    baselines: dict[str, np.ndarray]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def forecast_figure(splits: list[Split], target: str) -> Any:
    """One panel per split: actual, the model, and the baselines, each with its MAE."""
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
        ax.set_title(f"{split.name}: {target}, one step ahead")
        ax.set_xlabel(f"window of the {split.name} split")
        ax.set_ylabel(target)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(actual: np.ndarray, predicted: np.ndarray, classes: list[Any]) -> Any:
    """Counts of each actual class (rows) predicted as each class (columns), test split."""
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
    ax.set_title(f"test split: {counts.sum()} sequences, accuracy {accuracy:.3f}")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    fig.tight_layout()
    return fig
