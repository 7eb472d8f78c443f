"""The closed-form ridge autoregression: the study's strongest simple baseline, and what a
``residual: ridge`` trial starts from (the network learns its residual). Pure numpy and
scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuner import windowing

RIDGE_MAX_ROWS = 20_000  # windows a ridge is fitted on, at most
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class Ridge:
    """``y = x.reshape(n, -1) @ coef + intercept``: a ridge autoregression in scaled units."""

    coef: np.ndarray  # (window * features, outputs)
    intercept: np.ndarray  # (outputs,)
    alpha: float
    lags: int = 0  # rows of the window it reads (the older rows' coefficients are 0); 0: all
    # the study's ridge baseline, fitted on windows of this length (``rescale``); None: fitted
    # on the trial's own windows
    baseline_window: int | None = None

    def predict(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Predictions for windows ``x`` (a view is flattened a chunk at a time, not at once)."""
        parts = [
            x[i : i + chunk].reshape(len(x[i : i + chunk]), -1) @ self.coef + self.intercept
            for i in range(0, len(x), chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.intercept)))


def fit_ridge(x: np.ndarray, y: np.ndarray) -> Ridge:
    """Ridge regression on the flattened windows, the penalty chosen by efficient leave-one-out
    cross-validation on the same training windows (scikit-learn's ``RidgeCV``)."""
    from sklearn.linear_model import RidgeCV

    if len(x) > RIDGE_MAX_ROWS:  # evenly spaced windows: the closed form stays small and fast
        keep = np.linspace(0, len(x) - 1, RIDGE_MAX_ROWS).round().astype(np.int64)
        x, y = x[keep], y[keep]
    flat = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float64)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(flat, np.asarray(y, dtype=np.float64))
    coef = np.atleast_2d(model.coef_).T.astype(np.float32)  # (features, outputs)
    intercept = np.atleast_1d(model.intercept_).astype(np.float32)
    return Ridge(coef, intercept, float(model.alpha_))


def fit_ridge_ar(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    output_scale: np.ndarray,
    lags: int | None = None,
) -> Ridge:
    """The ridge autoregression of a window: fitted on the last ``lags`` rows of the training
    windows for each of ``ridge_lags(window)``; the fewest lags whose validation MAE
    (``output_scale`` turns errors into the targets' units) is within 1% of the lowest is
    kept. A long window overfits a short series; the choice is made on validation, as every
    hyperparameter is. ``lags`` (a study's ridge baseline chose them) fixes the count instead,
    at most the window. The result reads whole windows: the older rows' coefficients are 0."""
    window, features = x_train.shape[1], x_train.shape[2]

    def error(n: int, ridge: Ridge) -> float:
        pred = ridge.predict(x_val[:, -n:])
        return float(np.mean(np.abs((pred - y_val) * output_scale)))

    tried = ridge_lags(window) if lags is None else [max(1, min(lags, window))]
    fits = {n: fit_ridge(x_train[:, -n:], y_train) for n in tried}
    errors = {n: error(n, fit) for n, fit in fits.items()}
    # the fewest lags within 1% of the best: validation noise does not buy longer memories
    chosen = min(n for n in fits if errors[n] <= 1.01 * min(errors.values()))
    best = fits[chosen]
    coef = np.zeros((window * features, best.coef.shape[1]), dtype=np.float32)
    coef[(window - chosen) * features :] = best.coef
    return Ridge(coef, best.intercept, best.alpha, chosen)


def fit_ridge_baseline(
    values: np.ndarray,
    splits: tuple[slice, slice, slice],
    targets: list[int],
    horizon: int,
    window: int,
    lags: int | None = None,
) -> tuple[Ridge, np.ndarray, np.ndarray]:
    """A study's ridge autoregression baseline: fitted on the training windows of length
    ``window`` with every column standard-scaled on the training split (float64; a constant
    column keeps scale 1), its lag count chosen on validation (``fit_ridge_ar``) unless ``lags``
    is given (the count it chose: the same fit). Returns the ridge, in those units, and the
    scaling's centre and scale of every column."""
    train, val, _ = splits
    center = values[train].mean(axis=0)
    scale = values[train].std(axis=0)
    scale[scale == 0] = 1.0
    scaled = (values - center) / scale
    x_train, y_train = windowing.windows(scaled[train], scaled[train][:, targets], window, horizon)
    rows = windowing.scored_rows(val, window)
    x_val, y_val = windowing.windows(scaled[rows], scaled[rows][:, targets], window, horizon)
    ridge = fit_ridge_ar(x_train, y_train, x_val, y_val, np.tile(scale[targets], horizon), lags)
    return ridge, center, scale


def rescale(
    ridge: Ridge,
    source: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    targets: list[int],
    horizon: int,
    window: int,
) -> Ridge:
    """``ridge`` (fitted in the units of ``source``, each column's ``(center, scale)``, on
    windows of its own length, reading its last ``ridge.lags`` rows) as the same forecasts in
    ``target``'s units, for windows of length ``window`` (at least the lags). Both scalings are
    affine per column, so this is exact: with ``x = c + s * u`` (source) ``= c' + s' * v``
    (target) for every column, and the outputs likewise, ``coef' = coef * s' / s * t / t'`` and
    the intercept takes up the centres' shift."""
    (center, scale), (new_center, new_scale) = source, target
    features, outputs = len(center), ridge.coef.shape[1]
    lags = ridge.lags or len(ridge.coef) // features
    if lags > window:
        raise ValueError(f"a ridge reading {lags} rows does not fit a window of {window}")
    coef = ridge.coef.astype(np.float64).reshape(-1, features, outputs)[-lags:]
    # in source units: u = (x - c) / s = (s' v + c' - c) / s
    shift = ((new_center - center) / scale)[None, :, None]
    intercept = ridge.intercept + (coef * shift).sum(axis=(0, 1))  # source output units
    out_center, out_scale = np.tile(center[targets], horizon), np.tile(scale[targets], horizon)
    to_center = np.tile(new_center[targets], horizon)
    to_scale = np.tile(new_scale[targets], horizon)
    full = np.zeros((window, features, outputs))
    full[window - lags :] = coef * (new_scale / scale)[None, :, None] * (out_scale / to_scale)
    return Ridge(
        full.reshape(window * features, outputs).astype(np.float32),
        ((intercept * out_scale + out_center - to_center) / to_scale).astype(np.float32),
        ridge.alpha,
        lags,
        baseline_window=len(ridge.coef) // features,
    )


def ridge_lags(window: int) -> list[int]:
    """The lag counts a ridge baseline tries: 1, 2, 4, ... doubling below the window, and the
    window. A coarser ladder (the window, its half and quarter, and 1) skipped the few lags a
    short noisy series wants: on fpp2 ``gasoline`` (window 101) it kept 1 lag, 3% worse than the
    last value on test where 2 lags are 6% better; over 26 public series its test MAE was
    0.611x the last value's (geometric mean) against this ladder's 0.585x (README, under B7).

    >>> ridge_lags(48)
    [1, 2, 4, 8, 16, 32, 48]
    """
    return sorted({2**k for k in range(window.bit_length()) if 2**k < window} | {max(1, window)})
