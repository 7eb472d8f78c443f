"""Read the user's data, check it, split it, and scale it on the training split only.

Four tasks:

- forecast: a CSV or Parquet table; ``target`` columns are predicted ``horizon`` steps ahead from
  a window of every input column (features and the targets' own history). Split in time order.
- classify: labelled sequences, from an ``.npz`` (``X``: samples x timesteps x features, ``y``)
  or a long table (one row per timestep: ``id`` column, feature columns, label column ``target``).
  Split stratified by label.
- tag: a target per time step (many-to-many), from an ``.npz`` (``X``: samples x timesteps x
  features; ``y``: samples x timesteps of integer or text labels, sequence labelling, or of
  decimals, optionally x outputs, sequence regression) or a long table (``id``, ``time``, feature
  columns, the per-step ``target`` columns). Split at random by sequence.
- text: labelled texts, from a table (``text`` column, label column ``target``) or an ``.npz`` of
  token ids (``X``: samples x length, integers, 0 is padding; ``y``). Split stratified by label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tuner import windowing
from tuner.errors import InputError
from tuner.log import log

if TYPE_CHECKING:
    from tuner.config import TrialConfig
    from tuner.ridge import Ridge

NAN_POLICIES = ("fail", "drop", "interpolate")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class DataOptions:
    path: str
    task: str = "forecast"
    target: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    time: str | None = None
    id: str | None = None
    text: str | None = None
    horizon: int = 1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    nan: str = "fail"

    def to_spec(self) -> dict[str, Any]:
        """What a worker elsewhere needs to read the same data (no local path)."""
        return {
            "file": Path(self.path).name,
            "task": self.task,
            "target": list(self.target),
            "features": None if self.features is None else list(self.features),
            "time": self.time,
            "id": self.id,
            "text": self.text,
            "horizon": self.horizon,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "nan": self.nan,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], path: str) -> DataOptions:
        kw = {k: v for k, v in spec.items() if k != "file"}
        kw["target"] = tuple(kw.get("target", ()))
        if kw.get("features") is not None:
            kw["features"] = tuple(kw["features"])
        return cls(path=path, **kw)


@dataclass(frozen=True)
class Scaler:
    """``scaled = (x - center) / scale`` per column; fitted with scikit-learn, stored as JSON."""

    kind: str
    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Scaler:
        from sklearn import preprocessing

        f = x.shape[1]
        if kind == "none":
            return cls(kind, np.zeros(f), np.ones(f))
        if kind == "standard":
            s = preprocessing.StandardScaler().fit(x)
            return cls(kind, s.mean_, s.scale_)
        if kind == "robust":
            s = preprocessing.RobustScaler().fit(x)
            return cls(kind, s.center_, s.scale_)
        if kind == "minmax":  # sklearn: x * scale_ + min_
            s = preprocessing.MinMaxScaler().fit(x)
            return cls(kind, -s.min_ / s.scale_, 1.0 / s.scale_)
        raise ValueError(f"unknown scaler {kind!r}")

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.center) / self.scale).astype(np.float32)

    def inverse(self, x: np.ndarray, columns: list[int]) -> np.ndarray:
        return x * self.scale[columns] + self.center[columns]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": self.center.tolist(), "scale": self.scale.tolist()}


@dataclass(frozen=True)
class Arrays:
    """Model-ready arrays of one (scaler, window) choice."""

    x_train: Any  # an array, or a dict of arrays by input name (seq2seq: source, decoder)
    y_train: np.ndarray
    x_val: Any
    y_val: np.ndarray
    x_test: Any
    y_test: np.ndarray
    scaler: Scaler | None  # None for token ids
    vectorizer: Any = None  # text: the TextVectorization that made the token ids from raw text

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's input shape (of the first input: a seq2seq model's source)."""
        x = self.x_train
        first = next(iter(x.values())) if isinstance(x, dict) else x
        return tuple(first.shape[1:])


@dataclass(frozen=True)
class Targets:
    """A forecast of several targets: their names and units (each one's standard deviation on
    the training split, whatever the trial's scaler), which make errors comparable across
    targets of different units."""

    names: list[str]
    units: np.ndarray


@dataclass(frozen=True)
class Stream:
    """A stateful trial's data. Training: the training split as ``streams`` parallel,
    contiguous parts, cut into consecutive segments of ``window`` rows; batch ``i`` holds
    segment ``i`` of every part (``x_train[i * streams + j]``), so each batch continues the
    previous one and a state carried from batch to batch follows its part of the series. Each
    step's target is the next ``horizon`` rows' targets (step-major). Scoring: ``x_all`` is the
    whole series from row ``start`` as consecutive segments, read in order by a model of batch
    size 1; ``val`` and ``test`` are the origin rows (each forecast's last input row) scored."""

    x_train: np.ndarray  # (segments * streams, window, features)
    y_train: np.ndarray  # (segments * streams, window, n_outputs)
    streams: int
    x_all: np.ndarray  # (segments, window, features)
    y_all: np.ndarray  # (segments, window, n_outputs); NaN where the targets lie past the end
    start: int
    val: np.ndarray
    test: np.ndarray
    scaler: Scaler
    vectorizer: Any = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass
