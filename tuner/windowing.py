"""Chronological splits and sliding windows, as numpy views (no copy per trial).

Indices, for a series of ``n = 10`` rows, ``length = 3`` and ``horizon = 2``::

    window 0: inputs rows [0, 1, 2]  -> targets rows [3, 4]
    window 1: inputs rows [1, 2, 3]  -> targets rows [4, 5]
    ...
    window 5: inputs rows [5, 6, 7]  -> targets rows [8, 9]      (n - length - horizon + 1 = 6)

A window's targets lie in one split. A training window's inputs do too; a validation or test
window's inputs may reach back into the rows before its split (``scored_rows``): they were observed
before its first target, as they would be in use. So windows of every length forecast the same
targets, all of the split's, and trials of different windows and the baselines are scored alike.
Cut inside the split, a window of 11 left 35 of sunspots' 46 validation targets and one of 22 left
24: the study's ridge baseline itself scored 11% lower with the shorter window, and the search
compared trials on different targets.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def split_bounds(n: int, val_fraction: float, test_fraction: float) -> tuple[slice, slice, slice]:
    """Row ranges of train, validation and test, in time order: ``[0, a) [a, b) [b, n)``.

    >>> split_bounds(100, 0.15, 0.15)
    (slice(0, 70, None), slice(70, 85, None), slice(85, 100, None))
    """
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    a, b = n - n_val - n_test, n - n_test
    return slice(0, a), slice(a, b), slice(b, n)


def scored_rows(split: slice, length: int) -> slice:
    """The rows whose windows of ``length`` forecast the targets of ``split``: the split, and
    the ``length`` rows before it for the inputs of its first windows (none before row 0).

    >>> scored_rows(slice(70, 85), 5), scored_rows(slice(0, 70), 5)
    (slice(65, 85, None), slice(0, 70, None))
    """
    return slice(max(0, split.start - length), split.stop)


def count(n: int, length: int, horizon: int) -> int:
    """Number of windows in ``n`` rows (0 if the rows are too few)."""
    return max(0, n - length - horizon + 1)


def windows(
    inputs: np.ndarray, targets: np.ndarray, length: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows over the rows given (a split, or ``scored_rows`` of one).

    ``inputs`` is ``(n, features)``, ``targets`` is ``(n, n_targets)``. Returns ``x`` of shape
    ``(N, length, features)`` (a read-only view of ``inputs``) and ``y`` of shape
    ``(N, horizon * n_targets)``, step-major: ``y[i] = targets[i + length : i + length + horizon]``
    flattened. ``N = n - length - horizon + 1``.
    """
    n = len(inputs)
    N = count(n, length, horizon)
    if N == 0:
        raise ValueError(
            f"{n} rows hold no window of length={length} and horizon={horizon}; "
            f"need at least {length + horizon}"
        )
    # sliding_window_view puts the window axis last: (n - length + 1, features, length).
    x = sliding_window_view(inputs, length, axis=0).transpose(0, 2, 1)[:N]
    y = sliding_window_view(targets[length:], horizon, axis=0).transpose(0, 2, 1)[:N]
    return x, y.reshape(N, horizon * targets.shape[1])
