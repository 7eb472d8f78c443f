"""Every hyperparameter of one trial, and the schema a search space is checked against.

``TrialConfig`` is what sampling produces and what ``model.py`` / ``training.py`` consume: plain
values, no Keras, no Optuna. ``PARAMS`` says, for each field a space may set, its type, the
values it may take and when it applies (``when``: only sampled if another parameter has one of
the given values, e.g. ``momentum`` only for SGD and RMSprop).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# A residual model keeps what its network learned only when that beats its start on
# validation at this level (``training.Start``), spent over a study's trials by the worker.
KEEP_LEVEL = 0.05


@dataclass(frozen=True)
class TrialConfig:
    # architecture
    layers: int = 1
    units: tuple[int, ...] = (64,)
    units_schedule: str = "equal"
    bidirectional: bool = False
    merge_mode: str = "concat"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    layer_dropout: float = 0.0
    kernel_initializer: str = "glorot_uniform"
    recurrent_initializer: str = "orthogonal"
    unit_forget_bias: bool = True
    use_bias: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    l1: float = 0.0
    l2: float = 0.0
    recurrent_l1: float = 0.0
    recurrent_l2: float = 0.0
    bias_l1: float = 0.0
    bias_l2: float = 0.0
    # around the LSTMs: what it starts from, what it sees, how its states become one vector
    residual: str = "none"
    highway: bool = False
    decoder: str = "dense"
    frontend: str = "none"
    conv_filters: int = 32
    conv_kernel: int = 5
    conv_stride: int = 2
    fcn: bool = False
    fcn_filters: int = 64
    pooling: str = "last"
    # text: the token ids' embedding (the sequence length is ``window``)
    vocab_size: int = 20_000
    embedding_dim: int = 128
    mask_padding: bool = True
    # data
    window: int = 24
    batch_size: int = 32
    scaler: str = "standard"
    # training
    loss: str = "mse"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.004
    momentum: float = 0.0
    nesterov: bool = False
    clipnorm: float = 0.0
    schedule: str = "constant"
    decay_rate: float = 0.9
    decay_steps: int = 1000
    restart_epochs: int = 5
    # budget (from the space's top level, not sampled)
    epochs: int = 20
    patience: int = 0
    min_steps_per_epoch: int = 0
    seed: int = 0
    # a residual model keeps its training below this p (the study's ``training.keep_level``)
    keep_level: float = KEEP_LEVEL

    @property
    def cudnn_eligible(self) -> bool:
        """Whether Keras can run these LSTM layers on the fused cuDNN kernel on a GPU.

        Keras falls back silently to a generic kernel 6-8x slower when any of these fails.
        """
        return (
            self.activation == "tanh"
            and self.recurrent_activation == "sigmoid"
            and self.recurrent_dropout == 0
            and not self.unroll
            and self.use_bias
        )

    def step_loop_forced(self, backend: str) -> bool:
        """Whether the backend cannot run these layers on its fused kernel: Keras 3.15 on
        PyTorch updates a stateful LSTM's state in place inside it (CPU and CUDA) and the
        backward pass fails (keras-team/keras#23462), so those take Keras's step loop."""
        return self.stateful and backend == "torch"

    def masked(self, task: str) -> bool:
        """Whether the LSTM layers get a mask: a text model masking its padding, every token
        seq2seq model (source and target are padded at the end)."""
        return task == "seq2seq" or (task == "text" and self.mask_padding)

    def fused_kernel(self, backend: str, task: str) -> bool:
        """Whether Keras 3.15 runs these LSTM layers on the backend's fused kernel on a GPU:
        the cuDNN conditions, no step loop forced by tuner, and on JAX and PyTorch no mask
        (their fused LSTMs take none and Keras falls back to its step loop; TensorFlow's
        takes the right-padded masks tuner makes)."""
        if not self.cudnn_eligible or self.step_loop_forced(backend):
            return False
        return backend == "tensorflow" or not self.masked(task)

    def as_params(self) -> dict[str, Any]:
        """Flat ``name -> value`` for MLflow: every field, per-layer units spelled out."""
        out = dataclasses.asdict(self)
        units = out.pop("units")
        for i, u in enumerate(units, start=1):
            out[f"units_{i}"] = u
        return out


# The fields the cuDNN kernel depends on and the one value each must have.
CUDNN_REQUIRES: dict[str, Any] = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
}