class Series:
    """A forecasting table: ``values`` is ``(n, columns)``, targets at ``target_index``."""

    values: np.ndarray
    columns: tuple[str, ...]
    target_index: list[int]
    horizon: int
    splits: tuple[slice, slice, slice]
    _cache: dict[tuple[str, int], Arrays] = field(default_factory=dict, repr=False)
    # (scaler, window, lags, baseline window) -> the ridge a ridge start starts from
    _ridges: dict[tuple[Any, ...], Ridge] = field(default_factory=dict, repr=False)
    # (baseline window, lags) -> the study's ridge baseline, fitted once, in standard units
    _baselines: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)
    _streams: dict[tuple[str, int, int], Stream] = field(default_factory=dict, repr=False)
    # text input columns, one-hot encoded: each one's categories (in the training split)
    categories: dict[str, list[str]] = field(default_factory=dict)
    # the lags the study's ridge baseline chose on validation: every ``residual: ridge`` trial
    # starts from a ridge on those lags (None: each window's ridge chooses its own)
    ridge_lags: int | None = None
    # the window the study's ridge baseline was fitted on: a trial whose window holds its lags
    # starts from that very ridge, in the trial's units (None: each trial fits its own)
    ridge_window: int | None = None
    task = "forecast"
    default_window = None  # a forecast's window is always the space's

    @property
    def n_outputs(self) -> int:
        return self.horizon * len(self.target_index)

    def for_config(self, config: TrialConfig) -> Arrays | Stream:
        if config.stateful:
            return self.stream(config.scaler, config.window, config.batch_size)
        return self.arrays(config.scaler, config.window)

    def fingerprint(self) -> str:
        return _digest(self.values, self.columns, self.target_index, self.horizon)

    def output_scale(self, arrays: Arrays | Stream) -> np.ndarray:
        assert arrays.scaler is not None
        return output_scale(arrays.scaler, self.target_index, self.horizon)

    def stream(self, scaler: str, window: int, batch_size: int) -> Stream:
        """A stateful trial's segments (``Stream``); ``batch_size`` parallel parts at most, as
        many as the training split holds segments for; cached per choice."""
        key = (scaler, window, batch_size)
        if key not in self._streams:
            train, val, test = self.splits
            sc = Scaler.fit(scaler, self.values[train])
            scaled = sc.transform(self.values)
            n, h = len(scaled), self.horizon
            ahead = np.full((n, self.n_outputs), np.nan, dtype=np.float32)
            targets = scaled[:, self.target_index]
            ahead[: n - h] = (
                sliding_window_view(targets[1:], h, axis=0).transpose(0, 2, 1).reshape(n - h, -1)
            )
            usable = train.stop - h  # origins whose targets are all in the training split
            streams = max(1, min(batch_size, usable // window))
            length = usable // streams // window * window
            if length == 0:
                raise ValueError(
                    f"the training split ({train.stop} rows) holds no segment of window={window} "
                    f"and horizon={h}"
                )
            segments = length // window
            rows = (
                np.arange(streams)[None, :, None] * length
                + np.arange(segments)[:, None, None] * window
                + np.arange(window)[None, None, :]
            ).reshape(-1, window)  # batch i, part j -> its rows
            start = n % window
            count = (n - start) // window
            self._streams[key] = Stream(
                x_train=scaled[rows],
                y_train=ahead[rows],
                streams=streams,
                x_all=scaled[start:].reshape(count, window, -1),
                y_all=ahead[start:].reshape(count, window, -1),
                start=start,
                # the origins (last observed rows) of every target of the split, as windowed
                # trials score them: the first target is the split's first row
                val=np.arange(max(val.start - 1, start), val.stop - h),
                test=np.arange(max(test.start - 1, start), test.stop - h),
                scaler=sc,
            )
        return self._streams[key]

    @property
    def metric(self) -> str:
        """What trials and baselines are compared on: the MAE in the target's units, or with
        several targets ``nmae``, scale-free."""
        return "nmae" if len(self.target_index) > 1 else "mae_original"

    def targets(self) -> Targets | None:
        """Several targets: their names and units (standard deviations on the training split)."""
        if len(self.target_index) < 2:
            return None
        std = self.values[self.splits[0]][:, self.target_index].std(axis=0)
        names = [self.columns[i] for i in self.target_index]
        return Targets(names, np.where(std > 0, std, 1.0))

    def ridge(self, scaler: str, window: int) -> Ridge:
        """The closed-form ridge autoregression a ``residual: ridge`` trial starts from, in the
        units of its scaler; cached. The study's ridge baseline itself (``ridge_window`` and
        ``ridge_lags`` set, the window holding the lags), so that a trial that goes back to its
        start hands back the baseline's very forecasts; else fitted on the trial's training
        windows (its lag count ``ridge_lags``, or chosen on validation). Fitted again per
        trial, a start differed from the baseline by its scaler's penalty and its windows, and
        a gone-back trial best on validation could lose to the baseline on test by a hair."""
        lags, baseline = self.ridge_lags, self.ridge_window
        if not (lags and baseline and lags <= window):
            baseline = None
        key = (scaler, window, lags, baseline)
        if key not in self._ridges:
            from tuner.ridge import fit_ridge_ar, fit_ridge_baseline, rescale

            a = self.arrays(scaler, window)
            assert a.scaler is not None
            if baseline is not None:
                assert lags is not None
                targets, h = self.target_index, self.horizon
                if (baseline, lags) not in self._baselines:  # one fit, rescaled per choice
                    self._baselines[baseline, lags] = fit_ridge_baseline(
                        self.values, self.splits, targets, h, baseline, lags
                    )
                ridge, center, scale = self._baselines[baseline, lags]
                units = (a.scaler.center, a.scaler.scale)
                self._ridges[key] = rescale(ridge, (center, scale), units, targets, h, window)
            else:
                scale = self.output_scale(a)
                self._ridges[key] = fit_ridge_ar(
                    a.x_train, a.y_train, a.x_val, a.y_val, scale, lags=lags
                )
        return self._ridges[key]

    def arrays(self, scaler: str, window: int) -> Arrays:
        """Windows of each split (``windowing.scored_rows``: every target of validation and test,
        whatever the window), scaled by ``scaler`` fitted on train; cached per choice."""
        key = (scaler, window)
        if key not in self._cache:
            train, val, test = self.splits
            sc = Scaler.fit(scaler, self.values[train])
            scaled = sc.transform(self.values)
            targets = scaled[:, self.target_index]
            rows = [windowing.scored_rows(s, window) for s in (train, val, test)]
            parts = [windowing.windows(scaled[r], targets[r], window, self.horizon) for r in rows]
            self._cache[key] = Arrays(*parts[0], *parts[1], *parts[2], scaler=sc)
        return self._cache[key]


@dataclass
class Sequences:
    """Labelled sequences: ``x`` is ``(samples, timesteps, features)``, ``y`` class indices."""

    x: np.ndarray
    y: np.ndarray
    classes: list[Any]
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]  # row indices of train, val, test
    _cache: dict[tuple[str, int], Arrays] = field(default_factory=dict, repr=False)
    task = "classify"

    @property
    def n_outputs(self) -> int:
        return 1 if len(self.classes) == 2 else len(self.classes)

    @property
    def default_window(self) -> int:
        """Without a window in the space, a classifier reads the whole sequence."""
        return int(self.x.shape[1])

    def for_config(self, config: TrialConfig) -> Arrays:
        return self.arrays(config.scaler, config.window)

    def output_scale(self, arrays: Any) -> None:
        return None

    metric = "accuracy"

    def fingerprint(self) -> str:
        return _digest(self.x, self.y, [str(c) for c in self.classes])

    def arrays(self, scaler: str, window: int) -> Arrays:
        """The last ``window`` timesteps of each sequence, scaled on train; cached per choice."""
        key = (scaler, window)
        if key not in self._cache:
            train, val, test = self.splits
            x = self.x[:, -window:, :]
            f = x.shape[2]
            sc = Scaler.fit(scaler, x[train].reshape(-1, f))
            scaled = sc.transform(x.reshape(-1, f)).reshape(x.shape)
            self._cache[key] = Arrays(
                scaled[train],
                self.y[train],
                scaled[val],
                self.y[val],
                scaled[test],
                self.y[test],
                scaler=sc,
            )
        return self._cache[key]


@dataclass
class Texts:
    """Labelled texts: raw ``texts`` (tokenized by a ``TextVectorization`` whose vocabulary is
    adapted on the training split only) or ``tokens``, token ids (samples x length, 0 is
    padding); ``y`` class indices. A trial's token ids are right-padded (padding after the
    text, as the cuDNN kernel needs with a mask) to its ``window`` and its ``vocab_size``."""

    y: np.ndarray
    classes: list[Any]
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]
    texts: np.ndarray | None = None  # object array of str
    tokens: np.ndarray | None = None  # int64, right-padded with 0
    _vocabulary: list[str] = field(default_factory=list, repr=False)
    _complete: bool = field(default=False, repr=False)  # the vocabulary holds every token
    _cache: dict[tuple[int, int], Arrays] = field(default_factory=dict, repr=False)
    task = "text"

    @property
    def n_outputs(self) -> int:
        return 1 if len(self.classes) == 2 else len(self.classes)

    @property
    def default_window(self) -> int:
        """Without a window in the space: the training texts' 95th-percentile length in
        tokens (whitespace-separated words for raw text), so few are cut and padding is short."""
        train = self.splits[0]
        if self.tokens is not None:
            lengths = (self.tokens[train] != 0).sum(axis=1)
        else:
            assert self.texts is not None
            lengths = np.array([len(t.split()) for t in self.texts[train]])
        return max(1, int(np.ceil(np.percentile(lengths, 95))))

    def for_config(self, config: TrialConfig) -> Arrays:
        return self.arrays(config.vocab_size, config.window)

    def output_scale(self, arrays: Any) -> None:
        return None

    metric = "accuracy"

    def fingerprint(self) -> str:
        if self.tokens is not None:
            return _digest(self.tokens, self.y, [str(c) for c in self.classes])
        assert self.texts is not None
        return _digest("\x00".join(self.texts.tolist()), self.y, [str(c) for c in self.classes])

    def whole_vocabulary(self) -> int:
        """The smallest ``vocab_size`` that keeps every token of the training split: its words
        as ``TextVectorization`` standardizes them (lower case, punctuation stripped), with the
        padding and out-of-vocabulary ids; token ids: the largest + 1 (ids at or beyond a
        trial's ``vocab_size`` become out of vocabulary)."""
        train = self.splits[0]
        if self.tokens is not None:
            return int(self.tokens[train].max()) + 1
        import re
        import string

        assert self.texts is not None
        punctuation = re.compile(f"[{re.escape(string.punctuation)}]")
        words = {w for t in self.texts[train] for w in punctuation.sub("", t.lower()).split()}
        return len(words) + 2

    def vocabulary(self, size: int) -> list[str]:
        """The ``size`` most frequent tokens of the training texts, padding ``""`` and the
        out-of-vocabulary ``[UNK]`` first (``TextVectorization``'s order); adapted once (again
        only for a larger size)."""
        if len(self._vocabulary) < size and not self._complete:
            from keras.layers import TextVectorization

            assert self.texts is not None
            layer = TextVectorization(max_tokens=size)
            layer.adapt(self.texts[self.splits[0]], batch_size=1024)
            self._vocabulary = [str(t) for t in layer.get_vocabulary()]
            self._complete = len(self._vocabulary) < size  # every token of the split is in
        return self._vocabulary[:size]

    def vectorizer(self, vocab_size: int, length: int) -> Any:
        """A ``TextVectorization`` with the training split's vocabulary, cut or padded (at the
        end) to ``length`` tokens."""
        from keras.layers import TextVectorization

        return TextVectorization(
            vocabulary=self.vocabulary(vocab_size)[2:], output_sequence_length=length
        )

    def arrays(self, vocab_size: int, window: int) -> Arrays:
        """Token ids of each split, ``window`` per text; cached per choice."""
        key = (vocab_size, window)
        if key not in self._cache:
            vectorizer = None
            if self.tokens is not None:
                ids = fit_tokens(self.tokens, vocab_size, window)
            else:
                vectorizer = self.vectorizer(vocab_size, window)
                assert self.texts is not None
                ids = np.asarray(vectorizer(self.texts), dtype=np.int32)
            train, val, test = self.splits
            self._cache[key] = Arrays(
                ids[train],
                self.y[train],
                ids[val],
                self.y[val],
                ids[test],
                self.y[test],
                scaler=None,
                vectorizer=vectorizer,
            )
        return self._cache[key]


