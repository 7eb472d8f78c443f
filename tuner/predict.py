"""Predict with a trial's saved model, safely: a ``.keras`` zip and a JSON file, nothing else.

A model is loaded only from the Keras 3 ``.keras`` format, with ``safe_mode=True`` and
``compile=False``; before Keras sees it, its ``config.json`` is checked so that every object comes
from Keras and no ``Lambda`` layer is present (a Lambda holds Python bytecode that loading would
run). ``.h5``, SavedModel folders and pickles are refused; nothing is ever unpickled. What the
model needs to predict (the scaler, columns, window, horizon, data options) is read from
``preprocess.json``, which is plain JSON.

Forecast windows are cut exactly as in training, but over the whole table and including the last
one, whose targets lie beyond it. For ``window = 3`` and ``horizon = 2`` over rows ``0..9``::

    origin row 2: inputs rows [0, 1, 2] -> predicted rows 3, 4
    ...
    origin row 9: inputs rows [7, 8, 9] -> predicted rows 10, 11   (beyond the table: the forecast)
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner import data, records, windowing
from tuner.errors import InputError, brief
from tuner.log import log

if TYPE_CHECKING:
    import keras
    import optuna
    import pandas as pd

    from tuner.tracking import Tracker

LAMBDA_CLASSES = ("Lambda", "TFOpLambda")


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model without running any code from the file.

    Raises ``InputError`` naming the file for anything else: another format, a Lambda layer, an
    object from outside Keras, or a file Keras cannot read.
    """
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError("no such model file", source=src)
    if p.suffix.lower() != ".keras" or not zipfile.is_zipfile(p):
        raise InputError(
            "not a Keras 3 .keras file; .h5, SavedModel and pickle files are refused "
            "(loading them can run code from the file)",
            source=src,
        )
    try:
        with zipfile.ZipFile(p) as z:
            config = json.loads(z.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"not a readable .keras file: {e}", source=src) from None
    # compile_config is skipped: compile=False never reads it (and it names plain functions).
    _check_config({k: v for k, v in config.items() if k != "compile_config"}, src)

    from tuner.device import import_keras

    import_keras()  # quietly, the first time
    import keras

    try:
        return keras.saving.load_model(p, safe_mode=True, compile=False)
    except ValueError as e:
        if "safe_mode" in str(e):  # Keras's own refusal, should our check above miss a case
            raise InputError(
                "refusing to load a model that needs unsafe deserialization: it would run code "
                "from the file",
                source=src,
            ) from None
        raise InputError(f"cannot load the model: {brief(e)}", source=src) from None
    except Exception as e:  # a corrupt archive or weights file
        raise InputError(f"cannot load the model: {brief(e)}", source=src) from None


def _check_config(node: Any, src: str) -> None:
    """Refuse Lambda layers and any serialized object whose module is not Keras's own."""
    if isinstance(node, list):
        for item in node:
            _check_config(item, src)
        return
    if not isinstance(node, dict):
        return
    if node.get("class_name") in LAMBDA_CLASSES:
        raise InputError(
            "refusing to load a model with a Lambda layer: it would run code from the file",
            source=src,
            field=str(node.get("name") or node.get("config", {}).get("name") or "Lambda"),
        )
    module = node.get("module")
    if module is not None and not (module == "keras" or str(module).startswith("keras.")):
        raise InputError(
            f"refusing to load a model with an object from module {module!r} "
            f"(class {node.get('class_name')!r}): only Keras's own objects are allowed",
            source=src,
        )
    for value in node.values():
        _check_config(value, src)


