"""Model shapes for every task and option, names checked against Keras, and the epoch callback
with scripted reports on a tiny fit (tens of samples)."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import to_numpy  # noqa: E402

from tuner.config import TrialConfig  # noqa: E402
from tuner.data import Arrays, Scaler  # noqa: E402
from tuner.errors import InputError  # noqa: E402
from tuner.model import build_model, check_names  # noqa: E402
from tuner.space import parse_space  # noqa: E402
from tuner.training import make_schedule, train  # noqa: E402


@pytest.mark.parametrize(
    "config, task, n_outputs, out_shape",
    [
        (TrialConfig(units=(8,)), "forecast", 1, (4, 1)),
        (TrialConfig(layers=3, units=(16, 8, 4)), "forecast", 6, (4, 6)),
        (TrialConfig(layers=2, units=(8, 8), bidirectional=True), "forecast", 2, (4, 2)),
        (TrialConfig(units=(8,), bidirectional=True, merge_mode="sum"), "classify", 1, (4, 1)),
        (TrialConfig(layers=2, units=(8, 4), layer_dropout=0.2), "classify", 5, (4, 5)),
    ],
)
def test_shapes(config: TrialConfig, task: str, n_outputs: int, out_shape) -> None:
    model = build_model(config, task, (10, 3), n_outputs)
    assert model(np.zeros((4, 10, 3), "float32")).shape == out_shape
    lstms = [x for x in model.layers if "lstm" in x.name or x.name.startswith("bi_")]
    assert len(lstms) == config.layers
    first = lstms[0].forward_layer if config.bidirectional else lstms[0]
    assert first.return_sequences == (config.layers > 1)
    if task == "classify":
        head = model.get_layer("head")
        assert head.activation.__name__ == ("sigmoid" if n_outputs == 1 else "softmax")
    if config.layer_dropout:
        assert sum(isinstance(x, keras.layers.Dropout) for x in model.layers) == config.layers


def test_regularization_and_initializers_reach_the_layers() -> None:
    config = TrialConfig(units=(4,), l2=1e-3, kernel_initializer="he_normal", go_backwards=True)
    lstm = build_model(config, "forecast", (5, 1), 1).get_layer("lstm_1")
    assert lstm.kernel_regularizer is not None and lstm.go_backwards
    assert lstm.cell.recurrent_regularizer is None and lstm.cell.bias_regularizer is None
    assert type(lstm.cell.kernel_initializer).__name__ == "HeNormal"
    config = TrialConfig(units=(4,), recurrent_l2=1e-3, bias_l1=1e-4)
    cell = build_model(config, "forecast", (5, 1), 1).get_layer("lstm_1").cell
    assert cell.recurrent_regularizer.l2 == pytest.approx(1e-3) and cell.kernel_regularizer is None
    assert cell.bias_regularizer.l1 == pytest.approx(1e-4)


def test_keras_names_are_checked() -> None:
    space = parse_space(
        {"params": {"kernel_initializer": ["glorot_uniform", "glorot_unifrom"]}}, source="s.yaml"
    )
    with pytest.raises(
        InputError,
        match=r"s.yaml: params.kernel_initializer: unknown Keras initializer 'glorot_unifrom' "
        r"\(did you mean 'glorot_uniform'\?\); valid: glorot_normal, glorot_uniform, ",
    ):
        check_names(space)
    check_names(parse_space({"params": {"activation": ["tanh", "relu"]}}, source="s.yaml"))


def test_a_misspelt_keras_name_in_a_file_names_its_line(tmp_path) -> None:
    from tuner.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text("task: forecast\nparams:\n  units: [8]\n  activation: [tanh, rleu]\n")
    with pytest.raises(InputError, match=r"s.yaml:4: params.activation: unknown Keras activation"):
        check_names(load_space(str(path)))


@pytest.mark.parametrize("kind", ["initializer", "activation"])
def test_the_names_checked_without_keras_are_keras_names(kind: str) -> None:
    from tuner.model import KNOWN_NAMES

    module = {"initializer": keras.initializers, "activation": keras.activations}[kind]
    for name in sorted(KNOWN_NAMES[kind]):
        assert module.get(name) is not None, name
    # and every name Keras has is known: a newer Keras's names are not refused
    theirs = set()
    for name in dir(module):
        if name.startswith("_") or not name[0].islower() or name in ("get", "serialize"):
            continue
        try:
            if module.get(name) is not None:
                theirs.add(name)
        except (ValueError, TypeError, KeyError):  # e.g. constant needs its value
            continue
    assert theirs - {"deserialize"} <= KNOWN_NAMES[kind]


def test_one_cycle_warms_up_then_decays() -> None:
    lr = make_schedule(TrialConfig(learning_rate=0.01, schedule="one_cycle", epochs=10), 10)
    start, peak, end = (float(lr(s)) for s in (0, 30, 99))
    assert start == pytest.approx(0.0004) and peak == pytest.approx(0.01, rel=1e-3) and end < 0.001


def tiny(n=40, seed=0, y_nan=False) -> Arrays:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 2)).astype("float32")
    y = x[:, -1, :1] * 0.5
    if y_nan:
        y = y * np.nan
    scaler = Scaler("none", np.zeros(2), np.ones(2))
    return Arrays(x, y, x[:10], y[:10], x[:10], y[:10], scaler)


def fit(arrays: Arrays, report, epochs=4):
    config = TrialConfig(units=(4,), epochs=epochs, batch_size=16, window=6)
    return train_forecast(build_model(config, "forecast", (6, 2), 1), arrays, config, report)


def train_forecast(model, arrays: Arrays, config: TrialConfig, report):
    """``train`` a one-step forecaster of one target on its validation MAE."""
    return train(
        model,
        arrays,
        config,
        task="forecast",
        n_outputs=1,
        objective="val_mae_original",
        direction="minimize",
        report=report,
        scale=np.ones(1),
    )


def test_scripted_pruning_stops_at_the_epoch_it_says() -> None:
    seen = []
    result = fit(tiny(), lambda epoch, logs: seen.append(epoch) or epoch == 1)
    assert seen == [0, 1] and result.stopped == "pruned" and result.stopped_epoch == 1
    assert {"loss", "val_loss", "val_mae_original", "epoch_seconds"} <= set(result.history[0])


def test_nan_loss_ends_the_trial_as_diverged() -> None:
    result = fit(tiny(y_nan=True), lambda epoch, logs: False)
    assert result.stopped == "diverged" and result.stopped_epoch == 0
    assert result.best_value is None and math.isnan(result.history[0]["loss"])


def test_best_value_is_the_best_epoch() -> None:
    result = fit(tiny(), lambda epoch, logs: False, epochs=3)
    values = [h["val_mae_original"] for h in result.history]
    assert result.stopped is None and len(values) == 3
    assert result.best_value == min(values) and result.best_epoch == values.index(min(values))


def test_errors_in_original_units_come_with_the_passes_and_match_numpy() -> None:
    """mae_original / rmse_original are compiled metrics: each epoch's validation pass and
    ``evaluate`` give them, in the target's units (two targets, two steps ahead)."""
    from tuner.data import Targets, output_scale
    from tuner.training import evaluate, loss_and_metrics, target_errors

    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 6, 3)).astype("float32")
    y = rng.normal(size=(37, 4)).astype("float32")  # horizon 2 x targets [2, 0], step-major
    scaler = Scaler(
        "standard", center=np.array([5.0, 0.0, 100.0]), scale=np.array([2.0, 1.0, 10.0])
    )
    scale = output_scale(scaler, [2, 0], horizon=2)
    model = build_model(TrialConfig(units=(4,)), "forecast", (6, 3), 4)
    units = np.array([7.0, 0.5])  # each target's std on the training split
    targets = Targets(["kwh", "temp (C)"], units)
    loss, metrics = loss_and_metrics(TrialConfig(), "forecast", 4, scale, targets)
    model.compile(optimizer="adam", loss=loss, metrics=metrics)
    scores = evaluate(model, x, y, "test", batch_size=8)  # 5 batches, the last one short
    pred = model.predict(x, verbose=0).reshape(-1, 2, 2)
    truth = y.reshape(-1, 2, 2)
    inverse = scaler.inverse(pred, [2, 0]) - scaler.inverse(truth, [2, 0])
    assert scores["test_mae_original"] == pytest.approx(np.mean(np.abs(inverse)), rel=1e-5)
    assert scores["test_rmse_original"] == pytest.approx(np.sqrt(np.mean(inverse**2)), rel=1e-5)
    assert scores["test_loss"] == pytest.approx(np.mean((pred.reshape(-1, 4) - y) ** 2), rel=1e-5)
    # several targets: each one's MAE in its units, and their mean over each one's std
    per_target = np.abs(inverse).mean(axis=(0, 1))
    assert scores["test_mae_kwh"] == pytest.approx(per_target[0], rel=1e-5)
    assert scores["test_mae_temp__C_"] == pytest.approx(per_target[1], rel=1e-5)
    assert scores["test_nmae"] == pytest.approx(np.mean(per_target / units), rel=1e-5)
    assert target_errors(inverse.reshape(-1, 4), targets) == pytest.approx(
        {
            "mae_kwh": per_target[0],
            "mae_temp__C_": per_target[1],
            "nmae": np.mean(per_target / units),
        }
    )