@dataclass
class Steps:
    """A target per time step: ``x`` is ``(samples, timesteps, features)``; ``y`` is
    ``(samples, timesteps)`` class indices (labelling, ``classes`` non-empty) or
    ``(samples, timesteps, outputs)`` values (regression, named ``targets``), which are
    standardized on the training split (``y_center``, ``y_scale``) whatever the inputs' scaler,
    so every trial's loss is in the same units."""

    x: np.ndarray
    y: np.ndarray
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]
    classes: list[Any] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    y_center: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    _cache: dict[tuple[str, int], Arrays] = field(default_factory=dict, repr=False)
    task = "tag"

    @property
    def labels(self) -> bool:
        return bool(self.classes)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.labels else self.y.shape[2]

    @property
    def default_window(self) -> int:
        """Without a window in the space, a trial reads (and predicts) the whole sequence."""
        return int(self.x.shape[1])

    @property
    def metric(self) -> str:
        return "accuracy" if self.labels else "mae_original"

    def for_config(self, config: TrialConfig) -> Arrays:
        return self.arrays(config.scaler, config.window)

    def output_scale(self, arrays: Any) -> np.ndarray | None:
        return self.y_scale

    def fingerprint(self) -> str:
        return _digest(self.x, self.y, [str(c) for c in self.classes], self.targets)

    def arrays(self, scaler: str, window: int) -> Arrays:
        """The last ``window`` steps of each sequence and of its targets; inputs scaled on
        train (targets of a regression standardized once, on train); cached per choice."""
        key = (scaler, window)
        if key not in self._cache:
            x = self.x[:, -window:, :]
            y = self.y[:, -window:]
            f = x.shape[2]
            train, val, test = self.splits
            sc = Scaler.fit(scaler, x[train].reshape(-1, f))
            scaled = sc.transform(x.reshape(-1, f)).reshape(x.shape)
            if not self.labels:
                assert self.y_center is not None and self.y_scale is not None
                y = ((y - self.y_center) / self.y_scale).astype(np.float32)
            parts = [(scaled[s], y[s]) for s in (train, val, test)]
            self._cache[key] = Arrays(*parts[0], *parts[1], *parts[2], scaler=sc)
        return self._cache[key]