@dataclass(frozen=True)
class ParamSpec:
    kind: type  # int, float, bool or str
    low: float | None = None  # inclusive bounds on any value
    high: float | None = None
    choices: tuple[str, ...] | None = None  # allowed strings (None: free, or checked by Keras)
    keras: str | None = None  # "initializer" or "activation": names are checked against Keras
    # sampled only when another parameter has one of the given values; several: all of them
    when: tuple[str, tuple[Any, ...]] | tuple[tuple[str, tuple[Any, ...]], ...] | None = None
    tasks: tuple[str, ...] = ("forecast", "classify", "text", "tag", "seq2seq")
    doc: str = field(default="", compare=False)

    @property
    def conditions(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """``when`` as a tuple of ``(parameter, allowed values)`` pairs."""
        if self.when is None:
            return ()
        if isinstance(self.when[0], str):
            return (self.when,)
        return self.when

    def default(self, name: str) -> Any:
        if name == "units":
            return TrialConfig.units[0]
        return getattr(TrialConfig, name)


OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "exponential", "cosine", "cosine_restarts", "one_cycle")
SCALERS = ("standard", "minmax", "robust", "none")
LOSSES = ("mse", "mae", "huber")
RESIDUALS = ("none", "last", "mean", "ridge")
FRONTENDS = ("none", "conv")
POOLINGS = ("last", "mean", "attention")
DECODERS = ("dense", "seq2seq")
CONV = ("forecast", "classify")  # the tasks that take convolutions and pooling over time

