"""``build_model(config, task, input_shape, n_outputs)``: the only module that builds Keras layers.

Keras 3 only (``import keras``), so the same code runs on TensorFlow (default), JAX or PyTorch.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.config import PARAMS, TrialConfig
from tuner.errors import InputError

if TYPE_CHECKING:
    import keras

    from tuner.ridge import Ridge
    from tuner.space import Space


def build_model(
    config: TrialConfig,
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    target_index: list[int] | None = None,
    ridge: Ridge | None = None,
    regression: bool = False,
    vocab: tuple[int, int] | None = None,
    batch: int | None = None,
) -> keras.Model:
    """Stacked (optionally bidirectional) LSTMs and a dense head, with the options around them.

    forecast: ``Dense(n_outputs)`` (horizon x targets, linear). classify and text:
    ``Dense(1, sigmoid)`` for two classes (``n_outputs == 1``), else ``Dense(n_outputs, softmax)``.
    tag: every LSTM returns its sequence and a ``TimeDistributed(Dense)`` head gives each step a
    softmax over the classes, or (``regression``) ``n_outputs`` linear values.
    forecast ``stateful``: the same per-step head (each step forecasts the next ``n_outputs``),
    on LSTMs that keep their state from batch to batch; the model's batch size is fixed
    (``batch``).
    seq2seq: ``input_shape`` is the source's ``(length,)`` and ``vocab`` the source and target
    vocabularies; the LSTMs encode the source's embedding (padding masked), and a decoder LSTM
    started from their last ``[h, c]`` reads the target shifted behind a start token (id
    ``target vocabulary``, teacher forcing) into a softmax over the target ids at every step.
    text: ``input_shape`` is ``(window,)`` token ids, read by an ``Embedding`` (``vocab_size`` x
    ``embedding_dim``) that masks the padding (id 0) when ``mask_padding``: the LSTMs skip it,
    mean and attention pooling leave it out.
    ``return_sequences`` is set on every layer but the last (on every layer when the head pools
    over time). Around the LSTMs, each off by default:

    - ``frontend: conv``: a strided ``Conv1D`` shortens long sequences before the LSTMs;
    - ``fcn``: a parallel fully convolutional branch on the same (front-ended) sequence,
      concatenated with the LSTMs' output;
    - ``pooling``: the last state, the mean of all states, or attention pooling;
    - forecast ``residual``: a frozen reference forecast is added to the output and the network,
      whose head starts at zero, learns what the reference misses (a trial starts from the
      reference's accuracy). ``last`` / ``mean`` (of the window's target columns, which needs
      ``target_index``) also shift the window's inputs by the same statistic; ``ridge`` is the
      closed-form ``ridge`` fitted on the trial's training windows;
    - forecast ``highway``: a trainable linear map of the window, starting at zero, is added.

    Every layer is a stock Keras layer, so a saved model loads with ``safe_mode=True``.
    """
    import keras

    L = keras.layers

    def regularizer(l1: float, l2: float) -> Any:
        return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None

    mask = None  # text: where the tokens are not padding (for attention pooling)
    if task in ("text", "seq2seq"):
        inputs = keras.Input(
            shape=input_shape, dtype="int32", name="tokens" if task == "text" else "source"
        )
        x = L.Embedding(
            config.vocab_size if vocab is None else vocab[0],
            config.embedding_dim,
            mask_zero=config.mask_padding or task == "seq2seq",
            name="embedding",
        )(inputs)
        if config.mask_padding and task == "text":
            mask = keras.ops.expand_dims(keras.ops.not_equal(inputs, 0), -1)
        window, features = input_shape[0], config.embedding_dim
    else:
        window, features = input_shape
        inputs = keras.Input(shape=input_shape, batch_size=batch, name="window")
        x = inputs
    stat = None  # the per-window statistic a last/mean residual adds back
    if task == "forecast" and config.residual in ("last", "mean"):
        if config.residual == "last":
            stat = L.Flatten(name="last_step")(L.Cropping1D((window - 1, 0), name="crop")(inputs))
        else:
            stat = L.GlobalAveragePooling1D(name="window_mean")(inputs)
        x = L.Subtract(name="normalized")([inputs, L.RepeatVector(window, name="repeat")(stat)])
    if config.frontend == "conv":
        x = L.Conv1D(
            config.conv_filters,
            config.conv_kernel,
            strides=config.conv_stride,
            padding="same",
            activation="relu",
            name="frontend",
        )(x)
    branch = x  # the FCN branch reads what the LSTMs read (shortened by the front end)
    stateful = task == "forecast" and config.stateful
    pooled = config.pooling != "last" or task == "tag" or stateful  # every step's state goes on
    seq2seq = task == "seq2seq" or (task == "forecast" and config.decoder == "seq2seq")
    states: list[Any] = []  # seq2seq: the last layer's [h, c] (both directions', joined)
    cudnn: bool | str = False if config.step_loop_forced(keras.backend.backend()) else "auto"
    for i, units in enumerate(config.units, start=1):
        last = i == len(config.units)
        lstm = L.LSTM(
            units,
            activation=config.activation,
            recurrent_activation=config.recurrent_activation,
            use_bias=config.use_bias,
            kernel_initializer=config.kernel_initializer,
            recurrent_initializer=config.recurrent_initializer,
            unit_forget_bias=config.unit_forget_bias,
            kernel_regularizer=regularizer(config.l1, config.l2),
            recurrent_regularizer=regularizer(config.recurrent_l1, config.recurrent_l2),
            bias_regularizer=regularizer(config.bias_l1, config.bias_l2),
            dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout,
            return_sequences=(pooled and not seq2seq) or not last,
            return_state=seq2seq and last,
            go_backwards=config.go_backwards,
            stateful=stateful,
            unroll=config.unroll,
            use_cudnn=cudnn,
            seed=config.seed + i,
            name=f"lstm_{i}",
        )
        if config.bidirectional:
            x = L.Bidirectional(lstm, merge_mode=config.merge_mode, name=f"bi_{i}")(x)
        else:
            x = lstm(x)
        if seq2seq and last:  # [output, h, c] or [output, h_fwd, c_fwd, h_bwd, c_bwd]
            x, states = x[0], list(x[1:])
            if len(states) == 4:
                states = [
                    L.Concatenate(name="encoder_h")([states[0], states[2]]),
                    L.Concatenate(name="encoder_c")([states[1], states[3]]),
                ]
        if config.layer_dropout:
            x = L.Dropout(config.layer_dropout, seed=config.seed + i, name=f"drop_{i}")(x)
    if task == "seq2seq":
        assert vocab is not None
        return _token_decoder(config, inputs, states, vocab[1])
    if task == "tag" or stateful:
        head = L.Dense(n_outputs, activation=None if regression or stateful else "softmax")
        outputs = L.TimeDistributed(head, name="head")(x)
        return keras.Model(inputs, outputs, name="lstm_tuner")
    if config.pooling == "mean":
        x = L.GlobalAveragePooling1D(name="mean_pool")(x)
    elif config.pooling == "attention":  # softmax over time of a learned score, then a sum
        score = L.Dense(1, name="score")(x)
        weights = L.Softmax(axis=1, name="attention")(score, mask=mask)
        x = L.Flatten(name="attended")(L.Dot(axes=1, name="attention_pool")([weights, x]))
    if config.fcn:
        y = branch
        for j, (mult, kernel) in enumerate(((1, 8), (2, 5), (1, 3)), start=1):
            y = L.Conv1D(config.fcn_filters * mult, kernel, padding="same", name=f"fcn_conv_{j}")(y)
            y = L.BatchNormalization(name=f"fcn_norm_{j}")(y)
            y = L.Activation("relu", name=f"fcn_relu_{j}")(y)
        x = L.Concatenate(name="lstm_fcn")([x, L.GlobalAveragePooling1D(name="fcn_pool")(y)])
    if task in ("classify", "text"):
        activation = "sigmoid" if n_outputs == 1 else "softmax"
        outputs = L.Dense(n_outputs, activation=activation, name="head")(x)
        return keras.Model(inputs, outputs, name="lstm_tuner")
    residual = config.residual != "none"
    if seq2seq:
        if target_index is None:
            raise ValueError("decoder='seq2seq' needs the target columns")
        outputs = _decoder(config, inputs, states, features, target_index, n_outputs, residual)
    else:
        outputs = L.Dense(
            n_outputs, kernel_initializer="zeros" if residual else "glorot_uniform", name="head"
        )(x)
    terms = [outputs]
    reference = None
    if stat is not None:
        if target_index is None:
            raise ValueError(f"residual={config.residual!r} needs the target columns")
        reference = L.Dense(n_outputs, use_bias=False, trainable=False, name="reference")
        terms.append(reference(stat))
        reference.set_weights([selection(features, target_index, n_outputs)])
    elif config.residual == "ridge":
        if ridge is None:
            raise ValueError("residual='ridge' needs the ridge fitted on the training windows")
        flat = L.Flatten(name="flat_window")(inputs)
        reference = L.Dense(n_outputs, trainable=False, name="reference")
        terms.append(reference(flat))
        reference.set_weights([ridge.coef, ridge.intercept])
    if config.highway:
        flat = L.Flatten(name="highway_window")(inputs)
        terms.append(L.Dense(n_outputs, kernel_initializer="zeros", name="highway")(flat))
    if len(terms) > 1:
        outputs = L.Add(name="forecast")(terms)
    return keras.Model(inputs, outputs, name="lstm_tuner")


def _decoder(
    config: TrialConfig,
    inputs: Any,
    states: list[Any],
    features: int,
    target_index: list[int],
    n_outputs: int,
    residual: bool,
) -> Any:
    """A seq2seq decoder, unrolled over the horizon: an LSTM started from the encoder's
    ``states`` reads the last observed targets, its ``Dense`` head gives step 1's, which the
    next step reads, and so on (the same layers at every step). It runs free in training as at
    prediction: each step reads the step the model forecast, never the true one, so the
    validation error pruning sees is the error of the forecasts ``tuner predict`` makes.
    Outputs are step-major (step 1's targets, step 2's, ...), as the dense head's."""
    import keras

    L = keras.layers
    n_targets = len(target_index)
    horizon = n_outputs // n_targets
    units = int(states[0].shape[-1])
    decoder = L.LSTM(
        units,
        return_state=True,
        kernel_initializer=config.kernel_initializer,
        recurrent_initializer=config.recurrent_initializer,
        seed=config.seed,
        name="decoder",
    )
    head = L.Dense(
        n_targets, kernel_initializer="zeros" if residual else "glorot_uniform", name="head"
    )
    last = L.Flatten(name="decoder_start")(
        L.Cropping1D((int(inputs.shape[1]) - 1, 0), name="decoder_crop")(inputs)
    )
    observed = L.Dense(n_targets, use_bias=False, trainable=False, name="last_targets")
    previous = observed(last)
    observed.set_weights([selection(features, target_index, n_targets)])
    steps = []
    for k in range(1, horizon + 1):
        step = L.Reshape((1, n_targets), name=f"decoder_in_{k}")(previous)
        out, h, c = decoder(step, initial_state=states)
        states = [h, c]
        previous = head(out)
        steps.append(previous)
    return steps[0] if horizon == 1 else L.Concatenate(name="decoded")(steps)