def output_scale(scaler: Scaler, target_index: list[int], horizon: int) -> np.ndarray:
    """Scale of each forecast output; outputs are step-major (step 0's targets, step 1's, ...)."""
    return np.tile(scaler.scale[target_index], horizon)


def fit_tokens(tokens: np.ndarray, vocab_size: int, length: int) -> np.ndarray:
    """Token ids right-padded (each row's non-zero ids first, in order), cut or padded with 0 to
    ``length``, ids at or beyond ``vocab_size`` replaced by 1 (out of vocabulary).

    >>> fit_tokens(np.array([[0, 0, 5, 9, 2]]), vocab_size=8, length=4).tolist()
    [[5, 1, 2, 0]]
    """
    order = np.argsort(tokens == 0, axis=1, kind="stable")
    packed = np.take_along_axis(tokens, order, axis=1)[:, :length]
    if packed.shape[1] < length:
        packed = np.pad(packed, ((0, 0), (0, length - packed.shape[1])))
    return np.where(packed >= vocab_size, 1, packed).astype(np.int32)


@dataclass
class Pairs:
    """Pairs of token sequences (seq2seq): ``source`` (samples x length) and ``target``
    (samples x length) integer ids, 0 the padding, each row's ids first (re-packed). Target
    ids are ``< target_vocab``; a target's first padding is its end (a decoded 0 ends it). The
    decoder reads the target shifted right behind a start token, ``target_vocab`` itself
    (teacher forcing), and predicts a softmax over the target ids at every step."""

    source: np.ndarray
    target: np.ndarray
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]
    task = "seq2seq"
    metric = "accuracy"

    @property
    def source_vocab(self) -> int:
        return int(self.source.max()) + 1

    @property
    def target_vocab(self) -> int:
        return int(self.target.max()) + 1

    @property
    def n_outputs(self) -> int:
        return self.target_vocab

    @property
    def default_window(self) -> int:
        return int(self.source.shape[1])

    def decoder_input(self, target: np.ndarray) -> np.ndarray:
        """``target`` shifted right one step behind the start token (teacher forcing)."""
        start = np.full((len(target), 1), self.target_vocab, dtype=target.dtype)
        return np.concatenate([start, target[:, :-1]], axis=1)

    def for_config(self, config: TrialConfig) -> Arrays:
        train, val, test = self.splits

        def x(idx: np.ndarray) -> dict[str, np.ndarray]:
            return {"source": self.source[idx], "decoder": self.decoder_input(self.target[idx])}

        return Arrays(
            x(train),
            self.target[train],
            x(val),
            self.target[val],
            x(test),
            self.target[test],
            scaler=None,
        )

    def output_scale(self, arrays: Any) -> None:
        return None

    def fingerprint(self) -> str:
        return _digest(self.source, self.target)


Dataset = Series | Sequences | Texts | Steps | Pairs


def load(options: DataOptions, max_window: int) -> Dataset:
    """Read and check the data for a space whose largest window is ``max_window``."""
    if options.nan not in NAN_POLICIES:
        raise InputError(
            f"unknown NaN policy {options.nan!r}; valid: {', '.join(NAN_POLICIES)}", field="--nan"
        )
    for name in ("val_fraction", "test_fraction"):
        v = getattr(options, name)
        if not 0 < v < 0.5:
            raise InputError(f"must be in (0, 0.5), got {v!r}", field=f"--{name.replace('_', '-')}")
    if options.task == "classify":
        return _load_sequences(options, max_window)
    if options.task == "text":
        return _load_texts(options)
    if options.task == "tag":
        return _load_steps(options, max_window)
    if options.task == "seq2seq":
        return _load_pairs(options)
    return _load_series(options, max_window)