@pytest.mark.parametrize(
    "options",
    [
        {"frontend": "conv", "conv_filters": 4, "conv_kernel": 3, "conv_stride": 2},
        {"fcn": True, "fcn_filters": 4},
        {"pooling": "mean", "layers": 2, "units": (8, 4)},
        {"pooling": "attention", "bidirectional": True},
        {"frontend": "conv", "fcn": True, "fcn_filters": 2, "pooling": "attention"},
    ],
)
@pytest.mark.parametrize("task, n_outputs", [("forecast", 2), ("classify", 3)])
def test_long_sequence_options_keep_the_output_shape(options, task: str, n_outputs: int) -> None:
    config = TrialConfig(**{"units": (8,), **options})
    model = build_model(config, task, (12, 3), n_outputs)
    assert model(np.zeros((4, 12, 3), "float32")).shape == (4, n_outputs)
    if options.get("frontend") == "conv":  # the LSTM reads the strided sequence
        assert model.get_layer("frontend").output.shape[1] == 6
    if options.get("pooling", "last") != "last":  # every LSTM returns its sequence to the pool
        lstms = [
            getattr(layer, "forward_layer", layer)
            for layer in model.layers
            if isinstance(layer, (keras.layers.LSTM, keras.layers.Bidirectional))
        ]
        assert lstms and all(layer.return_sequences for layer in lstms)