def _token_decoder(
    config: TrialConfig, inputs: Any, states: list[Any], target_vocab: int
) -> keras.Model:
    """The decoder of a token seq2seq model: the shifted target (``decoder`` input, any length;
    the start token is ``target_vocab``) through its own embedding (padding masked) into an LSTM
    started from the encoder's ``states``, and a softmax over the target ids."""
    import keras

    L = keras.layers
    decoder_in = keras.Input(shape=(None,), dtype="int32", name="decoder")
    y = L.Embedding(
        target_vocab + 1, config.embedding_dim, mask_zero=True, name="decoder_embedding"
    )(decoder_in)
    y = L.LSTM(
        int(states[0].shape[-1]),
        return_sequences=True,
        kernel_initializer=config.kernel_initializer,
        recurrent_initializer=config.recurrent_initializer,
        dropout=config.dropout,
        seed=config.seed,
        name="decoder_lstm",
    )(y, initial_state=states)
    outputs = L.Dense(target_vocab, activation="softmax", name="head")(y)
    return keras.Model([inputs, decoder_in], outputs, name="lstm_tuner_seq2seq")


def text_model(model: keras.Model, vectorizer: Any) -> keras.Model:
    """``model`` behind the ``TextVectorization`` that made its token ids: the saved model takes
    raw strings (``batch x 1``), so ``tuner predict`` and a user's own code feed it text."""
    import keras

    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    return keras.Model(inputs, model(vectorizer(inputs)), name="lstm_tuner_text")