def read_table(path: str) -> Any:
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory; name the data file in it", source=path)
    if not p.is_file():
        raise InputError("no such file", source=path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unknown file type {suffix!r}; valid: {', '.join(TABLE_SUFFIXES)} "
            "(classify, tag and text also .npz; seq2seq only .npz)",
            source=path,
        )
    try:
        df = pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
    except Exception as e:  # pandas raises many types for unreadable files
        raise InputError(f"cannot read the table: {e}", source=path) from None
    if len(df) == 0:
        columns = ", ".join(map(str, df.columns)) or "none"
        raise InputError(f"the table has no rows (columns: {columns})", source=path)
    if isinstance(df.index, pd.DatetimeIndex) or any(n is not None for n in df.index.names):
        df = df.reset_index()  # a Parquet file's time or named index: a column like any other
    elif not isinstance(df.index, pd.RangeIndex):  # pandas' leftover row numbers: not data
        df = df.reset_index(drop=True)
    return df


def _load_series(options: DataOptions, max_window: int) -> Series:
    df = read_table(options.path)
    src = options.path
    if not options.target:
        raise InputError(
            "name the column(s) to forecast with --target", source=src, field="--target"
        )
    _require_columns(df, [*options.target, *(options.features or ()), options.time], src)
    if options.time is not None:
        df = df.sort_values(options.time, kind="stable")
    else:
        timelike = _time_like(df)
        if timelike is not None:
            log.info(
                "note: %s: rows are taken in file order; column %r looks like a time: "
                "--time %s sorts by it",
                src,
                timelike,
                timelike,
            )
    if options.features is None:
        skip = {*options.target, options.time}
        counters = _counters(df, skip)
        for c in counters:
            log.info(
                "note: %s: column %r counts up in even steps (a time or a row number): not an "
                "input%s; --features names the inputs",
                src,
                c,
                f" (--time {c} makes it the time)" if options.time is None else "",
            )
        features = [
            c
            for c in df.columns
            if c not in skip and c not in counters and c != _time_like(df[[c]])
        ]
    else:
        features = list(options.features)
    for c in options.target:
        if not _is_numeric(df[c]):
            raise not_numeric(df, c, src)
    # Interpolation stays inside each split, so no split's values fill another's gaps.
    splits = windowing.split_bounds(len(df), options.val_fraction, options.test_fraction)
    text = [c for c in features if not _is_numeric(df[c])]
    categories = categories_of(df.iloc[splits[0]], text, src)
    df = one_hot(df, categories)
    features = [f for c in features for f in (encoded(c, categories[c]) if c in text else [c])]
    columns = [*features, *options.target]
    origin = {f: c for c in text for f in encoded(c, categories[c])}
    table = _apply_nan_policy(df[columns].astype("float64"), options.nan, src, splits, origin)
    if len(table) < len(df):
        log.warning(
            "%s: --nan drop removed %d of %d rows; a window across a removed row joins the rows "
            "around it as if they were adjacent (--nan interpolate keeps every time step)",
            src,
            len(df) - len(table),
            len(df),
        )
    values = table.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise InputError(
            f"value at row {row} is not finite (infinite, or a split with no value to "
            "interpolate from)",
            source=src,
            field=columns[col],
        )
    if options.horizon < 1:
        raise InputError(f"must be >= 1, got {options.horizon}", field="--horizon")
    splits = windowing.split_bounds(len(values), options.val_fraction, options.test_fraction)
    series = Series(
        values=values,
        columns=tuple(columns),
        categories=categories,
        target_index=[columns.index(t) for t in options.target],
        horizon=options.horizon,
        splits=splits,
    )
    check_windows_fit(series, max_window, src)
    return series


def check_windows_fit(series: Series, max_window: int, src: str) -> None:
    """Every split must hold one window of ``max_window`` rows and its horizon."""
    need = max_window + series.horizon
    for name, s in zip(("train", "validation", "test"), series.splits, strict=True):
        if s.stop - s.start < need:
            raise InputError(
                f"{len(series.values)} rows leave {s.stop - s.start} for the {name} split, fewer "
                f"than the largest window ({max_window}) + horizon ({series.horizon}) = {need}; "
                "use more data or a smaller window range",
                source=src,
            )


def _load_sequences(options: DataOptions, max_window: int) -> Sequences:
    src = options.path
    if src.lower().endswith(".npz"):
        x, y = _read_npz(src)
    else:
        x, y = _table_sequences(options)
    if x.ndim != 3:
        raise InputError(
            f"X must be samples x timesteps x features, got shape {x.shape}", source=src
        )
    if len(x) != len(y):
        raise InputError(f"X has {len(x)} samples but y has {len(y)}", source=src, field="y")
    _check_layout(x, src)
    x, y = _sequence_nans(x, y, options.nan, src)
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InputError(
            f"a classification needs at least 2 classes, found {len(classes)}: {classes.tolist()}",
            source=src,
            field="y" if src.endswith(".npz") else options.target[0],
        )
    if x.shape[1] < max_window:
        raise InputError(
            f"sequences have {x.shape[1]} timesteps, fewer than the largest window ({max_window})",
            source=src,
        )
    splits = _stratified_split(y_idx, options.val_fraction, options.test_fraction, src)
    return Sequences(
        x=x.astype(np.float32), y=y_idx.astype(np.int64), classes=classes.tolist(), splits=splits
    )


def _check_layout(x: np.ndarray, src: str) -> None:
    """``X`` is samples x timesteps x features. sktime, tslearn's channels-first exports and
    PyTorch put the channels before the time steps: one time step of many "features" is that
    layout (refused, naming the fix); fewer steps than features may be (a note)."""
    n, steps, features = x.shape
    if steps == 1 and features > 1:
        raise InputError(
            f"X has shape {x.shape}: 1 time step of {features} features. Sequences of "
            f"{features} steps with 1 channel (sktime's samples x channels x timesteps) need "
            "X.transpose(0, 2, 1) before saving",
            source=src,
            field="X",
        )
    if steps < features:
        log.info(
            "note: %s: X has %d time steps of %d features each; if it is samples x channels x "
            "timesteps (sktime's layout), save X.transpose(0, 2, 1)",
            src,
            steps,
            features,
        )


