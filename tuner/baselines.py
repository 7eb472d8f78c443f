"""Simple baselines every study is measured against, and the closed-form ridge autoregression
that a trial can start from. Pure numpy / scikit-learn: no Keras, no Optuna, no MLflow.

Forecast (on every target of a split, as the trials are scored; errors in the target's units):

- ``naive``: every step ahead repeats the last observed value;
- ``seasonal_naive``: the value one season earlier (``period`` detected on the training split);
- ``ridge_ar``: a ridge regression from the flattened window of every input column to every
  output, fitted in closed form on the training windows (``fit_ridge_ar``: the number of lags,
  up to the window, chosen on validation). A ``residual: ridge`` trial starts from the same.

Classify: ``majority`` (the training split's most frequent class) and ``nearest_neighbour``
(1-NN, Euclidean, on the scaled sequences of the training split; at most ``NN_MAX_REFERENCE`` of
them, evenly spread, on large sets).

Tag (a target per step): labels, ``majority`` and ``per_step`` (a logistic regression on each
step's scaled inputs alone); values, ``mean`` (the training split's mean of each target) and
``per_step`` (a ridge regression on each step's inputs alone). What an LSTM adds over
``per_step`` is what it reads from the steps around.

Seq2seq: ``majority_by_position``, each target position's most frequent token in the training
split (the end included), scored per token as the model is (up to and including each end).

Text: ``majority`` and ``bag_of_words``, a logistic regression on TF-IDF word unigrams and
bigrams of the training split (token ids taken as words), the classic text classifier an LSTM
has to beat.

A baseline informs; it never steers the search (nothing here is reported to Optuna).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner import windowing
from tuner.ridge import fit_ridge_baseline
from tuner.training import metric_name, target_errors

if TYPE_CHECKING:
    from tuner.data import Dataset, Pairs, Sequences, Series, Steps, Texts

NN_MAX_REFERENCE = 5_000  # training sequences 1-NN compares with, at most
# forecast test errors this close (relative) are a tie: a trial that went back to its ridge
# start forecasts what the ridge baseline does, in float32 where the baseline is scored in
# float64 (unscaled data, ``scaler: none``, of a level 10,000 times its spread rounds further)
TIE = 1e-5
# A season is an autocorrelation peak (of the detrended training split) at least this high, and
# this far above the lowest autocorrelation at any shorter lag (a slow decay is no season).
MIN_SEASON_ACF = 0.2
MIN_PROMINENCE = 0.1


# -- season ---------------------------------------------------------------------------------


def detect_period(values: np.ndarray, max_lag: int | None = None) -> int | None:
    """The dominant seasonal period of a 1-D series, or None.

    The series' linear trend is removed (a trend's autocorrelation would hide the season), then
    the autocorrelation's local maxima at lags ``2..max_lag`` that reach ``MIN_SEASON_ACF`` and
    rise at least ``MIN_PROMINENCE`` above the lowest autocorrelation at any earlier lag are
    candidates; the period is the shortest candidate within 10% of the highest (a season's
    multiples peak nearly as high).
    ``max_lag`` defaults to a third of the length.

    >>> t = np.arange(400)
    >>> detect_period(np.sin(2 * np.pi * t / 24))
    24
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    max_lag = min(max_lag or n // 3, n // 2 - 1)
    if max_lag < 3:
        return None
    t = np.arange(n)
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    acf = autocorrelation(x, max_lag)
    low = np.minimum.accumulate(acf)
    peaks = [
        lag
        for lag in range(2, max_lag)
        if acf[lag] >= MIN_SEASON_ACF
        and acf[lag] >= acf[lag - 1]
        and acf[lag] > acf[lag + 1]
        and acf[lag] - low[lag] >= MIN_PROMINENCE
    ]
    if not peaks:
        return None
    best = max(acf[p] for p in peaks)
    return min(p for p in peaks if acf[p] >= 0.9 * best)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags ``0..max_lag`` (FFT; biased estimator, as statsmodels)."""
    x = x - x.mean()
    n = len(x)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, size)
    acov = np.fft.irfft(f * np.conjugate(f), size)[: max_lag + 1] / n
    if acov[0] <= 0:
        return np.zeros(max_lag + 1)
    return acov / acov[0]


def window_range(period: int | None, train_rows: int) -> tuple[int, int]:
    """``window: auto``: one season (at least 4) to three, or 8..64 without a season; both
    bounded by ``rows // 4`` (at least 2; the caller passes the rows that bound). A window
    shorter than a season cannot see the value one season back, the most informative input of a
    seasonal series (elecdemand, season 48: a ridge-start trial with window 47 ended at 2.5x the
    ridge baseline's validation MAE; B8)."""
    low, high = (max(4, period), 3 * period) if period else (8, 64)
    cap = max(2, train_rows // 4)
    high = max(2, min(high, cap))
    return min(low, high), high


# -- forecast -------------------------------------------------------------------------------


def forecast_baselines(
    series: Series, window: int, period: int | None = None
) -> dict[str, dict[str, float]]:
    """``{baseline: {"val_mae_original": .., "val_rmse_original": .., "test_...": ..}}``.

    Every baseline is scored on every target of validation and test (``windowing.scored_rows``,
    as the trials are), in the target's own units, the ridge reading windows of ``window`` rows
    (the space's largest: the ridge start of every trial whose window holds its lags).
    ``period`` (None: detected on the training split of the first target) sets the seasonal
    naive's lag; with no season it is left out.
    """
    train, val, test = series.splits
    targets = series.target_index
    several = series.targets()
    h = series.horizon
    if period is None:
        period = detect_period(series.values[train, targets[0]])
    ridge, center, scale = fit_ridge_baseline(series.values, series.splits, targets, h, window)
    scaled = (series.values - center) / scale
    tiled_center, tiled_scale = np.tile(center[targets], h), np.tile(scale[targets], h)

    def cut(split: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled windows, their targets in original units, and each window's first row."""
        s = windowing.scored_rows(split, window)
        x, _ = windowing.windows(scaled[s], scaled[s][:, targets], window, h)
        y = windowing.windows(series.values[s], series.values[s][:, targets], window, h)[1]
        return x, y, s.start + np.arange(len(x))

    out: dict[str, dict[str, float]] = {}
    for split, s in (("val", val), ("test", test)):
        x, y, first = cut(s)
        origin = first + window - 1  # the last observed row of each window
        preds = {
            "naive": np.tile(series.values[origin][:, targets], h),
            "ridge_ar": ridge.predict(x) * tiled_scale + tiled_center,
        }
        if period:
            preds["seasonal_naive"] = seasonal_naive(series.values[:, targets], origin, h, period)
        for name, pred in preds.items():
            err = pred - y
            out.setdefault(name, {})
            out[name][f"{split}_mae_original"] = float(np.mean(np.abs(err)))
            out[name][f"{split}_rmse_original"] = float(np.sqrt(np.mean(err**2)))
            if several is not None:  # each target's MAE, and nmae: scale-free
                errors = target_errors(err, several)
                out[name].update({f"{split}_{k}": v for k, v in errors.items()})
    out["ridge_ar"]["alpha"] = ridge.alpha
    out["ridge_ar"]["lags"] = float(ridge.lags)
    return out


def seasonal_naive(values: np.ndarray, origin: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """For origin row ``o`` and step ``k`` (0-based), the value at ``o + k + 1 - period * m``
    with ``m = ceil((k + 1) / period)``: the latest observed value of the same phase.
    Rows before the series' start fall back to its first row."""
    cols = []
    for k in range(horizon):
        lag = period * math.ceil((k + 1) / period)
        rows = np.clip(origin + k + 1 - lag, 0, None)
        cols.append(values[rows])
    return np.concatenate(cols, axis=1)


def mase_scale(series: Series, period: int | None) -> float:
    """The in-sample one-step (seasonal) naive MAE on the training split, in the target's units,
    averaged over targets: the denominator of the MASE (Hyndman & Koehler, 2006)."""
    scales = mase_scales(series, period)
    return float(np.mean(scales))


def mase_scales(series: Series, period: int | None) -> list[float]:
    """Each target's MASE denominator (see ``mase_scale``)."""
    train = series.values[series.splits[0]][:, series.target_index]
    m = period or 1
    if len(train) <= m:
        return [math.nan] * train.shape[1]
    return np.mean(np.abs(train[m:] - train[:-m]), axis=0).tolist()


# -- classify -------------------------------------------------------------------------------


def classify_baselines(seqs: Sequences) -> dict[str, dict[str, float]]:
    """``{baseline: {"val_accuracy": .., "test_accuracy": .., "val_loss"?: ..}}``; the majority
    class's loss is the crossentropy of predicting the training split's class frequencies."""
    train, val, test = seqs.splits
    f = seqs.x.shape[2]
    mean = seqs.x[train].reshape(-1, f).mean(axis=0)
    std = seqs.x[train].reshape(-1, f).std(axis=0)
    std[std == 0] = 1.0
    scaled = ((seqs.x - mean) / std).reshape(len(seqs.x), -1)
    y = seqs.y
    reference = train
    if len(train) > NN_MAX_REFERENCE:  # a fixed, evenly spread sample keeps 1-NN affordable
        reference = train[np.linspace(0, len(train) - 1, NN_MAX_REFERENCE).round().astype(int)]
    out = {"majority": majority(y, len(seqs.classes), seqs.splits), "nearest_neighbour": {}}
    for split, idx in (("val", val), ("test", test)):
        pred = y[reference][nearest(scaled[reference], scaled[idx])]
        out["nearest_neighbour"][f"{split}_accuracy"] = float(np.mean(pred == y[idx]))
    return out


def majority(y: np.ndarray, k: int, splits: tuple[np.ndarray, ...]) -> dict[str, float]:
    """The training split's most frequent class: its accuracy and the crossentropy of
    predicting the training split's class frequencies, on validation and test (``y``: a label
    per sample, or per step of each sample)."""
    train, val, test = splits
    freq = np.bincount(y[train].ravel(), minlength=k) / y[train].size
    out: dict[str, float] = {}
    for split, idx in (("val", val), ("test", test)):
        out[f"{split}_accuracy"] = float(np.mean(y[idx] == int(np.argmax(freq))))
        out[f"{split}_loss"] = float(-np.mean(np.log(np.clip(freq[y[idx]], 1e-7, 1.0))))
    return out


def text_baselines(texts: Texts) -> dict[str, dict[str, float]]:
    """``{"majority": .., "bag_of_words": ..}`` with ``val_/test_accuracy`` and ``_loss``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    if texts.tokens is not None:  # ids as words: "12 5 7"
        docs = [" ".join(map(str, row[row != 0])) for row in texts.tokens]
    else:
        assert texts.texts is not None
        docs = list(texts.texts)
    train, val, test = texts.splits
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, max_features=100_000, token_pattern=r"(?u)\b\w+\b"
    )
    try:
        features = vectorizer.fit_transform([docs[i] for i in train])
    except ValueError:  # no word seen twice: fall back to every word
        vectorizer.set_params(min_df=1)
        features = vectorizer.fit_transform([docs[i] for i in train])
    model = LogisticRegression(max_iter=1000).fit(features, texts.y[train])
    k = len(texts.classes)
    words: dict[str, float] = {}
    for split, idx in (("val", val), ("test", test)):
        p = model.predict_proba(vectorizer.transform([docs[i] for i in idx]))
        words[f"{split}_accuracy"] = float(np.mean(model.classes_[p.argmax(1)] == texts.y[idx]))
        words[f"{split}_loss"] = float(
            log_loss(texts.y[idx], p, labels=model.classes_)
            if len(model.classes_) == k
            else math.nan
        )
    return {"majority": majority(texts.y, k, texts.splits), "bag_of_words": words}


STEP_MAX_ROWS = 200_000  # steps the per-step baselines are fitted on, at most


def step_baselines(steps: Steps) -> dict[str, dict[str, float]]:
    """Labels: ``majority`` and ``per_step`` (accuracy; majority also loss); values: ``mean``
    and ``per_step`` (MAE and RMSE in the targets' units)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    train, val, test = steps.splits
    f = steps.x.shape[2]
    flat = steps.x[train].reshape(-1, f)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std == 0] = 1.0

    def rows(idx: np.ndarray) -> np.ndarray:
        return ((steps.x[idx] - mean) / std).reshape(-1, f)

    x_train = rows(train)
    pick = np.arange(len(x_train))
    if len(pick) > STEP_MAX_ROWS:  # an evenly spread sample keeps the fit affordable
        pick = np.linspace(0, len(pick) - 1, STEP_MAX_ROWS).round().astype(int)
    if steps.labels:
        y_train = steps.y[train].ravel()[pick]
        model = LogisticRegression(max_iter=500).fit(x_train[pick], y_train)
        per_step = {
            f"{split}_accuracy": float(np.mean(model.predict(rows(idx)) == steps.y[idx].ravel()))
            for split, idx in (("val", val), ("test", test))
        }
        return {
            "majority": majority(steps.y, len(steps.classes), steps.splits),
            "per_step": per_step,
        }
    o = steps.y.shape[2]
    ridge = Ridge(alpha=1.0).fit(x_train[pick], steps.y[train].reshape(-1, o)[pick])
    center = steps.y[train].reshape(-1, o).mean(axis=0)
    out: dict[str, dict[str, float]] = {"mean": {}, "per_step": {}}
    for split, idx in (("val", val), ("test", test)):
        actual = steps.y[idx].reshape(-1, o)
        fitted = ridge.predict(rows(idx)).reshape(-1, o)  # one target: sklearn gives (n,)
        for name, pred in (("mean", center[None, :]), ("per_step", fitted)):
            err = actual - pred
            out[name][f"{split}_mae_original"] = float(np.mean(np.abs(err)))
            out[name][f"{split}_rmse_original"] = float(np.sqrt(np.mean(err**2)))
    return out


def token_mask(target: np.ndarray) -> np.ndarray:
    """The target positions a seq2seq model is scored on: every real token and the end (the
    first padding), not the padding after it (the decoder's input there is padding: masked)."""
    return np.concatenate([np.ones((len(target), 1), bool), target[:, :-1] != 0], axis=1)


def majority_tokens(pairs: Pairs) -> np.ndarray:
    """Each target position's most frequent token in the training split."""
    target = pairs.target[pairs.splits[0]]
    return np.array(
        [
            np.bincount(target[:, t], minlength=pairs.target_vocab).argmax()
            for t in range(target.shape[1])
        ]
    )


def pair_baselines(pairs: Pairs) -> dict[str, dict[str, float]]:
    """``{"majority_by_position": {"val_accuracy": .., "test_accuracy": ..}}``."""
    _, val, test = pairs.splits
    target = pairs.target
    guess = majority_tokens(pairs)
    scores = {}
    for split, idx in (("val", val), ("test", test)):
        mask = token_mask(target[idx])
        scores[f"{split}_accuracy"] = float(np.mean((target[idx] == guess[None, :])[mask]))
    return {"majority_by_position": scores}


def nearest(reference: np.ndarray, queries: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Index in ``reference`` of each query's nearest row (Euclidean), in chunks of queries."""
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d = ref_sq[None, :] - 2.0 * q @ reference.T  # + |q|^2, the same for every reference
        out[start : start + chunk] = np.argmin(d, axis=1)
    return out


# -- the study's figures --------------------------------------------------------------------


def compute(dataset: Dataset, window: int, season: int | None = None) -> dict[str, Any]:
    """The baselines of a study, as stored on it: ``{"task", "period", "scores": {...},
    "best": name, "metric": the error they are compared on, "mase_scale"?}``."""
    if dataset.task == "tag":
        scores = step_baselines(dataset)  # type: ignore[arg-type]
        metric = dataset.metric
        pick = max if metric == "accuracy" else min
        best = pick(scores, key=lambda n: scores[n][f"val_{metric}"])
        return {"task": "tag", "scores": scores, "best": best, "metric": metric}
    if dataset.task in ("classify", "text", "seq2seq"):
        if dataset.task == "classify":
            scores = classify_baselines(dataset)  # type: ignore[arg-type]
        elif dataset.task == "text":
            scores = text_baselines(dataset)  # type: ignore[arg-type]
        else:
            scores = pair_baselines(dataset)  # type: ignore[arg-type]
        best = max(scores, key=lambda n: scores[n]["val_accuracy"])
        return {"task": dataset.task, "scores": scores, "best": best, "metric": "accuracy"}
    series: Series = dataset  # type: ignore[assignment]
    period = season or detect_period(series.values[series.splits[0], series.target_index[0]])
    scores = forecast_baselines(series, window, period)
    metric = series.metric
    best = min(scores, key=lambda n: scores[n][f"val_{metric}"])  # chosen on validation
    out: dict[str, Any] = {
        "task": "forecast",
        "period": period,
        "window": window,
        "scores": scores,
        "best": best,
        "metric": metric,
        "mase_scale": mase_scale(series, period),
    }
    several = series.targets()
    if several is not None:  # each target's MASE denominator, for a MASE per target
        scales = mase_scales(series, period)
        out["mase_scales"] = {metric_name(n): s for n, s in zip(several.names, scales, strict=True)}
    return out


def metric_of(baselines: dict[str, Any]) -> str:
    """What the baselines are compared on: ``mae_original`` or ``nmae`` (errors) or
    ``accuracy``."""
    default = "mae_original" if baselines.get("task") == "forecast" else "accuracy"
    return str(baselines.get("metric", default))


def skill(baselines: dict[str, Any], trial_metrics: dict[str, float]) -> dict[str, float]:
    """How the trial compares: ``skill_val`` / ``skill_test`` are the trial's error over the
    best baseline's (below 1: the trial is better; for classifiers the error is 1 - accuracy),
    and ``mase_test`` for forecasts (several targets: the mean of each one's MASE, with
    ``mase_test_<target>``). Missing metrics are left out."""
    out: dict[str, float] = {}
    best = baselines["scores"][baselines["best"]]
    metric = metric_of(baselines)
    for split in ("val", "test"):
        if metric != "accuracy":
            mine = trial_metrics.get(
                f"best_{split}_{metric}", trial_metrics.get(f"{split}_{metric}")
            )
            theirs = best.get(f"{split}_{metric}")
        else:
            acc = trial_metrics.get(
                f"best_{split}_accuracy", trial_metrics.get(f"{split}_accuracy")
            )
            mine = None if acc is None else 1.0 - acc
            theirs = best.get(f"{split}_accuracy")
            theirs = None if theirs is None else 1.0 - theirs
        if mine is not None and theirs is not None:
            out[f"skill_{split}"] = mine / theirs if theirs > 0 else (math.inf if mine > 0 else 1.0)
    scales = baselines.get("mase_scales")
    if scales:  # several targets: a MASE each, and their mean
        each = {
            name: trial_metrics[f"test_{name}"] / s
            for name, s in scales.items()
            if f"test_{name}" in trial_metrics and s and math.isfinite(s)
        }
        out.update({f"mase_test_{name[len('mae_') :]}": v for name, v in each.items()})
        if len(each) == len(scales):
            out["mase_test"] = float(np.mean(list(each.values())))
        return out
    scale = baselines.get("mase_scale")
    test_mae = trial_metrics.get("test_mae_original")
    if scale and test_mae is not None and math.isfinite(scale):
        out["mase_test"] = test_mae / scale
    return out


def compare(
    baselines: dict[str, Any], trial_attrs: dict[str, Any] | None, who: str = "the tuned LSTM"
) -> dict[str, Any]:
    """The study's baselines and how its best trial (its user attributes) compares: ``skill``,
    ``beats_baselines`` (its test error below every baseline's) and ``verdict``, one plain
    sentence that says so when the tuned model did not beat them (``who``: the model, in
    words)."""
    out: dict[str, Any] = {
        "metric": metric_of(baselines),
        "best_baseline": baselines["best"],
        "season": baselines.get("period"),
        "baselines": baselines["scores"],
    }
    if trial_attrs is None:
        return out
    out["skill"] = skill(baselines, trial_attrs)
    metric = metric_of(baselines)
    forecast = metric != "accuracy"  # an error (forecasts, per-step values)
    key = f"test_{metric}"
    names = {"mae_original": "test MAE", "nmae": "test MAE / target's std (mean over targets)"}
    what = names.get(metric, "test accuracy")
    mine = trial_attrs.get(key)
    if mine is None:
        out["beats_baselines"] = None
        out["verdict"] = "the best trial has no test score (its model was not evaluated)"
        return out
    theirs = {n: s[key] for n, s in baselines["scores"].items() if key in s}
    rival = (min if forecast else max)(theirs, key=theirs.__getitem__)
    tie = math.isclose(mine, theirs[rival], rel_tol=TIE if forecast else 0.0)
    beats = not tie and all((mine < v) if forecast else (mine > v) for v in theirs.values())
    out["beats_baselines"] = beats
    unit = " (target's units)" if metric == "mae_original" else ""
    scores = f"{what} {mine:.4g}{unit} vs {theirs[rival]:.4g}"
    if beats:
        out["verdict"] = f"{who} beats every baseline: {scores} for the best of them ({rival})"
    elif tie:  # a perfect score on both sides, or a trial gone back to the ridge baseline
        out["verdict"] = (
            f"{who} ties the best baseline: {scores} for {rival}; the simpler model does as well"
        )
    else:
        out["verdict"] = (
            f"{who} does NOT beat the simple baselines: {scores} for {rival}; prefer {rival}, "
            "or search longer or wider"
        )
    return out