def text_parts(model: keras.Model) -> tuple[Any, keras.Model]:
    """A saved text model's ``TextVectorization`` and the network behind it. On JAX and PyTorch
    a model cannot take strings through its graph, so text is vectorized first, eagerly, as in
    training; on TensorFlow the whole model takes them too."""
    import keras

    vectorizer = next(x for x in model.layers if isinstance(x, keras.layers.TextVectorization))
    network = next(x for x in model.layers if isinstance(x, keras.Model))
    return vectorizer, network


def selection(features: int, target_index: list[int], n_outputs: int) -> np.ndarray:
    """The ``(features, n_outputs)`` 0/1 matrix that copies each target's column to its outputs
    at every step ahead (outputs are step-major: step 0's targets, step 1's, ...)."""
    out = np.zeros((features, n_outputs), dtype="float32")
    for k in range(n_outputs // len(target_index)):
        for j, column in enumerate(target_index):
            out[column, k * len(target_index) + j] = 1.0
    return out


# Built-in Keras 3 names (a test checks each against the installed Keras): a space that uses
# only these is checked without importing Keras, which takes seconds (TensorFlow with it).
# Every name Keras 3 takes for these (``keras.initializers.get`` / ``keras.activations.get``):
# a space's names are checked here without importing the framework (seconds on a busy machine).
# tests/test_model.py checks the lists against the installed Keras, both ways.
KNOWN_NAMES = {
    "initializer": frozenset(
        [
            "glorot_normal",
            "glorot_uniform",
            "he_normal",
            "he_uniform",
            "identity",
            "lecun_normal",
            "lecun_uniform",
            "ones",
            "orthogonal",
            "random_normal",
            "random_uniform",
            "stft",
            "truncated_normal",
            "variance_scaling",
            "zeros",
        ]
    ),
    "activation": frozenset(
        [
            "celu",
            "elu",
            "exponential",
            "gelu",
            "glu",
            "hard_shrink",
            "hard_sigmoid",
            "hard_silu",
            "hard_swish",
            "hard_tanh",
            "leaky_relu",
            "linear",
            "log_sigmoid",
            "log_softmax",
            "mish",
            "relu",
            "relu6",
            "selu",
            "sigmoid",
            "silu",
            "soft_shrink",
            "softmax",
            "softplus",
            "softsign",
            "sparse_plus",
            "sparse_sigmoid",
            "sparsemax",
            "squareplus",
            "swish",
            "tanh",
            "tanh_shrink",
            "threshold",
        ]
    ),
}


def check_names(space: Space) -> None:
    """Check every initializer and activation name the space can produce against Keras's
    (``KNOWN_NAMES``: no framework import, so a misspelling is reported at once)."""
    unknown = [
        (name, kind, value)
        for name, spec in PARAMS.items()
        if (kind := spec.keras) is not None
        for value in space.candidates(name)
        if value not in KNOWN_NAMES[kind]
    ]
    for name, kind, value in unknown:
        close = difflib.get_close_matches(str(value), sorted(KNOWN_NAMES[kind]), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(
            f"unknown Keras {kind} {value!r}{hint}; valid: {', '.join(sorted(KNOWN_NAMES[kind]))}",
            source=space.source,
            field=f"params.{name}",
            line=space.lines.get(("params", name)),
        )