def _load_texts(options: DataOptions) -> Texts:
    src = options.path
    if src.lower().endswith(".npz"):
        x, y = _read_npz(src, dtype=None)
        if x.ndim != 2:
            raise InputError(
                f"X must be token ids, samples x length, got shape {x.shape}", source=src, field="X"
            )
        if not np.issubdtype(x.dtype, np.integer):
            raise InputError(
                f"X must hold integer token ids, got {x.dtype} (raw text goes in a table column "
                "named with --text)",
                source=src,
                field="X",
            )
        if x.size and x.min() < 0:
            raise InputError(f"token ids must be >= 0, found {x.min()}", source=src, field="X")
        if len(x) != len(y):
            raise InputError(f"X has {len(x)} samples but y has {len(y)}", source=src, field="y")
        texts, tokens, label = (
            None,
            fit_tokens(x.astype(np.int64), np.iinfo(np.int64).max, x.shape[1]),
            "y",
        )
    else:
        texts, y, label = _table_texts(options)
        tokens = None
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InputError(
            f"a classification needs at least 2 classes, found {len(classes)}: {classes.tolist()}",
            source=src,
            field=label,
        )
    splits = _stratified_split(y_idx, options.val_fraction, options.test_fraction, src)
    return Texts(
        y=y_idx.astype(np.int64),
        classes=classes.tolist(),
        splits=splits,
        texts=texts,
        tokens=tokens,
    )


def _load_pairs(options: DataOptions) -> Pairs:
    """An ``.npz`` with ``encoder`` and ``decoder_target``: integer token ids, 0 the padding."""
    src = options.path
    if not src.lower().endswith(".npz"):
        raise InputError(
            "seq2seq data is an .npz with arrays encoder and decoder_target (token ids)",
            source=src,
        )
    arrays = _read_arrays(src, ("encoder", "decoder_target"))
    for name, a in arrays.items():
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise InputError(
                f"must be integer token ids, samples x length; got {a.dtype} of shape {a.shape}",
                source=src,
                field=name,
            )
        if a.size and a.min() < 0:
            raise InputError(f"token ids must be >= 0, found {a.min()}", source=src, field=name)
    source, target = arrays["encoder"], arrays["decoder_target"]
    if len(source) != len(target):
        raise InputError(
            f"encoder has {len(source)} samples but decoder_target has {len(target)}",
            source=src,
            field="decoder_target",
        )
    if not (target != 0).any(axis=1).all():
        row = int(np.argmin((target != 0).any(axis=1)))
        raise InputError(
            f"target {row} is empty (only padding)", source=src, field="decoder_target"
        )
    splits = _random_split(len(source), options.val_fraction, options.test_fraction, src)
    packed = [
        fit_tokens(a.astype(np.int64), np.iinfo(np.int64).max, a.shape[1]) for a in (source, target)
    ]
    return Pairs(source=packed[0], target=packed[1], splits=splits)


def _table_texts(options: DataOptions) -> tuple[np.ndarray, np.ndarray, str]:
    """The text column (as str) and the label column of a table, after the NaN policy."""
    src = options.path
    df = read_table(src)
    if options.text is None:
        raise InputError(
            "name the column holding the texts with --text", source=src, field="--text"
        )
    if len(options.target) != 1:
        raise InputError(
            "name exactly one label column with --target", source=src, field="--target"
        )
    label = options.target[0]
    _require_columns(df, [options.text, label], src)
    column = df[options.text]
    if _is_numeric(column) and column.notna().any():
        raise InputError(
            f"column holds numbers, not text (first value {column.dropna().iloc[0]!r})",
            source=src,
            field=options.text,
        )
    missing = df[[options.text, label]].isna().to_numpy()
    if missing.any():
        if options.nan == "drop":
            df = df[~missing.any(axis=1)].reset_index(drop=True)
        else:
            row, col = np.argwhere(missing)[0]
            what = (
                "--nan drop"
                if options.nan == "fail"
                else "--nan drop (nothing to interpolate in text)"
            )
            raise InputError(
                f"no value at {_where(df, row, src)} (use {what})",
                source=src,
                field=(options.text, label)[col],
            )
    if len(df) == 0:
        raise InputError("no rows left after dropping those with no value", source=src)
    texts = df[options.text].astype(str).to_numpy(dtype=object)
    labels = df[label].to_numpy()
    if labels.dtype == object:
        labels = labels.astype(str)
    return texts, labels, label


def _sequence_nans(x: np.ndarray, y: np.ndarray, policy: str, src: str) -> tuple[np.ndarray, ...]:
    """NaN or infinite inputs of sequences (``x``: samples x timesteps x features) under the
    NaN policy: refused, their sequences dropped (with their ``y``), or interpolated in time."""
    x = np.where(np.isinf(x), np.nan, x)
    bad = np.isnan(x).any(axis=(1, 2))
    if not bad.any():
        return x, y
    if policy == "fail":
        raise InputError(
            f"NaN in sequence {int(np.argmax(bad))} (use --nan drop or --nan interpolate)",
            source=src,
            field="X",
        )
    if policy == "drop":
        return x[~bad], y[~bad]
    import pandas as pd  # interpolate along time, within each sequence

    x = np.stack([pd.DataFrame(s).interpolate(limit_direction="both").to_numpy() for s in x])
    if np.isnan(x).any():
        empty = int(np.argmax(np.isnan(x).any(axis=(1, 2))))
        raise InputError(
            f"sequence {empty} has a feature with no value to interpolate from",
            source=src,
            field="X",
        )
    return x, y