def predict(
    study: optuna.Study,
    tracker: Tracker | str,
    data_path: str,
    trial_number: int | None = None,
) -> pd.DataFrame:
    """Predict on ``data_path`` with the model of the study's best trial (or ``trial_number``).

    forecast: one row per (window, step): ``origin`` (the time, or row number, of the window's
    last input row), ``step`` (1..horizon), the time (or ``row``) of the predicted step (empty
    beyond the table), ``split`` (``future`` beyond the table; inside it, the row's split in
    the study when the table is the study's data, else empty), and per target
    ``<target>_pred`` in the target's own units, ``<target>_actual`` (the table's value after
    its NaN policy; empty beyond the table) and ``<target>_interpolated``.
    classify: one row per sequence: ``sequence``, ``predicted`` (a class), ``p_<class>`` per class,
    and ``actual`` where the data has labels. text: the same, one row per text (``row``: its row
    in the table or ``.npz``). tag: one row per (sequence, step) of the last ``window`` steps:
    ``sequence``, ``step`` (or the time), then ``predicted``, ``p_<class>`` and ``actual``
    (labels) or ``<target>_pred`` and ``<target>_actual`` (values, in the targets' units).
    seq2seq: one row per source sequence: ``row``, ``predicted`` (the greedy decoding's token
    ids, space-separated, up to its end) and ``actual`` and ``exact`` where the data has
    ``decoder_target``. Rows of the study's own data (classify, text, tag, seq2seq) also say
    their sequence's ``split``.
    """
    model_uri = _model_uri(study, trial_number)
    from tuner.tracking import Tracker

    tracker = Tracker(tracker) if isinstance(tracker, str) else tracker
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = tracker.download(model_uri, tmp)
        except Exception as e:  # MLflow raises its own types, or OSError for a missing store
            raise InputError(f"cannot download the model: {brief(e)}", source=model_uri) from None
        try:
            text = (folder / records.CARD_FILE).read_text()
        except OSError as e:
            raise InputError(f"cannot read {records.CARD_FILE}: {e}", source=model_uri) from None
        card = records.ModelCard.from_json(text, model_uri)
        model = load_model(folder / records.MODEL_FILE)
    return predict_with(model, card, data_path, model_uri, splits=_study_splits(study, data_path))


def _study_splits(study: optuna.Study, data_path: str) -> tuple[Any, Any, Any] | None:
    """The study's train, validation and test splits if ``data_path`` holds its data (its
    fingerprint, as every worker checks it), else None: only then are its rows in them."""
    from tuner import launch

    disabled, log.disabled = log.disabled, True  # its notes were the study's
    try:
        return launch.with_data(study, data_path)[2].splits
    except InputError:
        return None
    finally:
        log.disabled = disabled


def predict_with(
    model: keras.Model,
    card: records.ModelCard,
    data_path: str,
    model_uri: str,
    *,
    splits: tuple[Any, Any, Any] | None = None,
) -> pd.DataFrame:
    """``predict`` with a loaded model and its card (``model_uri`` names them in errors); the
    MLflow pyfunc model (``tuner.serving``) predicts through here too. ``splits``: the study's,
    when the table is its own data, so ``split`` names each row's split in the study; else it
    says only which forecasts lie past the table (``future``)."""
    table = _predict(model, card, data.DataOptions.from_spec(card.data, data_path), model_uri)
    if splits is not None and card.task != "forecast":
        # a row per step of each sequence (tag: its last ``window``), or one per sequence
        per = int(card.window) if card.task == "tag" else 1
        named = np.full(sum(len(s) for s in splits), "train", dtype=object)
        named[splits[1]], named[splits[2]] = "val", "test"
        if len(table) == len(named) * per:
            table["split"] = np.repeat(named, per)
        return table
    if splits is None and card.task == "forecast":  # past the table is all it can say
        table["split"] = table["split"].where(table["split"] == "future", None)
    return table


def _predict(
    model: keras.Model, card: records.ModelCard, options: data.DataOptions, model_uri: str
) -> pd.DataFrame:
    if card.task == "seq2seq":
        shape = getattr(model, "input_shape", None)
        if not (isinstance(shape, list) and len(shape) == 2 and shape[0][1:] == (card.window,)):
            raise InputError(
                f"the model takes inputs of shape {shape}, but preprocess.json describes a "
                f"source of {card.window} token ids and a decoder input: the model file is not "
                "this trial's",
                source=model_uri,
            )
        return _seq2seq(model, card, options)
    if card.task == "text":
        # a model of raw text holds its TextVectorization: it takes one string per row
        if options.text is not None:
            _check_fits(model, (1,), model_uri, "raw text, one string per row")
        else:
            _check_fits(model, (int(card.window),), model_uri, f"{card.window} token ids a text")
        return _text(model, card, options)
    window, features = int(card.window), card.features
    _check_fits(
        model, (window, features), model_uri, f"windows of {window} steps x {features} features"
    )
    scaler = data.Scaler(
        card.scaler["kind"],
        np.asarray(card.scaler["center"], dtype=np.float64),
        np.asarray(card.scaler["scale"], dtype=np.float64),
    )
    if card.task == "classify":
        return _classify(model, card, options, scaler)
    if card.task == "tag":
        return _tag(model, card, options, scaler)
    return _forecast(model, card, options, scaler)


