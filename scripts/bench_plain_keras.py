"""B1's baseline: the plain Keras script a user would write instead of tuner, training a list of
LSTM architectures on the same windows. Usage: bench_plain_keras.py CSV TARGET WINDOW EPOCHS
BATCH CONFIGS_JSON (a list of {layers, units, bidirectional}). The benchmark adds one thing a
user would not write: a callback that times the epochs, as tuner does (``epoch_seconds``)."""

import json
import sys
import time

import keras
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

csv, target, configs = sys.argv[1], sys.argv[2], sys.argv[6]
window, epochs, batch = (int(v) for v in sys.argv[3:6])
df = pd.read_csv(csv)
columns = [c for c in df.columns if c not in ("t", target)] + [target]
values = df[columns].to_numpy("float64")
n_val = n_test = round(len(values) * 0.15)
a, b = len(values) - n_val - n_test, len(values) - n_test
mean, std = values[:a].mean(0), values[:a].std(0)
scaled = ((values - mean) / std).astype("float32")


def cut(part):
    n = len(part) - window
    return sliding_window_view(part, window, axis=0).transpose(0, 2, 1)[:n], part[window:, -1:]


class EpochTime(keras.callbacks.Callback):  # the benchmark's, not the user's: epoch seconds
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.total = getattr(self, "total", 0.0) + time.perf_counter() - self.started


(x, y), (xv, yv) = cut(scaled[:a]), cut(scaled[max(0, a - window) : b])  # as tuner scores
for i, c in enumerate(json.loads(configs)):
    keras.utils.set_random_seed(i)
    inputs = h = keras.Input((window, len(columns)))
    for layer in range(c["layers"]):
        lstm = keras.layers.LSTM(c["units"], return_sequences=layer < c["layers"] - 1)
        h = keras.layers.Bidirectional(lstm)(h) if c["bidirectional"] else lstm(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.compile(keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    timer = EpochTime()
    fit = {"epochs": epochs, "batch_size": batch, "verbose": 0, "callbacks": [timer]}
    hist = model.fit(x, y, validation_data=(xv, yv), **fit)
    mae = min(hist.history["val_mae"]) * float(std[-1])
    print(json.dumps({**c, "val_mae_original": mae, "epoch_seconds": timer.total}))
