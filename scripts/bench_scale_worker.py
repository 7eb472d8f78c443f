"""B4's worker: a real `tuner worker` whose training is a fixed wait standing in for GPU time.

Only the model is fake: ``build_model`` returns a stand-in with no weights (and a hybrid's ridge
is not fitted), ``train`` sleeps ``BENCH_WAIT`` seconds spread over the trial's epochs and
reports a scripted value each epoch through the worker's real report path (MLflow curve point,
Optuna report, pruner), ``evaluate`` returns scripted metrics and ``log_model`` logs a small
artifact. Sampling, the claim, the
storage, heartbeats, pruning, the MLflow runs and the garbage collection after each trial are
the product's own. Each wait is appended to ``BENCH_LOG/<pid>.jsonl``. With ``BENCH_BREAKDOWN``
set, the CPU time of each stage of the trial path (in the thread that runs trials) is written to
``BENCH_LOG/<pid>.stages.json`` at the end.

Usage: bench_scale_worker.py WORKER-ARGS... (waits for the file ``BENCH_GO`` before starting;
with ``BENCH_PROFILE=FOLDER``, writes a pyinstrument profile of the worker there)
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

WAIT = float(os.environ.get("BENCH_WAIT", "1"))
LOG = Path(os.environ.get("BENCH_LOG", ".")) / f"{os.getpid()}.jsonl"


def scripted(config: Any, epoch: int) -> float:
    """A deterministic learning curve with structure for the sampler to find."""
    base = abs(math.log10(config.learning_rate) + 2.5) + 0.05 * config.layers
    return base + 8 / config.units[0] + 1 / (epoch + 1)


def fake_train(model: Any, arrays: Any, config: Any, *, report: Any, **_: Any) -> Any:
    from tuner.training import TrainResult, best_of

    result = TrainResult()
    slept = 0.0
    started, cpu = time.time(), time.process_time()
    per_epoch = WAIT / config.epochs
    for epoch in range(config.epochs):
        t = time.perf_counter()
        time.sleep(per_epoch)
        slept += time.perf_counter() - t
        value = scripted(config, epoch)
        logs = {
            "loss": value,
            "val_loss": value,
            "mae_original": value,
            "val_mae_original": value,
            "epoch_seconds": per_epoch,
        }
        result.history.append(logs)
        if report(epoch, logs):
            result.stopped, result.stopped_epoch = "pruned", epoch
            break
    with LOG.open("a") as f:
        f.write(
            json.dumps(
                {
                    "start": started,
                    "end": time.time(),
                    "slept": slept,
                    "cpu": cpu,
                }
            )
            + "\n"
        )
    if result.stopped is None:
        result.best_value, result.best_epoch = best_of(
            result.history, "val_mae_original", "minimize"
        )
    return result


def fake_evaluate(model: Any, x: Any, y: Any, prefix: str, batch_size: int) -> dict:
    return {f"{prefix}_loss": 1.0, f"{prefix}_mae_original": 1.0, f"{prefix}_rmse_original": 1.0}


def fake_log_model(self: Any, run_id: str, model: Any, card: Any) -> str:
    self.client.log_text(run_id, card.to_json(), "model/preprocess.json")
    return f"runs:/{run_id}/model"


class StandIn:
    """What ``build_model`` returns here: no layers, no weights."""

    def count_params(self) -> int:
        return 0


def patch() -> None:
    import tuner.data
    import tuner.model
    import tuner.training
    from tuner.tracking import Tracker

    tuner.model.build_model = lambda *a, **k: StandIn()
    tuner.data.Series.ridge = lambda *a, **k: None  # what a hybrid starts from: model too
    tuner.training.train = fake_train
    tuner.training.evaluate = fake_evaluate
    Tracker.log_model = fake_log_model  # type: ignore[method-assign]


STAGES: dict[str, list[float]] = {}  # stage -> [CPU seconds, calls]


def timed(owner: Any, name: str, stage: str) -> None:
    """Count the CPU time of ``owner.name`` (this thread's) under ``stage``."""
    inner = getattr(owner, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            total = STAGES.setdefault(stage, [0.0, 0])
            total[0] += time.thread_time() - started
            total[1] += 1

    setattr(owner, name, call)


def breakdown() -> None:
    """The trial path's stages: the stale sweep, the claim (the lock, the budget, ``ask``),
    sampling (the sampler and one parameter write each), the rest of opening (attributes, the
    MLflow run), each epoch's report (MLflow point, Optuna report, pruner), the close (MLflow
    end, attributes, ``tell``, the best mark)."""
    import tuner.worker

    timed(tuner.worker.Worker, "_sweep", "sweep")
    timed(tuner.worker.Worker, "_claim", "claim")
    timed(tuner.worker, "sample", "sample")
    timed(tuner.worker.Worker, "_open", "open")
    timed(tuner.worker.EpochReport, "__call__", "report")
    timed(tuner.worker.Worker, "_close", "close")
    count_requests()


def count_requests() -> None:
    """MLflow's requests by endpoint (``http <method> <path>``: calls, no time)."""
    import requests

    inner = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = url.split("://", 1)[-1].split("?")[0].split("/", 1)[-1]
        if "mlflow-artifacts/artifacts/" in path:
            path = path.split("mlflow-artifacts/artifacts/")[0] + "mlflow-artifacts/artifacts/..."
        STAGES.setdefault(f"http {method} /{path}", [0.0, 0])[1] += 1
        return inner(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign]


def main() -> int:
    import mlflow  # noqa: F401  (imported before the start line, as a worker would have)
    import optuna  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    from tuner.cli import main as tuner_main

    patch()
    if os.environ.get("BENCH_BREAKDOWN"):
        breakdown()
    go = Path(os.environ["BENCH_GO"])
    (go.parent / f"ready-{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.05)
    profile = os.environ.get("BENCH_PROFILE")  # a folder: write a pyinstrument profile there
    if not profile:
        code = tuner_main(sys.argv[1:])
        if STAGES:
            LOG.with_suffix(".stages.json").write_text(json.dumps(STAGES))
        return code
    from pyinstrument import Profiler

    with Profiler(interval=0.002) as profiler:
        code = tuner_main(sys.argv[1:])
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (Path(profile) / f"worker-{os.getpid()}.txt").write_text(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