def forecast_inputs() -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(3)
    return rng.normal(size=(16, 5, 3)).astype("float32"), [0, 2]


@pytest.mark.parametrize("highway", [False, True])
def test_residual_last_starts_at_the_last_value_of_each_target(highway: bool) -> None:
    x, targets = forecast_inputs()
    config = TrialConfig(units=(4,), residual="last", highway=highway)
    model = build_model(config, "forecast", (5, 3), 4, target_index=targets)  # horizon 2
    out = to_numpy(model(x))
    np.testing.assert_allclose(out, np.tile(x[:, -1, targets], 2), atol=1e-6)
    assert not model.get_layer("reference").trainable
    # the LSTM sees the window minus its last step: a level shift changes only the reference
    shifted = to_numpy(model(x + 5.0))
    np.testing.assert_allclose(shifted - out, 5.0, atol=1e-5)


def test_residual_mean_starts_at_the_window_mean() -> None:
    x, targets = forecast_inputs()
    model = build_model(TrialConfig(residual="mean"), "forecast", (5, 3), 2, target_index=targets)
    np.testing.assert_allclose(to_numpy(model(x)), x[:, :, targets].mean(axis=1), atol=1e-6)


def test_residual_ridge_starts_at_the_ridge_and_trains_only_the_network() -> None:
    from tuner.ridge import fit_ridge

    x, _ = forecast_inputs()
    y = x[:, -1, :2] * 0.7 + 0.1
    ridge = fit_ridge(x, y)
    config = TrialConfig(units=(4,), residual="ridge", highway=True)
    model = build_model(config, "forecast", (5, 3), 2, ridge=ridge)
    np.testing.assert_allclose(to_numpy(model(x)), ridge.predict(x), atol=1e-5)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "reference" not in trainable and {"head", "highway", "lstm_1"} <= trainable
    with pytest.raises(ValueError, match="ridge fitted"):
        build_model(config, "forecast", (5, 3), 2)


def test_highway_alone_is_a_linear_map_of_the_window_added_to_the_output() -> None:
    x, _ = forecast_inputs()
    model = build_model(TrialConfig(units=(4,), highway=True), "forecast", (5, 3), 2)
    kernel, bias = model.get_layer("highway").get_weights()
    assert kernel.shape == (15, 2) and not kernel.any() and not bias.any()  # starts at zero
    before = to_numpy(model(x))
    w = np.random.default_rng(4).normal(size=(15, 2)).astype("float32")
    model.get_layer("highway").set_weights([w, bias])
    np.testing.assert_allclose(to_numpy(model(x)) - before, x.reshape(16, -1) @ w, atol=1e-5)


def test_a_residual_model_that_does_not_beat_its_start_goes_back_to_it() -> None:
    """The next value is the last one plus noise: the network on its residual can only learn
    the training split's noise, so the trial's model is the last value again (training.Start)."""
    from tuner.fitting import seed_everything

    seed_everything(0)  # the same training every run, as a trial's
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 6, 2)).astype("float32")
    y = x[:, -1, :1] + rng.normal(0, 0.3, size=(80, 1)).astype("float32")
    arrays = Arrays(
        x[:50], y[:50], x[50:], y[50:], x[50:], y[50:], Scaler("none", np.zeros(2), np.ones(2))
    )
    config = TrialConfig(units=(8,), epochs=3, batch_size=8, window=6, residual="last")
    model = build_model(config, "forecast", (6, 2), 1, target_index=[0])
    result = train_forecast(model, arrays, config, lambda epoch, logs: False)
    assert result.start_p is not None and result.start_p >= 0.05 and result.start_logs is not None
    start_mae = float(np.abs(x[50:, -1, :1] - y[50:]).mean())
    assert result.best_value == result.start_logs["val_mae_original"] == pytest.approx(start_mae)
    assert result.best_epoch is not None, "the epochs' own best is still known"
    np.testing.assert_allclose(to_numpy(model(x[50:])), x[50:, -1, :1], atol=1e-6)