PARAMS: dict[str, ParamSpec] = {
    "layers": ParamSpec(int, 1, 8, doc="number of stacked LSTM layers"),
    "units": ParamSpec(int, 1, 4096, doc="units of an LSTM layer (of the first, with shrink)"),
    "units_schedule": ParamSpec(
        str,
        choices=("equal", "shrink", "per_layer"),
        doc="equal: every layer has `units`; shrink: halved per deeper layer; "
        "per_layer: units_1..units_N sampled separately from the `units` range",
    ),
    "bidirectional": ParamSpec(bool, doc="wrap each LSTM in Bidirectional"),
    "merge_mode": ParamSpec(
        str, choices=("concat", "sum", "mul", "ave"), when=("bidirectional", (True,))
    ),
    "dropout": ParamSpec(float, 0.0, 0.95, doc="input dropout of each LSTM"),
    "recurrent_dropout": ParamSpec(float, 0.0, 0.95, doc="> 0 leaves the cuDNN kernel"),
    "layer_dropout": ParamSpec(float, 0.0, 0.95, doc="Dropout layer after each LSTM"),
    "kernel_initializer": ParamSpec(str, keras="initializer"),
    "recurrent_initializer": ParamSpec(str, keras="initializer"),
    "unit_forget_bias": ParamSpec(bool),
    "use_bias": ParamSpec(bool, doc="false leaves the cuDNN kernel"),
    "activation": ParamSpec(str, keras="activation", doc="other than tanh leaves cuDNN"),
    "recurrent_activation": ParamSpec(str, keras="activation", doc="other than sigmoid: no cuDNN"),
    # a Bidirectional wrapper runs both directions itself; go_backwards inside it fails in Keras
    "go_backwards": ParamSpec(bool, when=("bidirectional", (False,))),
    "stateful": ParamSpec(
        bool,
        tasks=("forecast",),
        when=(("bidirectional", (False,)), ("go_backwards", (False,))),
        doc="state carried from batch to batch over consecutive segments of the series (reset "
        "each epoch); every step forecasts the next horizon steps",
    ),
    "unroll": ParamSpec(bool, doc="true leaves the cuDNN kernel"),
    "l1": ParamSpec(float, 0.0, 1.0, doc="L1 regularization of the LSTM kernels"),
    "l2": ParamSpec(float, 0.0, 1.0, doc="L2 regularization of the LSTM kernels"),
    "recurrent_l1": ParamSpec(float, 0.0, 1.0, doc="L1 of the recurrent kernels"),
    "recurrent_l2": ParamSpec(float, 0.0, 1.0, doc="L2 of the recurrent kernels"),
    "bias_l1": ParamSpec(float, 0.0, 1.0, doc="L1 of the LSTM biases"),
    "bias_l2": ParamSpec(float, 0.0, 1.0, doc="L2 of the LSTM biases"),
    "decoder": ParamSpec(
        str,
        choices=DECODERS,
        tasks=("forecast",),
        when=("stateful", (False,)),
        doc="dense: one Dense layer gives every step ahead from the LSTMs' last output; "
        "seq2seq: the LSTMs encode the window, a decoder LSTM started from their last states "
        "[h, c] forecasts one step at a time, each step reading the one before",
    ),
    "residual": ParamSpec(
        str,
        choices=RESIDUALS,
        tasks=("forecast",),
        when=(("stateful", (False,)), ("decoder", ("dense",))),
        doc="the network learns the residual of a reference forecast added to its output: "
        "none; last (the last observed value) or mean (the window's mean), the window's inputs "
        "then shifted by the same (per-window normalization); ridge (the closed-form ridge "
        "autoregression of the training windows, frozen)",
    ),
    "highway": ParamSpec(
        bool,
        tasks=("forecast",),
        when=(("stateful", (False,)), ("decoder", ("dense",))),
        doc="add a trainable linear autoregression of the window to the output (LSTNet)",
    ),
    "frontend": ParamSpec(
        str,
        choices=FRONTENDS,
        tasks=CONV,
        when=("stateful", (False,)),
        doc="conv: a strided Conv1D before the LSTMs (downsampling)",
    ),
    "conv_filters": ParamSpec(int, 1, 4096, when=("frontend", ("conv",)), tasks=CONV),
    "conv_kernel": ParamSpec(int, 1, 1024, when=("frontend", ("conv",)), tasks=CONV),
    "conv_stride": ParamSpec(int, 1, 1024, when=("frontend", ("conv",)), tasks=CONV),
    "fcn": ParamSpec(
        bool,
        tasks=CONV,
        when=(("decoder", ("dense",)), ("stateful", (False,))),
        doc="a parallel fully convolutional branch (three Conv1D + BatchNorm + ReLU blocks, "
        "global average pooling) concatenated with the LSTMs' output: LSTM-FCN",
    ),
    "fcn_filters": ParamSpec(
        int,
        1,
        4096,
        when=("fcn", (True,)),
        tasks=CONV,
        doc="filters of the FCN blocks: f, 2f, f",
    ),
    "pooling": ParamSpec(
        str,
        choices=POOLINGS,
        tasks=("forecast", "classify", "text"),
        when=(("decoder", ("dense",)), ("stateful", (False,))),
        doc="what the head reads: the last state, the mean of all states, or attention pooling",
    ),
    "vocab_size": ParamSpec(
        int,
        3,
        10_000_000,
        tasks=("text",),
        doc="tokens kept (the most frequent in the training split, padding and "
        "out-of-vocabulary included); rarer ones become the out-of-vocabulary id",
    ),
    "embedding_dim": ParamSpec(
        int, 1, 4096, tasks=("text", "seq2seq"), doc="size of each token's vector"
    ),
    "mask_padding": ParamSpec(
        bool,
        tasks=("text",),
        doc="the LSTMs skip the padding at the end of short texts (right-padded: TensorFlow's "
        "cuDNN kernel still applies; JAX and PyTorch run Keras's step loop on a masked LSTM)",
    ),
    "window": ParamSpec(
        int,
        1,
        100_000,
        tasks=("forecast", "classify", "text", "tag"),
        doc="sequence length fed to the LSTM (text: tokens per text)",
    ),
    "batch_size": ParamSpec(int, 1, 65_536),
    "epochs": ParamSpec(
        int,
        1,
        100_000,
        doc="epochs a trial trains (searched: each trial draws its own, capped by --max-epochs; "
        "fixed: the same as the top-level epochs)",
    ),
    "scaler": ParamSpec(
        str,
        choices=SCALERS,
        tasks=("forecast", "classify", "tag"),
        doc="fitted on the training split only",
    ),
    "loss": ParamSpec(
        str,
        choices=LOSSES,
        tasks=("forecast", "tag"),
        doc="forecasts and per-step regressions; classifiers use crossentropy",
    ),
    "optimizer": ParamSpec(str, choices=OPTIMIZERS),
    "learning_rate": ParamSpec(float, 1e-8, 1e4),
    "weight_decay": ParamSpec(float, 0.0, 1.0, when=("optimizer", ("adamw",))),
    "momentum": ParamSpec(float, 0.0, 0.999, when=("optimizer", ("sgd", "rmsprop"))),
    "nesterov": ParamSpec(bool, when=("optimizer", ("sgd",))),
    "clipnorm": ParamSpec(float, 0.0, 1e6, doc="gradient clipping by norm; 0 is off"),
    "schedule": ParamSpec(str, choices=SCHEDULES, doc="learning-rate schedule"),
    "decay_rate": ParamSpec(float, 0.01, 1.0, when=("schedule", ("exponential",))),
    "decay_steps": ParamSpec(int, 1, 1_000_000_000, when=("schedule", ("exponential",))),
    "restart_epochs": ParamSpec(int, 1, 10_000, when=("schedule", ("cosine_restarts",))),
}