def _check_fits(model: keras.Model, want: tuple[int, ...], src: str, what: str) -> None:
    """The model must take ``(batch, *want)`` as its ``preprocess.json`` says (``what``, in
    words); a model file swapped for another would otherwise fail inside Keras with a
    traceback."""
    shape = getattr(model, "input_shape", None)
    if (
        not isinstance(shape, tuple)
        or len(shape) != len(want) + 1
        or any(got is not None and got != w for got, w in zip(shape[1:], want, strict=True))
    ):
        raise InputError(
            f"the model takes inputs of shape {shape}, but preprocess.json describes {what}: "
            "the model file is not this trial's",
            source=src,
        )


def _model_uri(study: optuna.Study, trial_number: int | None) -> str:
    from optuna.trial import TrialState

    from tuner import study as studies

    if trial_number is None:
        trial = studies.best_trial(study)
        if trial is None:
            raise InputError(
                f"study {study.study_name!r} has no complete trial yet", field="--study"
            )
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not found:
            raise InputError(
                f"no trial {trial_number} in study {study.study_name!r}", field="--trial"
            )
        trial = found[0]
        if trial.state != TrialState.COMPLETE:
            raise InputError(
                f"trial {trial_number} is {trial.state.name}, not COMPLETE", field="--trial"
            )
    uri = trial.user_attrs.get(records.MODEL_URI)
    if not uri:
        raise InputError(
            f"trial {trial.number} has no saved model (only trials that were the best when they "
            "completed keep one); see `tuner best`",
            field="--trial",
        )
    return str(uri)


def _forecast(
    model: keras.Model, card: records.ModelCard, options: data.DataOptions, scaler: data.Scaler
) -> pd.DataFrame:
    import pandas as pd

    columns: list[str] = list(card.columns)
    target_index: list[int] = list(card.target_index)
    targets = [columns[i] for i in target_index]
    window, horizon = int(card.window), int(card.horizon)
    values, labels, filled = _read_series(options, columns, card.categories)
    n = len(values)
    if n < window:
        raise InputError(
            f"{n} rows hold no window of the model's length ({window})", source=options.path
        )
    scaled = scaler.transform(values)
    if card.stateful:  # read in order, state carried, from the row that leaves whole segments
        from tuner.training import reset_states

        first = n % window
        reset_states(model)
        out = model.predict(
            scaled[first:].reshape(-1, window, len(columns)), batch_size=1, verbose=0
        )
    else:
        # horizon 0: every window of the table, the last ones' targets beyond it
        first = window - 1
        x, _ = windowing.windows(scaled, scaled[:, target_index], window, 0)
        out = model.predict(x, batch_size=1024, verbose=0)
    pred = scaler.inverse(out.reshape(n - first, horizon, len(targets)), target_index)

    origin = np.repeat(np.arange(first, n), horizon)  # row of each forecast's last input
    step = np.tile(np.arange(1, horizon + 1), n - first)
    row = origin + step
    inside = row < n
    at = np.where(inside, row, 0)
    time_name = options.time or "row"
    times = pd.Series(labels[at], dtype=object).where(inside, None)
    # the steps past the table, at the series' own interval (row numbers go on by one)
    later = pd.Series(_later_times(labels, row - n + 1), dtype=object)
    times = times.where(inside, later)
    typed = times.convert_dtypes()  # numbers (whole ones too, with gaps) and times stay so
    times = typed if typed.dtype.kind in "iufM" else times
    # which split of the study each predicted row is in, if this table is the study's data
    split = np.full(n, "train", dtype=object)
    _, val, test = windowing.split_bounds(n, options.val_fraction, options.test_fraction)
    split[val], split[test] = "val", "test"
    table: dict[str, Any] = {
        "origin": labels[origin],
        "step": step,
        time_name: times,
        "split": np.where(inside, split[at], "future"),
    }
    for j, name in enumerate(targets):
        table[f"{name}_pred"] = pred[:, :, j].reshape(-1)
    for j, name in enumerate(targets):
        table[f"{name}_actual"] = np.where(inside, values[at, target_index[j]], np.nan)
        # an actual the NaN policy filled in is not a measurement
        table[f"{name}_interpolated"] = np.where(inside, filled[at, target_index[j]], False)
    return pd.DataFrame(table)


