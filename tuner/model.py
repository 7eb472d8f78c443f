"""``build_model(config, task, input_shape, n_outputs)``: the only module that builds Keras layers.

Keras 3 only (``import keras``), so the same code runs on TensorFlow (default), JAX or PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.config import PARAMS, TrialConfig
from tuner.errors import InputError

if TYPE_CHECKING:
    import keras

    from tuner.space import Space


def build_model(
    config: TrialConfig, task: str, input_shape: tuple[int, int], n_outputs: int
) -> keras.Model:
    """Stacked (optionally bidirectional) LSTMs and a dense head.

    forecast: ``Dense(n_outputs)`` (horizon x targets, linear). classify: ``Dense(1, sigmoid)``
    for two classes (``n_outputs == 1``), else ``Dense(n_outputs, softmax)``.
    ``return_sequences`` is set on every layer but the last.
    """
    import keras

    reg = None
    if config.l1 or config.l2:
        reg = keras.regularizers.L1L2(l1=config.l1, l2=config.l2)
    inputs = keras.Input(shape=input_shape, name="window")
    x = inputs
    for i, units in enumerate(config.units, start=1):
        lstm = keras.layers.LSTM(
            units,
            activation=config.activation,
            recurrent_activation=config.recurrent_activation,
            use_bias=config.use_bias,
            kernel_initializer=config.kernel_initializer,
            recurrent_initializer=config.recurrent_initializer,
            unit_forget_bias=config.unit_forget_bias,
            kernel_regularizer=reg,
            dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout,
            return_sequences=i < len(config.units),
            go_backwards=config.go_backwards,
            unroll=config.unroll,
            seed=config.seed + i,
            name=f"lstm_{i}",
        )
        if config.bidirectional:
            x = keras.layers.Bidirectional(lstm, merge_mode=config.merge_mode, name=f"bi_{i}")(x)
        else:
            x = lstm(x)
        if config.layer_dropout:
            x = keras.layers.Dropout(config.layer_dropout, seed=config.seed + i, name=f"drop_{i}")(
                x
            )
    if task == "classify":
        activation = "sigmoid" if n_outputs == 1 else "softmax"
        outputs = keras.layers.Dense(n_outputs, activation=activation, name="head")(x)
    else:
        outputs = keras.layers.Dense(n_outputs, name="head")(x)
    return keras.Model(inputs, outputs, name="lstm_tuner")


# Built-in Keras 3 names (a test checks each against the installed Keras): a space that uses
# only these is checked without importing Keras, which takes seconds (TensorFlow with it).
KNOWN_NAMES = {
    "initializer": frozenset(
        [
            "glorot_uniform",
            "glorot_normal",
            "he_uniform",
            "he_normal",
            "lecun_uniform",
            "lecun_normal",
            "orthogonal",
            "zeros",
            "ones",
            "identity",
            "random_normal",
            "random_uniform",
            "truncated_normal",
            "variance_scaling",
        ]
    ),
    "activation": frozenset(
        [
            "tanh",
            "sigmoid",
            "hard_sigmoid",
            "relu",
            "relu6",
            "elu",
            "selu",
            "gelu",
            "silu",
            "swish",
            "softplus",
            "softsign",
            "linear",
            "exponential",
            "leaky_relu",
            "mish",
        ]
    ),
}


def check_names(space: Space) -> None:
    """Check every initializer and activation name the space can produce against Keras."""
    unknown = [
        (name, kind, value)
        for name, spec in PARAMS.items()
        if (kind := spec.keras) is not None
        for value in space.candidates(name)
        if value not in KNOWN_NAMES[kind]
    ]
    if not unknown:
        return
    import keras

    getters = {"initializer": keras.initializers.get, "activation": keras.activations.get}
    for name, kind, value in unknown:
        try:
            getters[kind](value)
        except (ValueError, TypeError):
            raise InputError(
                f"unknown Keras {kind} {value!r}", source=space.source, field=f"params.{name}"
            ) from None
