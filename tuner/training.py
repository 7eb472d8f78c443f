"""Compile and train one model, reporting every epoch; errors in original units.

``train`` knows nothing of Optuna or MLflow: it calls ``report(epoch, logs) -> bool`` after each
epoch and stops when that returns True (pruned) or when the loss is not finite (diverged).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.config import KEEP_LEVEL, TrialConfig

if TYPE_CHECKING:
    import keras

    from tuner.data import Arrays, Stream, Targets

Report = Callable[[int, dict[str, float]], bool]


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str | None = None  # None (ran its budget or stopped early), "pruned", "diverged"
    stopped_epoch: int | None = None
    best_value: float | None = None
    best_epoch: int | None = None
    # A residual model: the one-sided p-value of its network's gain over its start on
    # validation, and the start's validation scores when the model went back to it
    start_p: float | None = None
    start_logs: dict[str, float] | None = None


def verdict(logs: dict[str, float], objective: str) -> str | None:
    """``"diverged"`` when the training loss or the objective is NaN or infinite."""
    for key in ("loss", objective):
        value = logs.get(key)
        if value is None or not math.isfinite(value):
            return "diverged"
    return None


def best_of(history: list[dict[str, float]], objective: str, direction: str) -> tuple[float, int]:
    """The best objective value over the epochs and its epoch (first one on ties)."""
    values = [h[objective] for h in history]
    pick = max if direction == "maximize" else min
    value = pick(values)
    return value, values.index(value)


# A residual model (``residual`` not none) is, before training, its start: its head and highway
# begin at zero, so it forecasts what the ridge autoregression, the last value or the window's
# mean does. It keeps what its network learned only when that beats the start on validation
# beyond noise, by a one-sided Diebold-Mariano test (``improvement_p``) at its config's
# ``keep_level``: ``KEEP_LEVEL`` (5%, in config.py) spent over a study's trials (``keep_level``;
# nominal: the trained weights are the best epoch's on the same split, which favours them); else
# it goes back to the start. Picking the best of many epochs on a noisy validation split
# otherwise hands back a model that is better there by chance and worse on new data
# (elecdemand: the LSTM on the ridge's residual was 0.1-1.0% better than the ridge on
# validation over 3 seeds, never significantly, and 0.3-1.0% worse on test).


def keep_level(judged: int) -> float:
    """The level the ``judged``-th residual trial a study judges (1-based) keeps its training
    below: ``KEEP_LEVEL`` spent over the study, 6 / (pi^2 k^2) of it on the k-th (the shares
    sum to one). A study hands back its best trial on validation, and a trial kept by chance
    is the one with the largest gain there: at ``KEEP_LEVEL`` for each, the chance that a study
    keeps some trial by chance grows with the trials it judges (B7, sunspots: its pick was a
    trial kept at p = 0.047, worse on test than its start). Spent so, it stays below
    ``KEEP_LEVEL`` however many it judges; a later trial needs more evidence (B13 measures
    what that costs).

    >>> [round(keep_level(k), 4) for k in (1, 2, 3, 10)]
    [0.0304, 0.0076, 0.0034, 0.0003]
    """
    if judged < 1:
        raise ValueError(f"judged counts from 1, got {judged}")
    return KEEP_LEVEL * 6 / (math.pi**2 * judged**2)


def window_losses(
    err: np.ndarray,
    objective: str,
    scale: np.ndarray,
    loss: str,
    targets: Targets | None = None,
) -> np.ndarray | None:
    """Each validation window's share of ``objective``, from its errors in scaled units
    ``(windows, outputs)``: the objective is their mean (RMSE: the root of their mean). None for
    an objective that is not a mean over windows of their errors.

    >>> window_losses(np.array([[1.0, -3.0], [0.5, 0.5]]), "val_mae_original", np.ones(2), "mse")
    array([2. , 0.5])
    """
    name = objective.removeprefix("val_")
    original = err * scale
    if name == "mae_original":
        return np.abs(original).mean(axis=1)
    if name == "rmse_original":
        return (original**2).mean(axis=1)
    if name == "loss":
        size = np.abs(err)
        per = {"mse": err**2, "mae": size, "huber": np.where(size <= 1, 0.5 * err**2, size - 0.5)}
        return per[loss].mean(axis=1) if loss in per else None
    if targets is not None:
        k = len(targets.names)
        each = np.abs(original).reshape(len(err), -1, k).mean(axis=1)  # (windows, targets)
        if name == "nmae":
            return (each / targets.units).mean(axis=1)
        for j, target in enumerate(targets.names):
            if name == metric_name(target):
                return each[:, j]
    return None


def improvement_p(trained: np.ndarray, start: np.ndarray, horizon: int) -> float:
    """The one-sided p-value that ``trained``'s expected loss is below ``start``'s, from their
    losses on the same consecutive windows: the Diebold-Mariano test, the loss differences'
    long-run variance by Newey and West (Bartlett weights up to lag
    ``max(horizon - 1, floor(4 (n / 100) ** (2 / 9)))``: neighbouring windows' differences are
    correlated even one step ahead, and the plain variance then finds gains in noise), against
    Student's t with n - 1 degrees of freedom.

    >>> round(improvement_p(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5, 3.5, 5.0]), 1), 4)
    0.0031
    """
    from scipy import stats

    d = np.asarray(trained, np.float64) - np.asarray(start, np.float64)
    n = len(d)
    if n < 2:
        return 1.0
    mean = float(d.mean())
    c = d - mean
    lags = min(n - 1, max(horizon - 1, math.floor(4 * (n / 100) ** (2 / 9))))
    var = float(c @ c) / n
    for k in range(1, lags + 1):
        var += 2 * (1 - k / (lags + 1)) * float(c[k:] @ c[: n - k]) / n
    if var <= 0:  # the same difference on every window
        return 0.0 if mean < 0 else 1.0
    return float(stats.t.cdf(mean / math.sqrt(var / n), df=n - 1))


def make_schedule(config: TrialConfig, steps_per_epoch: int) -> Any:
    """The learning rate, constant or as a Keras schedule over ``config.epochs``."""
    import keras

    s = keras.optimizers.schedules
    lr = config.learning_rate
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return lr
    if config.schedule == "exponential":
        return s.ExponentialDecay(lr, decay_steps=config.decay_steps, decay_rate=config.decay_rate)
    if config.schedule == "cosine":
        return s.CosineDecay(lr, decay_steps=total)
    if config.schedule == "cosine_restarts":
        return s.CosineDecayRestarts(lr, first_decay_steps=config.restart_epochs * steps_per_epoch)
    if config.schedule == "one_cycle":  # warm up from lr/25 over 30% of steps, then cosine down
        warmup = max(1, int(0.3 * total))
        return s.CosineDecay(
            lr / 25, decay_steps=max(1, total - warmup), warmup_target=lr, warmup_steps=warmup
        )
    raise ValueError(f"unknown schedule {config.schedule!r}")


def make_optimizer(config: TrialConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    import keras

    o = keras.optimizers
    lr = make_schedule(config, steps_per_epoch)
    common: dict[str, Any] = {"clipnorm": config.clipnorm or None}
    if config.optimizer == "adam":
        return o.Adam(lr, **common)
    if config.optimizer == "adamw":
        return o.AdamW(lr, weight_decay=config.weight_decay, **common)
    if config.optimizer == "rmsprop":
        return o.RMSprop(lr, momentum=config.momentum, **common)
    if config.optimizer == "sgd":
        return o.SGD(lr, momentum=config.momentum, nesterov=config.nesterov, **common)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def metric_name(target: str) -> str:
    """``mae_<target>``, the target's name kept to what MLflow accepts in a metric's name."""
    return "mae_" + re.sub(r"[^A-Za-z0-9_.-]", "_", target)


def target_errors(err: np.ndarray, targets: Targets) -> dict[str, float]:
    """From errors in the targets' units, ``(samples, horizon * targets)`` step-major: each
    target's MAE (``mae_<target>``) and ``nmae``, the mean over targets of MAE / unit."""
    per = np.abs(err).reshape(len(err), -1, len(targets.names)).mean(axis=(0, 1))
    out = {metric_name(n): float(v) for n, v in zip(targets.names, per, strict=True)}
    out["nmae"] = float(np.mean(per / targets.units))
    return out