def _later_times(labels: np.ndarray, ahead: np.ndarray) -> list[Any]:
    """The time ``ahead`` steps after the last label (for steps past the table), at the
    series' median interval; None where that is not a time or the step is inside the table.
    A numeric time (a year, a step count) goes on in numbers, as the table's own labels."""
    import warnings

    import pandas as pd

    typed = pd.api.types.is_datetime64_any_dtype(pd.Series(labels))  # a Parquet's timestamps
    numbers = pd.to_numeric(pd.Series(labels), errors="coerce")
    if not typed and len(numbers) and numbers.notna().all():
        if len(numbers) < 2 or not numbers.is_monotonic_increasing:
            return [None] * len(ahead)
        step, last = numbers.diff().median(), numbers.iloc[-1]
        whole = pd.api.types.is_integer_dtype(numbers) and float(step).is_integer()
        numeric: list[Any] = []
        for k in ahead:
            t = last + step * int(k)
            numeric.append(None if k < 1 else int(t) if whole else float(t))
        return numeric
    try:
        with warnings.catch_warnings():  # "could not infer format": not a time, say nothing
            warnings.simplefilter("ignore")
            times = pd.to_datetime(pd.Series(labels), errors="raise")
    except (ValueError, TypeError, OverflowError):
        return [None] * len(ahead)
    if len(times) < 2 or not times.is_monotonic_increasing:
        return [None] * len(ahead)
    interval = times.diff().median()
    last = times.iloc[-1]
    dates_only = bool((times.dt.normalize() == times).all())
    out: list[Any] = []
    for k in ahead:
        if k < 1:
            out.append(None)
            continue
        t = last + interval * int(k)
        # as the table's own labels: timestamps stay timestamps, text stays text
        out.append(t if typed else t.date().isoformat() if dates_only else t.isoformat())
    return out