def _load_steps(options: DataOptions, max_window: int) -> Steps:
    """A target per step: labels (integers, text, booleans) or values (decimals)."""
    src = options.path
    if src.lower().endswith(".npz"):
        x, y = _read_npz(src, dtype=None)
        try:
            x = x.astype(np.float64)
        except (ValueError, TypeError):
            raise InputError(f"X is not numeric ({x.dtype})", source=src, field="X") from None
        names = ["y"] if y.ndim <= 2 else [f"y_{i}" for i in range(y.shape[2])]
        field_y = "y"
    else:
        x, y, names = _table_steps(options)
        field_y = options.target[0]
    if x.ndim != 3:
        raise InputError(
            f"X must be samples x timesteps x features, got shape {x.shape}", source=src
        )
    if y.shape[:2] != x.shape[:2] or y.ndim > 3:
        raise InputError(
            f"y must be samples x timesteps (x outputs), its first two axes X's {x.shape[:2]}; "
            f"got shape {y.shape}",
            source=src,
            field=field_y,
        )
    labels = y.dtype.kind in "iubUS"
    if labels and y.ndim != 2:
        raise InputError(
            f"labels are one per step (samples x timesteps), got shape {y.shape}",
            source=src,
            field=field_y,
        )
    if not labels:
        y = y.astype(np.float64).reshape(*y.shape[:2], -1)
        if not np.isfinite(y).all():
            i, t, _ = np.argwhere(~np.isfinite(y))[0]
            raise InputError(
                f"target of sequence {i} at step {t} is not finite", source=src, field=field_y
            )
    x, y = _sequence_nans(x, y, options.nan, src)
    if x.shape[1] < max_window:
        raise InputError(
            f"sequences have {x.shape[1]} timesteps, fewer than the largest window ({max_window})",
            source=src,
        )
    splits = _random_split(len(x), options.val_fraction, options.test_fraction, src)
    if labels:
        classes, idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise InputError(
                f"labelling needs at least 2 classes, found {len(classes)}: {classes.tolist()}",
                source=src,
                field=field_y,
            )
        return Steps(
            x=x.astype(np.float32),
            y=idx.reshape(y.shape).astype(np.int64),
            splits=splits,
            classes=classes.tolist(),
        )
    flat = y[splits[0]].reshape(-1, y.shape[2])
    scale = flat.std(axis=0)
    return Steps(
        x=x.astype(np.float32),
        y=y,
        splits=splits,
        targets=names,
        y_center=flat.mean(axis=0),
        y_scale=np.where(scale > 0, scale, 1.0),
    )


def _table_steps(options: DataOptions) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Long format with a target per row: labels (one column of integers or text) or values
    (one or more decimal columns)."""
    src = options.path
    df = read_table(src)
    if options.id is None:
        raise InputError(
            "a sequence table needs --id (the column naming each sequence)", source=src
        )
    if not options.target:
        raise InputError(
            "name the per-step target column(s) with --target", source=src, field="--target"
        )
    targets = list(options.target)
    _require_columns(df, [options.id, *targets, *(options.features or ()), options.time], src)
    numeric = [_is_numeric(df[t]) and df[t].dtype.kind == "f" for t in targets]
    if not all(numeric) and len(targets) > 1:
        raise InputError(
            "labels (integers or text) are one column; several targets must all be decimals",
            source=src,
            field=targets[[not n for n in numeric].index(True)],
        )
    for t in targets:
        if df[t].isna().any():
            raise InputError(
                f"no target at {_where(df, int(np.argmax(df[t].isna().to_numpy())), src)}",
                source=src,
                field=t,
            )
    skip = {options.id, options.time, *targets}
    features = list(options.features or [c for c in df.columns if c not in skip])
    groups = _groups(df, options, features, src)
    x = np.stack([g[features].to_numpy(np.float64) for _, g in groups])
    y = np.stack([g[targets].to_numpy() for _, g in groups])
    if all(numeric):
        return x, y, targets
    labels = y[:, :, 0]
    return x, (labels.astype(str) if labels.dtype.kind == "O" else labels), targets


def _random_split(
    n: int, val_fraction: float, test_fraction: float, src: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences split at random (seeded), each split holding at least one."""
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise InputError(
            f"{n} sequences are too few to split into train, validation and test", source=src
        )
    order = np.random.default_rng(0).permutation(n)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return np.sort(train), np.sort(val), np.sort(test)


def _read_arrays(path: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz`` (no pickles)."""
    if Path(path).is_dir():
        raise InputError("is a directory; name the data file in it", source=path)
    if not Path(path).is_file():
        raise InputError("no such file", source=path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in names if k not in f]
            if missing:
                raise InputError(f"missing arrays {missing}; has {list(f.keys())}", source=path)
            return {k: np.asarray(f[k]) for k in names}
    except InputError:
        raise
    except Exception as e:  # unreadable file, or object arrays that would need pickle
        raise InputError(f"cannot read the arrays: {e}", source=path) from None


def _read_npz(path: str, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (as ``dtype``; None keeps its own) and ``y`` of an ``.npz``."""
    arrays = _read_arrays(path, ("X", "y"))
    try:
        x = arrays["X"] if dtype is None else arrays["X"].astype(dtype)
    except (ValueError, TypeError) as e:
        raise InputError(f"cannot read the arrays: {e}", source=path) from None
    return x, arrays["y"]


def _table_sequences(options: DataOptions) -> tuple[np.ndarray, np.ndarray]:
    """Long format: one row per timestep, grouped by ``id``; every sequence the same length."""
    src = options.path
    df = read_table(src)
    if options.id is None:
        raise InputError(
            "a sequence table needs --id (the column naming each sequence)", source=src
        )
    if len(options.target) != 1:
        raise InputError(
            "name exactly one label column with --target", source=src, field="--target"
        )
    label = options.target[0]
    _require_columns(df, [options.id, label, *(options.features or ()), options.time], src)
    skip = {options.id, label, options.time}
    features = list(options.features or [c for c in df.columns if c not in skip])
    groups = _groups(df, options, features, src)
    labels = groups[label].nunique()
    if (labels > 1).any():
        raise InputError(
            f"sequence {labels[labels > 1].index[0]!r} has several labels", source=src, field=label
        )
    x = np.stack([g[features].to_numpy(np.float64) for _, g in groups])
    y = groups[label].first().to_numpy()
    return x, y


def _groups(df: Any, options: DataOptions, features: list[str], src: str) -> Any:
    """A long table's rows grouped by ``id`` (in time order), each sequence the same length,
    every feature numeric."""
    for c in features:
        if not _is_numeric(df[c]):
            raise not_numeric(df, c, src)
    if options.time is not None:
        df = df.sort_values([options.id, options.time], kind="stable")
    groups = df.groupby(options.id, sort=False)
    lengths = groups.size()
    if lengths.nunique() != 1:
        raise InputError(
            f"sequences differ in length ({lengths.min()} to {lengths.max()} rows)",
            source=src,
            field=options.id,
        )
    return groups


def _stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, src: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=0)
        train, val = train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest], random_state=0
        )
    except ValueError as e:  # too few members of a class for a stratified split
        raise InputError(f"cannot split by label: {e}", source=src) from None
    return np.sort(train), np.sort(val), np.sort(test)


