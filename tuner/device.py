"""Backend-neutral device setup for a worker process, before any framework is imported: the
GPU it may use, memory growth, and the frameworks' and MLflow's environment defaults. No heavy
imports here: a supervising worker calls it and starts its trial processes at once."""

from __future__ import annotations

import logging
import os


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