def test_the_same_seed_builds_the_same_weights() -> None:
    from tuner.fitting import seed_everything

    config = TrialConfig(units=(8,), fcn=True, fcn_filters=4, pooling="attention")

    def weights(seed: int) -> list[np.ndarray]:
        seed_everything(seed)
        return build_model(config, "classify", (10, 2), 3).get_weights()

    first, again, other = weights(7), weights(7), weights(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_small_splits_are_cycled_to_the_minimum_steps() -> None:
    from tuner.training import cycled

    x, y = np.arange(40).reshape(20, 2, 1), np.arange(20)
    config = TrialConfig(batch_size=8, min_steps_per_epoch=10)  # 3 steps: repeated 4 times
    cx, cy = cycled(x, y, config)
    assert len(cx) == len(cy) == 80 and math.ceil(80 / 8) >= 10
    np.testing.assert_array_equal(cy[20:40], y)
    big = TrialConfig(batch_size=2, min_steps_per_epoch=10)  # 10 steps already: untouched
    assert cycled(x, y, big)[0] is x
    assert cycled(x, y, TrialConfig(batch_size=8))[0] is x  # 0: off
    # a partial last batch is not a whole step's worth: 150 rows in batches of 32
    seqs = np.zeros((150, 2, 1))
    cx, _ = cycled(seqs, np.zeros(150), TrialConfig(batch_size=32, min_steps_per_epoch=50))
    assert math.ceil(len(cx) / 32) >= 50


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("horizon", [1, 3])
def test_the_seq2seq_decoder_starts_from_the_last_targets_and_reads_its_own_forecasts(
    bidirectional: bool, horizon: int
) -> None:
    config = TrialConfig(layers=2, units=(8, 6), bidirectional=bidirectional, decoder="seq2seq")
    target_index = [2, 0]
    model = build_model(config, "forecast", (10, 3), 2 * horizon, target_index=target_index)
    x = np.random.default_rng(0).normal(size=(4, 10, 3)).astype("float32")
    out = to_numpy(model(x))
    assert out.shape == (4, 2 * horizon)
    assert model.get_layer("decoder").units == 6 * (2 if bidirectional else 1)  # [h, c] joined
    for k in range(1, horizon + 1):  # what step k reads
        step_in = keras.Model(model.input, model.get_layer(f"decoder_in_{k}").output)(x)
        read = to_numpy(step_in)[:, 0, :]
        expected = x[:, -1, target_index] if k == 1 else out[:, 2 * (k - 2) : 2 * (k - 1)]
        np.testing.assert_allclose(read, expected, atol=1e-6)


def test_large_inputs_reach_keras_batch_by_batch_from_the_views(monkeypatch) -> None:
    """Issue 13: windows were copied whole into Keras (window x the series' memory). Past
    TUNER_IN_MEMORY_MIB (0 here) each batch is copied out of the views alone."""
    from numpy.lib.stride_tricks import sliding_window_view

    from tuner.training import BATCHES_ENV, batched

    series = np.arange(200, dtype="float32").reshape(100, 2)
    x = sliding_window_view(series, 5, axis=0).transpose(0, 2, 1)  # a view: 96 windows
    y = np.arange(96, dtype="float32")[:, None]
    assert batched(x, y, 32, shuffle=True, seed=0) is None, "small: the arrays themselves"
    monkeypatch.setenv(BATCHES_ENV, "0")
    fed = batched(x, y, 32, shuffle=True, seed=0)
    assert len(fed) == 3
    seen = []
    for i in range(len(fed)):
        xb, yb = fed[i]
        assert xb.flags.c_contiguous and xb.shape[1:] == (5, 2)
        np.testing.assert_array_equal(xb, x[yb[:, 0].astype(int)])  # each window with its target
        seen += yb[:, 0].tolist()
    assert sorted(seen) == list(range(96)), "an epoch reads every window once"
    first = fed[0][1].tolist()
    fed.on_epoch_end()
    assert fed[0][1].tolist() != first, "reshuffled each epoch"
    result = fit(tiny(), lambda epoch, logs: False, epochs=2)  # trains through them
    assert len(result.history) == 2 and np.isfinite(result.best_value)
