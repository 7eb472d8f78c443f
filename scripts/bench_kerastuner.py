"""The KerasTuner baseline of B2: the hypermodel a KerasTuner user would write for the same
search (same depth, units, bidirectional, dropout, optimizer and learning-rate ranges as
``search_spaces/forecast.yaml``), on a fixed window, with an epoch budget counted by a callback
(KerasTuner has none of its own)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_driver import Trace


def windows(csv: Path, target: str, window: int) -> dict[str, Any]:
    """Chronological 70/15/15 split (as tuner's), standard scaling fitted on train, windows of
    every column predicting ``target`` one step ahead: every target of validation and test, as
    tuner scores them (``scored_rows``)."""
    import pandas as pd
    from numpy.lib.stride_tricks import sliding_window_view

    from tuner.windowing import scored_rows, split_bounds

    df = pd.read_csv(csv)
    columns = [c for c in df.columns if c not in ("t", target)] + [target]
    values = df[columns].to_numpy("float64")
    splits = split_bounds(len(values), 0.15, 0.15)
    mean, std = values[splits[0]].mean(0), values[splits[0]].std(0)
    scaled = ((values - mean) / std).astype("float32")
    out: dict[str, Any] = {"scale": float(std[-1]), "features": len(columns)}
    for name, s in zip(("train", "val", "test"), splits, strict=True):
        part = scaled[scored_rows(s, window)]
        n = len(part) - window
        out[f"x_{name}"] = sliding_window_view(part, window, axis=0).transpose(0, 2, 1)[:n]
        out[f"y_{name}"] = part[window:, -1:]
    return out


def search(
    kind: str,
    data: dict[str, Any],
    folder: Path,
    *,
    seed: int,
    budget: int,
    max_epochs: int,
    window: int,
    patience: int,
) -> Trace:
    """``kind``: ``hyperband`` or ``bayesian``. Runs until ``budget`` epochs are spent."""
    import keras
    import keras_tuner as kt

    scale = data["scale"]

    def mae_original(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1) * scale

    def build(hp: Any) -> keras.Model:
        layers = hp.Int("layers", 1, 3)
        units = hp.Int("units", 16, 128, sampling="log")
        bidirectional = hp.Boolean("bidirectional")
        dropout = hp.Float("dropout", 0.0, 0.3)
        layer_dropout = hp.Float("layer_dropout", 0.0, 0.3)
        optimizer = hp.Choice("optimizer", ["adam", "adamw", "rmsprop"])
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        inputs = keras.Input((window, data["features"]))
        x = inputs
        for i in range(layers):
            lstm = keras.layers.LSTM(units, dropout=dropout, return_sequences=i < layers - 1)
            x = keras.layers.Bidirectional(lstm)(x) if bidirectional else lstm(x)
            x = keras.layers.Dropout(layer_dropout)(x)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        opt = {
            "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW,
            "rmsprop": keras.optimizers.RMSprop,
        }[optimizer](lr)
        model.compile(
            opt,
            loss="mse",
            metrics=[keras.metrics.MeanMetricWrapper(mae_original, name="mae_original")],
        )
        return model

    trace = Trace(tool=f"kerastuner-{kind}")

    class Budget(keras.callbacks.Callback):
        """Counts every epoch of the search; stops training when the budget is spent."""

        def __deepcopy__(self, memo: Any) -> Budget:
            return self  # KerasTuner deep-copies callbacks per trial: keep one counter

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            trace.values.append(float((logs or {}).get("val_mae_original", np.inf)))
            if trace.epochs >= budget:
                self.model.stop_training = True

    class Budgeted:
        oracle: Any

        def pre_create_trial(self) -> None:  # no new trial once the budget is spent
            if trace.epochs >= budget:
                self.oracle.max_trials = max(1, len(self.oracle.trials))

    objective = kt.Objective("val_mae_original", direction="min")
    common = dict(
        objective=objective, seed=seed, directory=str(folder), project_name=kind, overwrite=True
    )
    if kind == "hyperband":
        base: Any = kt.Hyperband
        kwargs = dict(max_epochs=max_epochs, factor=3, hyperband_iterations=1000)
    else:
        base = kt.BayesianOptimization
        kwargs = dict(max_trials=100_000)
    tuner_cls = type(f"Budgeted{base.__name__}", (Budgeted, base), {})
    tuner = tuner_cls(build, **common, **kwargs)
    keras.utils.set_random_seed(seed)
    stop = keras.callbacks.EarlyStopping("val_mae_original", patience=patience, mode="min")
    started = time.perf_counter()
    tuner.search(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=max_epochs,
        callbacks=[stop, Budget()],
        verbose=0,
    )
    trace.wall_s = time.perf_counter() - started
    best = tuner.oracle.get_best_trials(1)[0]
    trace.best_value = float(best.score)
    trace.trials = len(tuner.oracle.trials)
    model = tuner.get_best_models(1)[0]
    pred = model.predict(data["x_test"], verbose=0, batch_size=1024)
    trace.test_mae = float(np.mean(np.abs(pred - data["y_test"])) * scale)
    trace.extra["best_params"] = best.hyperparameters.values
    return trace