def loss_and_metrics(
    config: TrialConfig,
    task: str,
    n_outputs: int,
    output_scale: np.ndarray | None,
    targets: Targets | None = None,
) -> tuple[Any, list[Any]]:
    """The loss and metrics to compile with.

    Forecasts and per-step regressions (``tag`` with an ``output_scale``) also get
    ``mae_original`` and ``rmse_original``: the errors in the target's own units (the scaled
    error times each output's scale: every scaler is affine), the same for every scaler and
    loss, so trials compare fairly. Being compiled metrics, they come with every
    epoch's validation pass and with ``evaluate``: no separate prediction pass is needed.
    With several ``targets`` (whose units differ) also each one's ``mae_<target>`` and
    ``nmae``, the mean over targets of each one's MAE in its units: scale-free.
    """
    import keras

    if task in ("classify", "text"):
        loss = "binary_crossentropy" if n_outputs == 1 else "sparse_categorical_crossentropy"
        return loss, ["accuracy"]
    if task in ("tag", "seq2seq") and output_scale is None:  # a softmax per step
        return "sparse_categorical_crossentropy", ["accuracy"]
    losses = {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}
    scale = (
        np.ones(n_outputs, "float32") if output_scale is None else output_scale.astype("float32")
    )

    def times(values: Any, factors: np.ndarray) -> Any:
        """``values * factors`` on every backend (a torch tensor does not multiply by numpy)."""
        return values * keras.ops.convert_to_tensor(factors, dtype=values.dtype)

    def mae_original(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(times(keras.ops.abs(y_true - y_pred), scale), axis=-1)

    class RmseOriginal(keras.metrics.RootMeanSquaredError):
        """RMSE over every output of every sample of the pass, in the target's units."""

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            y_true = keras.ops.cast(y_true, y_pred.dtype)
            return super().update_state(times(y_true, scale), times(y_pred, scale), sample_weight)

    metrics: list[Any] = [
        keras.metrics.MeanMetricWrapper(mae_original, "mae_original"),
        RmseOriginal(name="rmse_original"),
    ]
    if targets is not None:
        k = len(targets.names)
        per_unit = (scale / np.tile(targets.units, n_outputs // k)).astype("float32")

        def nmae(y_true: Any, y_pred: Any) -> Any:
            return keras.ops.mean(times(keras.ops.abs(y_true - y_pred), per_unit), axis=-1)

        metrics.append(keras.metrics.MeanMetricWrapper(nmae, "nmae"))
        for j, name in enumerate(targets.names):
            columns = list(range(j, n_outputs, k))  # the target's output at every step ahead

            def one(y_true: Any, y_pred: Any, columns: list[int] = columns) -> Any:
                err = keras.ops.take(keras.ops.abs(y_true - y_pred), columns, axis=-1)
                return keras.ops.mean(times(err, scale[columns]), axis=-1)

            metrics.append(keras.metrics.MeanMetricWrapper(one, metric_name(name)))
    return losses[config.loss], metrics


def train(
    model: keras.Model,
    arrays: Arrays | Stream,
    config: TrialConfig,
    *,
    task: str,
    n_outputs: int,
    objective: str,
    direction: str,
    report: Report,
    scale: np.ndarray | None = None,
    validate: Callable[[keras.Model], dict[str, float]] | None = None,
    targets: Targets | None = None,
) -> TrainResult:
    """Compile and fit, reporting every epoch. ``scale``: each output's scale, for errors in
    the target's own units (forecasts, per-step regressions); None for classifiers.

    ``validate`` (stateful models, ``arrays`` a ``Stream``): the epoch's validation scores come
    from it instead of a validation pass; the training segments are read in order, never
    shuffled or repeated, and the states are reset at the start of every epoch."""
    import keras

    class Epochs(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.result = TrainResult()
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items()}
            values["epoch_seconds"] = time.perf_counter() - self.started
            self.result.history.append(values)
            stop = report(epoch, values)
            reason = verdict(values, objective) or ("pruned" if stop else None)
            if reason is not None:
                self.result.stopped, self.result.stopped_epoch = reason, epoch
                self.model.stop_training = True

    class Ordered(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            reset_states(self.model)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            assert validate is not None and logs is not None
            logs.update(validate(self.model))

    from tuner.data import Stream

    stateful = isinstance(arrays, Stream)
    if stateful != (validate is not None):
        raise ValueError("a stateful model's data (a Stream) comes with its validate function")
    validation_data = None
    if isinstance(arrays, Stream):
        x_train, y_train, batch_size = arrays.x_train, arrays.y_train, arrays.streams
    else:
        x_train, y_train = cycled(arrays.x_train, arrays.y_train, config)
        batch_size, validation_data = config.batch_size, (arrays.x_val, arrays.y_val)
    steps = math.ceil(len(y_train) / batch_size)
    loss, metrics = loss_and_metrics(config, task, n_outputs, scale, targets)
    model.compile(optimizer=make_optimizer(config, steps), loss=loss, metrics=metrics)
    epochs = Epochs()
    keep_best = keras.callbacks.EarlyStopping(
        monitor=objective,
        mode="max" if direction == "maximize" else "min",
        patience=config.patience or config.epochs,
        restore_best_weights=True,
    )
    fed = (
        None if stateful else batched(x_train, y_train, batch_size, shuffle=True, seed=config.seed)
    )
    if fed is not None and validation_data is not None:
        x_val, y_val = validation_data
        validation_data = (
            batched(x_val, y_val, batch_size, shuffle=False, seed=0) or validation_data
        )
    start = None  # a residual forecaster's start, to go back to (errors: minimized)
    if (
        task == "forecast"
        and config.residual != "none"
        and direction == "minimize"
        and not isinstance(arrays, Stream)
    ):
        start = Start.of(
            model,
            arrays,
            validation_data,
            batch_size,
            objective,
            scale,
            config.loss,
            targets,
            config.keep_level,
        )
    model.fit(
        x_train if fed is None else fed,
        y_train if fed is None else None,
        validation_data=validation_data,
        epochs=config.epochs,
        batch_size=batch_size if fed is None else None,
        shuffle=fed is None and not stateful,  # a PyDataset shuffles itself
        verbose=0,
        callbacks=[*([Ordered()] if stateful else []), epochs, keep_best],
    )
    result = epochs.result
    finite = [h for h in result.history if verdict(h, objective) is None]
    if finite and result.stopped != "diverged":
        result.best_value, result.best_epoch = best_of(finite, objective, direction)
    if start is not None and result.stopped is None and result.best_value is not None:
        start.judge(model, result)
    return result


@dataclass
class Start:
    """What a residual model forecasts before training (its weights, its validation scores and
    each validation window's loss), to go back to when training did not beat it beyond noise
    (``KEEP_LEVEL``)."""

    weights: list[np.ndarray]
    logs: dict[str, float]  # validation scores, as an epoch's (``val_`` names)
    losses: np.ndarray  # each validation window's share of the objective
    x_val: Any
    y_val: np.ndarray
    objective: str
    scale: np.ndarray
    loss: str
    targets: Targets | None
    horizon: int
    level: float = KEEP_LEVEL  # it keeps its training below this p (``keep_level``)

    @classmethod
    def of(
        cls,
        model: keras.Model,
        arrays: Arrays,
        validation_data: Any,
        batch_size: int,
        objective: str,
        scale: np.ndarray | None,
        loss: str,
        targets: Targets | None,
        level: float = KEEP_LEVEL,
    ) -> Start | None:
        """The compiled ``model``'s start; None when the objective is not a mean of window
        losses (``window_losses``) or the inputs are not one array."""
        if scale is None or isinstance(arrays.x_val, dict) or len(arrays.y_val) < 2:
            return None
        if objective == "val_loss" and model.losses:  # it holds penalties the test cannot see
            return None
        outputs = arrays.y_val.shape[-1]
        horizon = outputs // (len(targets.names) if targets is not None else 1)
        start = cls(
            [w.copy() for w in model.get_weights()],
            {},
            np.zeros(0),
            arrays.x_val,
            arrays.y_val,
            objective,
            scale,
            loss,
            targets,
            horizon,
            level,
        )
        losses = start.window_losses(model)
        if losses is None:
            return None
        start.losses = losses
        if isinstance(validation_data, tuple):  # arrays, in the validation pass's batches
            x, y = validation_data
            scores = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
        else:  # batches copied out of the windows one at a time
            scores = model.evaluate(validation_data, verbose=0, return_dict=True)
        start.logs = {f"val_{k}": float(v) for k, v in scores.items()}
        return start if objective in start.logs else None

    def window_losses(self, model: keras.Model) -> np.ndarray | None:
        chunk = 4096  # windows are views of the series: copied a chunk at a time
        pred = np.concatenate(
            [
                np.asarray(model.predict_on_batch(np.ascontiguousarray(self.x_val[i : i + chunk])))
                for i in range(0, len(self.y_val), chunk)
            ]
        )
        err = pred.reshape(self.y_val.shape) - self.y_val
        return window_losses(err, self.objective, self.scale, self.loss, self.targets)

    def judge(self, model: keras.Model, result: TrainResult) -> None:
        """Keep the trained weights if they beat the start (``result.start_p`` below
        ``level``), else put the start's back (``result.start_logs``, its value)."""
        trained = self.window_losses(model)
        assert trained is not None
        result.start_p = improvement_p(trained, self.losses, self.horizon)
        if result.start_p < self.level:
            return
        model.set_weights(self.weights)
        result.start_logs = dict(self.logs)
        result.best_value = self.logs[self.objective]


# Inputs whose copy would be larger go to Keras batch by batch. B9 at 1,000,000 rows, window
# 64: with 256 the validation windows (77 MiB) were still copied whole, 7.6x the series' size.
IN_MEMORY_MIB = 64.0
BATCHES_ENV = "TUNER_IN_MEMORY_MIB"  # overrides IN_MEMORY_MIB (tests: 0 sends every input so)


def materialized_mib(x: Any) -> float:
    """What a copy of ``x`` takes (windows are views of the series: a copy is window x larger)."""
    arrays = x.values() if isinstance(x, dict) else [x]
    return sum(a.size * a.itemsize for a in arrays) / 2**20


def batched(x: Any, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int) -> Any:
    """``(x, y)`` as Keras should get them: the arrays themselves when their copy is small,
    else a ``keras.utils.PyDataset`` that copies one batch at a time out of the views (a
    window is ``window`` rows of the series: copying every window at once takes ``window``
    times the series' memory). Shuffled every epoch when ``shuffle``."""
    import os

    limit = float(os.environ.get(BATCHES_ENV, IN_MEMORY_MIB))
    if isinstance(x, dict) or materialized_mib(x) <= limit:
        return None
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.order = np.arange(len(y))
            self.rng = np.random.default_rng(seed)
            if shuffle:
                self.rng.shuffle(self.order)

        def __len__(self) -> int:
            return math.ceil(len(y) / batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            rows = np.sort(self.order[i * batch_size : (i + 1) * batch_size])
            return np.ascontiguousarray(x[rows]), np.ascontiguousarray(y[rows])

        def on_epoch_end(self) -> None:
            if shuffle:
                self.rng.shuffle(self.order)

    return Batches()


def reset_states(model: keras.Model) -> None:
    """Forget what a stateful model's layers carried over (``reset_state`` of each)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


class OrderedPass:
    """A stateful forecaster scored as it is used: ``model`` (the same architecture, batch size
    1) takes the trained weights and reads the whole series in order, its state carried from
    the first row; the forecasts made at the given origin rows are compared with their targets
    (loss in scaled units, MAE and RMSE in the targets' units)."""

    def __init__(
        self,
        model: keras.Model,
        stream: Stream,
        scale: np.ndarray,
        loss: str,
        targets: Targets | None = None,
    ) -> None:
        self.model, self.stream, self.scale, self.loss = model, stream, scale, loss
        self.targets = targets

    def forecasts(self, trained: keras.Model) -> np.ndarray:
        """``(rows, n_outputs)``: the forecast made at every row from ``stream.start`` on."""
        self.model.set_weights(trained.get_weights())
        reset_states(self.model)
        out = self.model.predict(self.stream.x_all, batch_size=1, verbose=0)
        return out.reshape(-1, out.shape[-1])

    def scores(self, trained: keras.Model, origins: np.ndarray, prefix: str) -> dict[str, float]:
        at = origins - self.stream.start
        err = self.forecasts(trained)[at] - self.stream.y_all.reshape(-1, len(self.scale))[at]
        absolute = np.abs(err)
        loss = {
            "mse": np.mean(err**2),
            "mae": np.mean(absolute),
            "huber": np.mean(np.where(absolute <= 1, 0.5 * err**2, absolute - 0.5)),
        }[self.loss]
        out = {
            f"{prefix}_loss": float(loss),
            f"{prefix}_mae_original": float(np.mean(absolute * self.scale)),
            f"{prefix}_rmse_original": float(np.sqrt(np.mean((err * self.scale) ** 2))),
        }
        if self.targets is not None:
            errors = target_errors(err * self.scale, self.targets)
            out.update({f"{prefix}_{k}": v for k, v in errors.items()})
        return out


def cycled(x: Any, y: np.ndarray, config: TrialConfig) -> tuple[Any, np.ndarray]:
    """The training split, repeated so that an epoch has at least ``min_steps_per_epoch``
    optimizer steps: a small data set is not starved of updates (150 sequences in batches of 32
    are 5 steps an epoch). The copy is at most ``min_steps_per_epoch`` batches long; large
    splits are passed through as they are (views, no copy). ``x`` is an array, or a dict of
    arrays by input name (a model of several inputs)."""
    n = len(y)
    steps = math.ceil(n / config.batch_size)
    if not config.min_steps_per_epoch or steps >= config.min_steps_per_epoch:
        return x, y
    repeats = math.ceil(config.min_steps_per_epoch * config.batch_size / n)
    if isinstance(x, dict):
        return {k: np.concatenate([v] * repeats) for k, v in x.items()}, np.concatenate(
            [y] * repeats
        )
    return np.concatenate([x] * repeats), np.concatenate([y] * repeats)


def evaluate(
    model: keras.Model, x: np.ndarray, y: np.ndarray, prefix: str, batch_size: int
) -> dict[str, float]:
    """Loss and compiled metrics on one split (forecasts: also in the target's units), in one
    pass. The training batch size reuses the function traced for validation: no retrace."""
    fed = batched(x, y, batch_size, shuffle=False, seed=0)
    if fed is not None:
        scores = model.evaluate(fed, verbose=0, return_dict=True)
    else:
        scores = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=batch_size)
    return {f"{prefix}_{k}": float(v) for k, v in scores.items()}
