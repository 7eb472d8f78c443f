"""Train one trial's config on the study's data: seed, arrays, model, fit, summary metrics.

Shared by the worker (whose ``report`` talks to Optuna and MLflow) and by ``tuner reproduce`` /
``tuner retrain`` (which report nowhere). Knows nothing of Optuna or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.data import Dataset, Pairs, Sequences, Series, Steps, Stream, Texts
from tuner.records import (
    BACK_TO_START,
    EPOCHS_RUN,
    START_LAGS,
    START_PVALUE,
    START_WINDOW,
    ModelCard,
)
from tuner.training import Report, TrainResult

if TYPE_CHECKING:
    import keras

    from tuner.config import TrialConfig
    from tuner.data import Arrays
    from tuner.footprint import Footprint
    from tuner.training import OrderedPass


@dataclass
class Fit:
    result: TrainResult
    model: keras.Model
    arrays: Arrays | Stream
    ordered: OrderedPass | None = None  # a stateful model: its batch-1 copy reads in order
    size: Footprint | None = None  # estimated before the model was built
    start_lags: int | None = None  # a ridge start: the lags its ridge reads
    start_window: int | None = None  # a ridge start that is the study's baseline: its window

    def summary(self) -> dict[str, float]:
        """``epochs_run``, and for a run that ended well ``best_epoch`` and the best epoch's
        validation scores as ``best_val_*`` (the model holds that epoch's weights); a residual
        model's ``start_pvalue``, and ``back_to_start`` with its start's scores when it went
        back to its start; a ridge start's ``start_lags``, and ``start_window`` when it is the
        study's ridge baseline (what ``tuner reproduce`` rebuilds)."""
        out = {EPOCHS_RUN: float(len(self.result.history))}
        out["params"] = float(self.model.count_params())
        if self.size is not None:
            out.update(self.size.metrics())
        result = self.result
        if result.best_epoch is not None and result.stopped is None:
            if result.start_logs is not None:  # it went back to its start (``training.Start``)
                out[BACK_TO_START] = 1.0
                best = result.start_logs
            else:
                out["best_epoch"] = float(result.best_epoch)
                best = result.history[result.best_epoch]
            out.update({f"best_{k}": v for k, v in best.items() if k.startswith("val_")})
        if result.start_p is not None:
            out[START_PVALUE] = result.start_p
        if self.start_lags is not None:
            out[START_LAGS] = float(self.start_lags)
        if self.start_window is not None:
            out[START_WINDOW] = float(self.start_window)
        return out

    def latency_ms(self, batch_size: int, repeats: int = 5) -> float:
        """The median wall time (ms) of predicting one batch of validation inputs (a text
        model: from token ids; a stateful one: its batch-size-1 copy, one segment), after one
        call that traces it."""
        import statistics
        import time

        import numpy as np

        model, arrays = self.model, self.arrays
        x: Any
        if self.ordered is not None:
            model, x = self.ordered.model, self.ordered.stream.x_all[:1]
        elif isinstance(arrays, Stream):
            raise ValueError("a stateful fit has its ordered copy")
        elif isinstance(arrays.x_val, dict):
            x = {k: np.asarray(v[:batch_size]) for k, v in arrays.x_val.items()}
        else:
            x = np.asarray(arrays.x_val[:batch_size])
        model.predict_on_batch(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - started)
        if self.ordered is not None:
            from tuner.training import reset_states

            reset_states(model)
        return 1000 * statistics.median(times)

    def saved_model(self) -> keras.Model:
        """The model as it is saved: a text model behind its ``TextVectorization`` (it takes
        raw text), a stateful one as its batch-size-1 copy (it reads a table in order), any
        other as it trained."""
        if self.ordered is not None:
            self.ordered.model.set_weights(self.model.get_weights())
            return self.ordered.model
        if self.arrays.vectorizer is None:
            return self.model
        from tuner.model import text_model

        return text_model(self.model, self.arrays.vectorizer)

    def test(self, batch_size: int) -> dict[str, float]:
        """Loss and metrics on the test split (``test_*``), one pass: a forecast's every test
        target, as every trial and the baselines are scored (``windowing.scored_rows``)."""
        from tuner.training import evaluate

        a = self.arrays
        if self.ordered is not None:  # the test split's origins, read in order
            return self.ordered.scores(self.model, self.ordered.stream.test, "test")
        assert not isinstance(a, Stream)
        return evaluate(self.model, a.x_test, a.y_test, "test", batch_size)


PLOTTED = 2000  # the last windows of a split a forecast's figure shows
TAGGED = 4  # the test sequences a tagger's figure shows (values per step)


def best_figure(
    done: Fit, dataset: Dataset, season: int | None, batch_size: int
) -> tuple[str, Any]:
    """The figure of a best model (``tuner.figures``) and its name: ``predictions``, a
    forecast's one-step-ahead predictions against the actual series on the validation and test
    splits (their last ``PLOTTED`` windows; a stateful model's read in order) with the naive and
    seasonal-naive forecasts, or a tagger's values per step on a few test sequences;
    ``confusion_matrix``, a classifier's on the test split (a labelling tagger's: of its steps);
    ``accuracy_by_position``, a seq2seq model's token accuracy at each target position against
    the majority token of that position."""
    import numpy as np

    from tuner import figures

    a = done.arrays

    def predict(x: Any) -> Any:
        return np.asarray(done.model.predict(x, batch_size=batch_size, verbose=0))

    if isinstance(dataset, Series):
        sc, t = a.scaler, dataset.target_index[0]
        assert sc is not None  # a forecast's windows are always scaled

        def units(v: Any) -> Any:
            return np.asarray(v, dtype=np.float64) * sc.scale[t] + sc.center[t]

        def panel(name: str, history: Any, actual: Any, predicted: Any) -> figures.Split:
            """``history``: the rows up to each forecast's origin (samples x rows x columns)."""
            baselines = {"naive (last value)": units(history[:, -1, t])}
            if season and season <= history.shape[1]:
                baselines[f"seasonal naive ({season})"] = units(history[:, -season, t])
            return figures.Split(name, units(actual), units(predicted), baselines)

        splits = []
        if done.ordered is not None:  # the forecasts made reading the whole series in order
            stream = done.ordered.stream
            rows = stream.x_all.reshape(-1, stream.x_all.shape[-1])
            forecasts = done.ordered.forecasts(done.model)
            ahead = stream.y_all.reshape(len(forecasts), -1)
            for name, origins in (("validation", stream.val), ("test", stream.test)):
                at = origins[-PLOTTED:] - stream.start
                reach = min(season or 1, int(at.min()) + 1)
                history = rows[at[:, None] + np.arange(1 - reach, 1)]
                splits.append(panel(name, history, ahead[at, 0], forecasts[at, 0]))
        else:
            assert not isinstance(a, Stream)
            for name, x, y in (("validation", a.x_val, a.y_val), ("test", a.x_test, a.y_test)):
                x, y = np.asarray(x[-PLOTTED:]), np.asarray(y[-PLOTTED:])
                splits.append(panel(name, x, y[:, 0], predict(x)[:, 0]))
        return "predictions", figures.forecast_figure(splits, dataset.columns[t])
    assert not isinstance(a, Stream)  # only a forecast streams
    if isinstance(dataset, (Sequences, Texts)):
        p = predict(a.x_test)
        predicted = (p[:, 0] > 0.5).astype(int) if p.shape[1] == 1 else p.argmax(axis=1)
        return "confusion_matrix", figures.confusion_figure(
            np.asarray(a.y_test), predicted, list(dataset.classes)
        )
    if isinstance(dataset, Steps):
        p = predict(a.x_test)
        if dataset.labels:
            return "confusion_matrix", figures.confusion_figure(
                np.asarray(a.y_test).ravel(), p.argmax(axis=-1).ravel(), dataset.classes, "steps"
            )
        assert dataset.y_center is not None and dataset.y_scale is not None
        center, scale = float(dataset.y_center[0]), float(dataset.y_scale[0])
        y = np.asarray(a.y_test)
        panels = [
            figures.Split(
                f"test sequence {i + 1}",
                y[i, :, 0] * scale + center,
                p[i, :, 0] * scale + center,
                {"mean of the training split": np.full(y.shape[1], center)},
            )
            for i in range(min(TAGGED, len(y)))
        ]
        return "predictions", figures.forecast_figure(
            panels, dataset.targets[0], "per step", "step"
        )
    from tuner.baselines import majority_tokens, token_mask

    assert isinstance(dataset, Pairs)
    y = np.asarray(a.y_test)
    mask = token_mask(y)
    counts = mask.sum(axis=0)

    def accuracy(guess: Any) -> Any:
        return ((guess == y) & mask).sum(axis=0) / np.maximum(counts, 1)

    return "accuracy_by_position", figures.position_figure(
        accuracy(predict(a.x_test).argmax(axis=-1)),
        accuracy(majority_tokens(dataset)[None, :]),
        counts,
    )


def fit(
    dataset: Dataset,
    config: TrialConfig,
    *,
    objective: str,
    direction: str,
    report: Report | None = None,
    limits: tuple[int | None, float | None] | None = None,
) -> Fit:
    """Seed everything from ``config.seed``, build the model (with the closed-form ridge when
    the config starts from it) and train it, calling ``report`` after every epoch. Its size is
    estimated first (``footprint``); over ``limits`` (max parameters, max MiB) nothing is built
    (``OverLimit``)."""
    from tuner.device import import_keras
    from tuner.model import build_model
    from tuner.training import train

    import_keras()  # quietly, the first time
    seed_everything(config.seed)
    arrays = dataset.for_config(config)
    series = dataset if isinstance(dataset, Series) else None
    ridge = None
    if series is not None and config.residual == "ridge":
        ridge = series.ridge(config.scaler, config.window)

    def build(batch: int | None = None) -> keras.Model:
        return build_model(
            config,
            dataset.task,
            arrays.input_shape,
            dataset.n_outputs,
            target_index=series.target_index if series else None,
            ridge=ridge,
            regression=isinstance(dataset, Steps) and not dataset.labels,
            vocab=(dataset.source_vocab, dataset.target_vocab)
            if isinstance(dataset, Pairs)
            else None,
            batch=batch,
        )

    from tuner import footprint

    size = footprint.estimate(
        config,
        dataset.task,
        arrays.input_shape,
        dataset.n_outputs,
        n_targets=len(series.target_index) if series is not None else 1,
        vocab=(dataset.source_vocab, dataset.target_vocab) if isinstance(dataset, Pairs) else None,
        batch=arrays.streams if isinstance(arrays, Stream) else None,
    )
    if limits is not None:
        reason = size.over(*limits)
        if reason is not None:
            raise footprint.OverLimit(f"not built: {reason}")
    ordered = None
    if isinstance(arrays, Stream):  # trained on parallel parts, scored reading in order
        from tuner.training import OrderedPass

        model = build(arrays.streams)
        assert series is not None
        scale = series.output_scale(arrays)
        ordered = OrderedPass(build(1), arrays, scale, config.loss, series.targets())
    else:
        model = build()
    result = train(
        model,
        arrays,
        config,
        task=dataset.task,
        n_outputs=dataset.n_outputs,
        objective=objective,
        direction=direction,
        report=report or (lambda epoch, logs: False),
        scale=dataset.output_scale(arrays),
        validate=None
        if ordered is None
        else (lambda trained: ordered.scores(trained, ordered.stream.val, "val")),
        targets=series.targets() if series is not None else None,
    )
    return Fit(
        result,
        model,
        arrays,
        ordered,
        size,
        None if ridge is None else ridge.lags,
        None if ridge is None else ridge.baseline_window,
    )


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and the backend (``keras.utils.set_random_seed``): the weights, the
    shuffling and dropout of a trial follow from its seed, so re-running it on the same machine
    (CPU) reproduces its curve."""
    import keras

    from tuner.device import quiet_tensorflow

    with quiet_tensorflow():  # on JAX and PyTorch it imports TensorFlow, when installed
        keras.utils.set_random_seed(seed)


def model_card(
    dataset: Dataset, config: TrialConfig, scaler: Any, data_spec: dict[str, Any]
) -> ModelCard:
    """What ``tuner predict`` needs besides the model: task, window, scaler, data options and
    the columns (forecast) or classes (classify, text; a token-id text model: its vocabulary
    size, as ids beyond it are out of vocabulary)."""
    common = {
        "task": dataset.task,
        "window": config.window,
        "stateful": config.stateful,
        "scaler": {} if scaler is None else scaler.to_json(),
    }
    if isinstance(dataset, Series):
        return ModelCard(
            **common,
            data=data_spec,
            columns=list(dataset.columns),
            target_index=list(dataset.target_index),
            horizon=dataset.horizon,
            categories=dataset.categories,
        )
    if isinstance(dataset, Pairs):
        return ModelCard(
            **common,
            data=data_spec,
            vocab_size=dataset.source_vocab,
            target_vocab=dataset.target_vocab,
            decoder_length=int(dataset.target.shape[1]),
        )
    if isinstance(dataset, Steps):
        if dataset.labels:
            return ModelCard(**common, data=data_spec, classes=list(dataset.classes))
        assert dataset.y_center is not None and dataset.y_scale is not None
        return ModelCard(
            **common,
            data=data_spec,
            targets=list(dataset.targets),
            target_scaler={
                "center": dataset.y_center.tolist(),
                "scale": dataset.y_scale.tolist(),
            },
        )
    if isinstance(dataset, Texts):
        return ModelCard(
            **common, data=data_spec, classes=list(dataset.classes), vocab_size=config.vocab_size
        )
    return ModelCard(**common, data=data_spec, classes=list(dataset.classes))


def free_memory() -> None:
    """Free a trial's graphs and tensors: clear the framework's session, collect garbage.

    After the first trial, what survives (the frameworks' modules, the data, the study's cache)
    is frozen out of the collector (``gc.freeze``), so later collections walk only what later
    trials made: with TensorFlow loaded, a full collection took ~0.4 s a trial here, walking
    the long-lived objects around the trial's garbage rather than the garbage itself."""
    import gc
    import sys

    keras = sys.modules.get("keras")
    if keras is not None:  # None: no trial trained in this process (or a stand-in trained)
        try:
            keras.backend.clear_session(free_memory=False)  # the collection is ours, below
        except Exception:  # keras half-imported: a stop signal cut its import; the process ends
            pass
    gc.collect()
    if not _Collector.frozen:
        gc.freeze()
        _Collector.frozen = True


class _Collector:
    frozen = False