def _read_series(
    options: data.DataOptions, columns: list[str], categories: dict[str, list[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's columns in its order (text columns one-hot encoded as in training), sorted by
    time, after the study's NaN policy; the label of each row (its time, or its row number in
    the file); and which values the policy filled in."""
    src = options.path
    df = data.read_table(src)
    data._require_columns(df, [*categories, options.time], src)
    df = data.one_hot(df, categories)
    data._require_columns(df, [*columns, options.time], src)
    if options.time is not None:
        df = df.sort_values(options.time, kind="stable")
    for c in columns:
        if not data._is_numeric(df[c]):
            raise data.not_numeric(df, c, src)
    table = df[columns].astype("float64")
    labels = (df[options.time] if options.time is not None else df.index.to_series()).to_numpy()
    missing = table.isna().to_numpy()
    if options.nan == "drop":
        kept = ~missing.any(axis=1)
        labels, missing = labels[kept], missing[kept]
    # One split: a table to predict on has no train/validation boundary to keep apart.
    table = data._apply_nan_policy(table, options.nan, src, (slice(0, len(table)),))
    values = table.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise InputError(
            f"value at row {row} is not finite (infinite, or nothing to interpolate from)",
            source=src,
            field=columns[col],
        )
    return values, labels, missing


def _last_steps(x: np.ndarray, window: int, src: str) -> np.ndarray:
    """The last ``window`` steps of each sequence: what the model reads, as it was trained
    (a note says so when the sequences are longer)."""
    if x.shape[1] > window:
        log.info(
            "note: %s: sequences of %d steps; the model reads the last %d of each (its window, "
            "as it was trained)",
            src,
            x.shape[1],
            window,
        )
    return x[:, -window:, :]


def _classify(
    model: keras.Model, card: records.ModelCard, options: data.DataOptions, scaler: data.Scaler
) -> pd.DataFrame:

    classes: list[Any] = list(card.classes)
    window = int(card.window)
    x, actual, ids = _read_sequences(options)
    src = options.path
    if x.ndim != 3 or x.shape[1] < window or x.shape[2] != len(scaler.center):
        raise InputError(
            f"sequences of shape {x.shape[1:]} do not fit the model (at least {window} "
            f"timesteps, {len(scaler.center)} features)",
            source=src,
        )
    if not np.isfinite(x).all():
        bad = int(np.argmax(~np.isfinite(x).all(axis=(1, 2))))
        raise InputError(f"sequence {bad} has NaN or infinite values", source=src)
    if actual is not None and np.ndim(actual) != 1:  # a tagger's labels, one per step
        raise InputError(
            f"labels of shape {np.shape(actual)}: a classifier's are one per sequence",
            source=src,
            field="y",
        )
    x = _last_steps(x, window, src)
    f = x.shape[2]
    scaled = scaler.transform(x.reshape(-1, f)).reshape(x.shape)
    out = model.predict(scaled, batch_size=1024, verbose=0)
    return _labelled("sequence", ids, out, classes, actual)


def _labelled(
    name: str,
    ids: Any,
    out: np.ndarray,
    classes: list[Any],
    actual: Any,
) -> pd.DataFrame:
    """One row per input: ``name`` (its id), ``predicted``, ``p_<class>`` per class, and where
    the labels are known ``actual``, from the model's output (one sigmoid, or a softmax per
    class)."""
    import pandas as pd

    probs = np.hstack([1 - out, out]) if out.shape[1] == 1 else out
    table: dict[str, Any] = {name: ids, "predicted": [classes[i] for i in probs.argmax(1)]}
    for i, c in enumerate(classes):
        table[f"p_{c}"] = probs[:, i]
    if actual is not None:
        table["actual"] = actual
        unseen = sorted({_label(a) for a in np.asarray(actual).ravel()} - set(map(_label, classes)))
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
            log.info(
                "note: labels the model never saw in training (it cannot predict them): %s", shown
            )
    return pd.DataFrame(table)


def _label(value: Any) -> str:
    """A label as text, a whole number alike however stored (1, 1.0, "1")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


def _text(model: keras.Model, card: records.ModelCard, options: data.DataOptions) -> pd.DataFrame:
    """Raw text (a table's ``--text`` column; rows with none are refused, or skipped under
    ``--nan drop``) or token ids (an ``.npz``'s ``X``, fitted to the model's length and
    vocabulary as in training)."""
    src = options.path
    if options.text is None:
        x, actual = _read_arrays(src)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or (x.size and x.min() < 0):
            raise InputError(
                f"X must be token ids (samples x length, integers >= 0), got {x.dtype} of shape "
                f"{x.shape}",
                source=src,
                field="X",
            )
        ids = data.fit_tokens(x.astype(np.int64), int(card.vocab_size), int(card.window))
        out = model.predict(ids, batch_size=1024, verbose=0)
        return _labelled("row", np.arange(len(x)), out, list(card.classes), actual)
    df = data.read_table(src)
    data._require_columns(df, [options.text], src)
    rows = np.arange(len(df))
    missing = df[options.text].isna().to_numpy()
    if missing.any():
        if options.nan != "drop":
            where = data._where(df, int(np.argmax(missing)), src)
            raise InputError(
                f"no text at {where} (the study's NaN policy is {options.nan!r}; --nan drop "
                "skips such rows)",
                source=src,
                field=options.text,
            )
        df, rows = df[~missing], rows[~missing]
    from tuner.model import text_parts

    vectorizer, network = text_parts(model)  # strings do not pass a JAX or PyTorch graph
    texts = np.array(df[options.text].astype(str).tolist(), dtype=object)
    ids = np.concatenate(
        [np.asarray(vectorizer(texts[i : i + 1024])) for i in range(0, len(texts), 1024)]
    )
    out = network.predict(ids.astype(np.int32), batch_size=1024, verbose=0)
    label = options.target[0] if options.target else None
    actual = df[label].to_numpy() if label in df.columns else None
    return _labelled("row", rows, out, list(card.classes), actual)


def _read_sequences(options: data.DataOptions) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """``X`` (labels ``y`` are optional) from an ``.npz``, or a long table as in training."""
    src = options.path
    if src.lower().endswith(".npz"):
        x, y = _read_arrays(src)
        try:
            return x.astype(np.float64), y, np.arange(len(x))
        except (ValueError, TypeError) as e:
            raise InputError(f"X is not numeric: {e}", source=src, field="X") from None
    x, y = data._table_sequences(options)  # needs the label column, as in training
    df = data.read_table(src)
    if options.time is not None:
        df = df.sort_values([options.id, options.time], kind="stable")
    return x, y, _unique(df[options.id])


def _tag(
    model: keras.Model, card: records.ModelCard, options: data.DataOptions, scaler: data.Scaler
) -> pd.DataFrame:
    import pandas as pd

    window = int(card.window)
    x, actual, ids, steps = _read_steps(options, card)
    src = options.path
    if x.ndim != 3 or x.shape[1] < window or x.shape[2] != len(scaler.center):
        raise InputError(
            f"sequences of shape {x.shape[1:]} do not fit the model (at least {window} "
            f"timesteps, {len(scaler.center)} features)",
            source=src,
        )
    if not np.isfinite(x).all():
        bad = int(np.argmax(~np.isfinite(x).all(axis=(1, 2))))
        raise InputError(f"sequence {bad} has NaN or infinite values", source=src)
    x, steps = _last_steps(x, window, src), steps[:, -window:]
    scaled = scaler.transform(x.reshape(-1, x.shape[2])).reshape(x.shape)
    out = model.predict(scaled, batch_size=1024, verbose=0)
    n = len(x) * window
    table: dict[str, Any] = {
        "sequence": np.repeat(ids, window),
        options.time or "step": steps.reshape(-1),
    }
    if actual is not None:
        actual = actual[:, -window:]
    if card.classes:
        probs = out.reshape(n, -1)
        classes = list(card.classes)
        table["predicted"] = [classes[i] for i in probs.argmax(1)]
        for i, c in enumerate(classes):
            table[f"p_{c}"] = probs[:, i]
        if actual is not None:
            table["actual"] = actual.reshape(-1)
        return pd.DataFrame(table)
    center = np.asarray(card.target_scaler["center"], dtype=np.float64)
    scale = np.asarray(card.target_scaler["scale"], dtype=np.float64)
    values = out.reshape(n, len(card.targets)) * scale + center
    for j, name in enumerate(card.targets):
        table[f"{name}_pred"] = values[:, j]
    if actual is not None:
        actual = actual.reshape(n, -1)
        for j, name in enumerate(card.targets):
            table[f"{name}_actual"] = actual[:, j]
    return pd.DataFrame(table)


def _seq2seq(
    model: keras.Model, card: records.ModelCard, options: data.DataOptions
) -> pd.DataFrame:
    """Greedy decoding: from the start token, each step's most likely token is the next step's
    input, until every sequence has produced its end (0) or ``decoder_length`` steps."""
    import pandas as pd

    src = options.path
    arrays = data._read_arrays(src, ("encoder",))
    source = arrays["encoder"]
    if (
        source.ndim != 2
        or not np.issubdtype(source.dtype, np.integer)
        or (source.size and source.min() < 0)
    ):
        raise InputError(
            f"must be token ids (samples x length, integers >= 0), got {source.dtype} of shape "
            f"{source.shape}",
            source=src,
            field="encoder",
        )
    if source.size and source.max() >= card.vocab_size:
        raise InputError(
            f"token id {source.max()} is beyond the study's source vocabulary (ids < "
            f"{card.vocab_size})",
            source=src,
            field="encoder",
        )
    size = int(model.inputs[0].shape[1])  # the source length the model was trained on
    tokens = int((source != 0).sum(axis=1).max()) if source.size else 0
    if tokens > size:
        raise InputError(
            f"a source of {tokens} tokens is longer than the model's ({size}): decoding a cut "
            "source would not translate it",
            source=src,
            field="encoder",
        )
    source = data.fit_tokens(source.astype(np.int64), card.vocab_size, size)
    n, length = len(source), int(card.decoder_length)
    decoder = np.zeros((n, length), dtype=np.int64)
    decoder[:, 0] = card.target_vocab  # the start token
    out = np.zeros((n, length), dtype=np.int64)
    ended = np.zeros(n, dtype=bool)
    for t in range(length):
        probs = model.predict({"source": source, "decoder": decoder[:, : t + 1]}, verbose=0)
        token = np.where(ended, 0, probs[:, t].argmax(axis=-1))
        out[:, t] = token
        ended |= token == 0
        if ended.all():
            break
        if t + 1 < length:
            decoder[:, t + 1] = token
    table: dict[str, Any] = {"row": np.arange(n), "predicted": [_ids(row) for row in out]}
    with np.load(src, allow_pickle=False) as f:
        target = np.asarray(f["decoder_target"]) if "decoder_target" in f else None
    if target is not None and target.shape[0] == n:
        table["actual"] = [
            _ids(row)
            for row in data.fit_tokens(
                target.astype(np.int64), np.iinfo(np.int64).max, target.shape[1]
            )
        ]
        table["exact"] = [p == a for p, a in zip(table["predicted"], table["actual"], strict=True)]
    return pd.DataFrame(table)


def _ids(row: np.ndarray) -> str:
    """The token ids before the first 0 (the end), space-separated."""
    end = int(np.argmax(row == 0)) if (row == 0).any() else len(row)
    return " ".join(map(str, row[:end].tolist()))


def _read_steps(
    options: data.DataOptions, card: records.ModelCard
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``X``, the targets where the data has them, each sequence's id and each step's label
    (its time, or its index): an ``.npz``, or a long table read as in training (the target
    columns may be absent)."""
    src = options.path
    if src.lower().endswith(".npz"):
        x, y = _read_arrays(src)
        try:
            x = x.astype(np.float64)
        except (ValueError, TypeError) as e:
            raise InputError(f"X is not numeric: {e}", source=src, field="X") from None
        if x.ndim != 3:
            raise InputError(f"X must be samples x timesteps x features, got {x.shape}", source=src)
        steps = np.tile(np.arange(x.shape[1]), (len(x), 1))
        return x, y, np.arange(len(x)), steps
    df = data.read_table(src)
    if options.id is None:
        raise InputError("the study's data had no --id column", source=src)
    targets = list(options.target)
    data._require_columns(df, [options.id, options.time, *(options.features or ())], src)
    skip = {options.id, options.time, *targets}
    features = list(options.features or [c for c in df.columns if c not in skip])
    groups = data._groups(df, options, features, src)
    x = np.stack([g[features].to_numpy(np.float64) for _, g in groups])
    known = all(t in df.columns for t in targets)
    y = np.stack([g[targets].to_numpy() for _, g in groups]) if known else None
    if y is not None and card.classes:
        y = y[:, :, 0]
    if options.time is not None:
        steps = np.stack([g[options.time].to_numpy() for _, g in groups])
    else:
        steps = np.tile(np.arange(x.shape[1]), (len(x), 1))
    ids = np.asarray([key for key, _ in groups])
    return x, y, ids, steps


def _read_arrays(src: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` and, if present, ``y`` of an ``.npz`` (no pickles)."""
    if not Path(src).is_file():
        raise InputError("no such file", source=src)
    try:
        with np.load(src, allow_pickle=False) as f:
            if "X" not in f:
                raise InputError(f"no array X; has {list(f.keys())}", source=src)
            return np.asarray(f["X"]), (np.asarray(f["y"]) if "y" in f else None)
    except InputError:
        raise
    except Exception as e:  # unreadable, or object arrays that would need pickle
        raise InputError(f"cannot read the arrays: {e}", source=src) from None


def _unique(column: Any) -> np.ndarray:
    """Values in order of first appearance (the order of groupby(sort=False))."""
    import pandas as pd

    return np.asarray(pd.unique(column))
