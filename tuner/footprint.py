"""A trial's size before it is built: parameters (exactly as Keras counts them) and an estimate
of the memory training takes, from the config's shape alone. Pure arithmetic: no Keras.

A worker prunes a configuration over its limits (``--max-params``; ``--max-memory``, by default
the device's memory) with the reason, instead of running it into an out-of-memory error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from tuner.config import TrialConfig

MAX_PARAMS_ENV = "TUNER_MAX_PARAMS"  # set by --max-params; trial processes inherit it
MAX_MEMORY_ENV = "TUNER_MAX_MEMORY_MB"  # set by --max-memory
FLOAT = 4  # bytes of a float32
# Adam keeps two moments per weight, and a gradient: four copies of the weights in all.
WEIGHT_COPIES = 4


class OverLimit(Exception):
    """A configuration over the worker's limits: the trial is pruned with this reason."""


@dataclass(frozen=True)
class Footprint:
    params: int
    memory_bytes: int

    def over(self, max_params: int | None, max_memory_mb: float | None) -> str | None:
        """Why this configuration is over a limit (one line), or None."""
        if max_params is not None and self.params > max_params:
            return f"{self.params:,} parameters, over --max-params {max_params:,}"
        mb = self.memory_bytes / 2**20
        if max_memory_mb is not None and mb > max_memory_mb:
            return (
                f"an estimated {mb:,.0f} MiB to train, over the limit of {max_memory_mb:,.0f} MiB"
            )
        return None

    def metrics(self) -> dict[str, float]:
        return {
            "params_estimated": float(self.params),
            "memory_estimated_mb": self.memory_bytes / 2**20,
        }


def lstm(inputs: int, units: int) -> int:
    """Weights of one LSTM layer: four gates' kernels, recurrent kernels and biases."""
    return 4 * (units * inputs + units * units + units)


def dense(inputs: int, outputs: int, bias: bool = True) -> int:
    return inputs * outputs + (outputs if bias else 0)


def estimate(
    config: TrialConfig,
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    n_targets: int = 1,
    vocab: tuple[int, int] | None = None,
    batch: int | None = None,
) -> Footprint:
    """Parameters of ``model.build_model`` for these arguments (trainable or not, as
    ``count_params`` counts them) and the training memory: the weights ``WEIGHT_COPIES`` times,
    and per batch the LSTMs' saved gates and states at every step (what backpropagation through
    time keeps) plus the inputs."""
    params = 0
    steps = int(input_shape[0])
    if task in ("text", "seq2seq"):
        tokens = config.vocab_size if vocab is None else vocab[0]
        params += tokens * config.embedding_dim
        width = config.embedding_dim
    else:
        width = int(input_shape[1])
    features = width
    if task in ("forecast", "classify") and config.frontend == "conv" and not config.stateful:
        params += dense(config.conv_kernel * width, config.conv_filters)
        width = config.conv_filters
        steps = -(-steps // config.conv_stride)
    branch = width
    directions = 2 if config.bidirectional else 1
    activations = 0  # floats kept per sample for the backward pass
    for units in config.units:
        params += directions * lstm(width, units)
        activations += directions * steps * 6 * units  # 4 gates, cell, hidden
        width = units * (2 if config.bidirectional and config.merge_mode == "concat" else 1)
    last = config.units[-1] * directions  # the joined [h, c] of a seq2seq encoder
    if task == "seq2seq":
        assert vocab is not None
        params += (vocab[1] + 1) * config.embedding_dim
        params += lstm(config.embedding_dim, last) + dense(last, vocab[1])
    elif task == "tag" or (task == "forecast" and config.stateful):
        params += dense(width, n_outputs)
    else:
        seq2seq = task == "forecast" and config.decoder == "seq2seq"
        if not seq2seq:
            if config.pooling == "attention":
                params += dense(width, 1)
            if config.fcn:
                f = config.fcn_filters
                params += dense(8 * branch, f) + 4 * f  # conv + batch norm (4 per channel)
                params += dense(5 * f, 2 * f) + 8 * f
                params += dense(3 * 2 * f, f) + 4 * f
                width += f
        if task in ("classify", "text"):
            params += dense(width, n_outputs)
        elif seq2seq:
            params += dense(features, n_targets, bias=False)  # the last targets, selected
            params += lstm(n_targets, last) + dense(last, n_targets)
            activations += (n_outputs // n_targets) * 6 * last
        else:
            params += dense(width, n_outputs)
        if task == "forecast":
            window = int(input_shape[0])
            if config.residual in ("last", "mean"):
                params += dense(features, n_outputs, bias=False)
            elif config.residual == "ridge":
                params += dense(window * features, n_outputs)
            if config.highway:
                params += dense(window * features, n_outputs)
    per_sample = activations + int(input_shape[0]) * max(features, 1) + n_outputs
    rows = batch or config.batch_size
    return Footprint(params, FLOAT * (WEIGHT_COPIES * params + rows * per_sample))


def limits() -> tuple[int | None, float | None]:
    """This worker's limits: ``--max-params`` and ``--max-memory`` (MiB; by default the
    device's memory: the GPU's it is pinned to, else the machine's)."""
    params = os.environ.get(MAX_PARAMS_ENV)
    memory = os.environ.get(MAX_MEMORY_ENV)
    return (
        int(params) if params else None,
        float(memory) if memory else device_memory_mb(),
    )


def device_memory_mb() -> float | None:
    """The memory of the GPU this process may use (``nvidia-smi``, no framework import), else
    the machine's physical memory; None if neither can be read."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    smi = shutil.which("nvidia-smi")
    if smi and visible not in (None, "", "-1"):
        try:
            out = subprocess.run(
                [
                    smi,
                    "--query-gpu=memory.total",
                    "--format=csv,noheader,nounits",
                    "-i",
                    visible.split(",")[0],
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            return float(out.strip().splitlines()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None