def _require_columns(df: Any, names: list[str | None], src: str) -> None:
    for name in names:
        if name is not None and name not in df.columns:
            hint = ""
            if len(df.columns) == 1:
                sep = next((c for c in ";\t|" if c in str(df.columns[0])), None)
                if sep is not None:
                    hint = (
                        f" (the file looks {sep!r}-separated; tuner reads comma-separated CSV: "
                        f"convert it, e.g. pandas.read_csv(path, sep={sep!r}).to_csv(new_path))"
                    )
            raise InputError(
                f"no such column; columns: {', '.join(map(str, df.columns))}{hint}",
                source=src,
                field=name,
            )


def _where(df: Any, position: int, src: str) -> str:
    """Where the table's row at ``position`` (after sorting) is in the file: its line in a CSV
    (the header is line 1), its 1-based row in a Parquet file."""
    label = df.index[position]
    if isinstance(label, (int, np.integer)):
        return f"line {int(label) + 2}" if src.lower().endswith(".csv") else f"row {label + 1}"
    return f"row {position + 1}"


MAX_CATEGORIES = 32  # distinct values of a text input column that are one-hot encoded, at most


def categories_of(train: Any, names: list[str], src: str) -> dict[str, list[str]]:
    """Each text column's categories, as the training split has them (sorted); a column of
    more than ``MAX_CATEGORIES`` is refused (one-hot would be too wide; name the inputs)."""
    out = {}
    for name in names:
        values = sorted({str(v) for v in train[name].dropna()})
        if len(values) > MAX_CATEGORIES:
            raise InputError(
                f"text column with {len(values)} distinct values in the training split; up to "
                f"{MAX_CATEGORIES} are one-hot encoded: leave it out by naming the inputs with "
                "--features",
                source=src,
                field=name,
            )
        out[name] = values
    return out


def encoded(name: str, categories: list[str]) -> list[str]:
    """The one-hot columns of a text column: ``name=category``."""
    return [f"{name}={c}" for c in categories]


def one_hot(df: Any, categories: dict[str, list[str]]) -> Any:
    """``df`` with a 0/1 column per category of each text column (a value the training split
    never had is all zeros; a missing one is NaN in each, for the NaN policy to see)."""
    if not categories:
        return df
    import pandas as pd

    columns = {}
    for name, values in categories.items():
        text = df[name].astype(str).to_numpy()
        missing = df[name].isna().to_numpy()
        for c in values:
            columns[f"{name}={c}"] = np.where(missing, np.nan, (text == c).astype("float64"))
    return pd.concat([df, pd.DataFrame(columns, index=df.index)], axis=1)


def _time_like(df: Any) -> str | None:
    """The first column of dates or times (a datetime column, or text that parses as dates)."""
    import warnings

    import pandas as pd

    for name in df.columns:
        column = df[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            return str(name)
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            sample = column.dropna().head(20)
            if sample.empty or not all(
                isinstance(v, str) and any(c in v for c in "-/:") for v in sample
            ):
                continue
            try:
                with warnings.catch_warnings():  # "could not infer format"
                    warnings.simplefilter("ignore")
                    pd.to_datetime(sample, errors="raise")
            except (ValueError, TypeError, OverflowError):
                continue
            return str(name)
    return None


def _counters(df: Any, skip: set[Any]) -> list[str]:
    """Numeric columns that count up in even steps (a year, a row number, seconds): they hold
    the row's position only, and as an input scaled on the training split they run past its
    range in validation and test."""
    out = []
    for name in df.columns:
        column = df[name]
        if name in skip or len(column) < 3 or not _is_numeric(column):
            continue
        steps = np.diff(column.to_numpy(dtype=np.float64))
        if np.isfinite(steps).all() and steps[0] > 0 and np.allclose(steps, steps[0]):
            out.append(str(name))
    return out


def not_numeric(df: Any, column: str, src: str) -> InputError:
    """The error for a column that should hold numbers: where its first value that is not one
    is (a CSV's line), and that value."""
    import pandas as pd

    values = df[column]
    try:
        parsed = pd.to_numeric(values, errors="coerce")
    except (TypeError, ValueError):  # a type to_numeric refuses whole (a list per cell, ...)
        parsed = values
    bad = np.flatnonzero((values.notna() & pd.isna(parsed)).to_numpy())
    if len(bad):
        at = int(bad[0])
        return InputError(
            f"not a number at {_where(df, at, src)}: {values.iloc[at]!r}", source=src, field=column
        )
    return InputError(f"column is not numeric ({values.dtype})", source=src, field=column)


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _apply_nan_policy(
    df: Any, policy: str, src: str, splits: tuple[slice, ...], origin: dict[str, str] | None = None
) -> Any:
    """``origin``: the file's column of each derived one (a one-hot column's text column)."""
    cols = list(df.columns)
    missing = df[cols].isna()
    if not missing.to_numpy().any():
        return df
    if policy == "fail":
        row, col = np.argwhere(missing.to_numpy())[0]
        raise InputError(
            f"NaN at {_where(df, row, src)} (use --nan drop or --nan interpolate)",
            source=src,
            field=(origin or {}).get(cols[col], cols[col]),
        )
    if policy == "drop":
        return df.dropna(subset=cols).reset_index(drop=True)
    filled = df.copy()
    for part in splits:
        filled.iloc[part] = df.iloc[part].interpolate(limit_direction="both")
    return filled


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return "sha256:" + h.hexdigest()
