"""Backend-neutral device setup for a worker process, before any framework is imported: the
GPU it may use, memory growth, and the frameworks' and MLflow's environment defaults. No heavy
imports here: a supervising worker calls it and starts its trial processes at once."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


def setup_device(gpu: int | None) -> None:
    """Pin this process to one GPU (or none) before any framework is imported.

    Environment variables keep this backend-neutral: CUDA_VISIBLE_DEVICES for all of them,
    memory growth for TensorFlow, no preallocation for JAX.
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A trial keeps what MLflow misses and sends it later (TrialRun): a call to a server that is
    # down should fail in seconds, not stall training through MLflow's own minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # TensorFlow's Python logger warns about retracing once per new model: every trial.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def import_keras() -> None:
    """Import Keras (and its backend) once, quietly (``quiet_tensorflow``). Python errors of
    the import still raise, after stderr is back."""
    import sys

    if "keras" in sys.modules:
        return
    with quiet_tensorflow():
        import keras  # noqa: F401


@contextlib.contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Silence what TensorFlow's C++ side writes to stderr while it is imported, before its
    logging is set up ("All log messages before absl::InitializeLog()", oneDNN and CUDA notes:
    no environment variable stops those), unless ``TF_CPP_MIN_LOG_LEVEL`` asks for them
    (``--verbose`` sets 0). On JAX and PyTorch TensorFlow is imported later, by Keras itself
    (``keras.utils.set_random_seed`` seeds it too when it is installed): wrap that call too."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "2":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def keras_backend() -> str:
    """The backend Keras runs on (or will) in this process, without importing it: as Keras
    decides, ``KERAS_BACKEND``, else its ``keras.json`` (``$KERAS_HOME`` or ``~/.keras``), else
    TensorFlow."""
    import json
    import sys
    from pathlib import Path

    if "keras" in sys.modules:
        return str(sys.modules["keras"].backend.backend())
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
