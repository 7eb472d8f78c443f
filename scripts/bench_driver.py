"""Drive a tuner study in this process, trial by trial, under an epoch budget.

The trial path is the product's own (``tuner create``, then ``launch.join`` and
``tuner.worker.Worker`` as ``tuner worker --trials-per-process 0`` runs them); only the loop is
ours, so that the search can stop at an exact number of epochs: before each trial the study's
``max_epochs`` is lowered to the epochs left, so the last trial trains only what the budget
still allows.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Trace:
    """A search as the epochs went: the objective of every epoch of every trial, in order."""

    tool: str
    values: list[float] = field(default_factory=list)  # per epoch, in training order
    trials: int = 0
    best_value: float = math.inf
    test_mae: float | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.values)

    def epochs_to_reach(self, threshold: float) -> float:
        """Epochs spent until an epoch's value was <= threshold (inf if never)."""
        for i, v in enumerate(self.values):
            if v <= threshold:
                return float(i + 1)
        return math.inf

    def summary(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "best_val": self.best_value,
            "test_mae": self.test_mae,
            "epochs": self.epochs,
            "trials": self.trials,
            "wall_s": round(self.wall_s, 1),
            **self.extra,
        }


def write_space(path: Path, base: Path | dict[str, Any], **changes: Any) -> Path:
    """A space file: ``base`` (a YAML file or mapping) with top-level settings replaced and
    ``params`` entries merged."""
    raw = yaml.safe_load(base.read_text()) if isinstance(base, Path) else dict(base)
    params = changes.pop("params", None)
    raw.update(changes)
    if params:
        raw["params"] = {**raw["params"], **params}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_study(
    folder: Path,
    name: str,
    space: Path,
    data: list[str],
    *,
    budget: int,
    max_epochs: int,
    max_trials: int = 10_000,
) -> Trace:
    """Run trials of a new study until ``budget`` epochs (or ``max_trials``) are spent."""
    import os

    from tuner import launch
    from tuner import study as studies
    from tuner.cli import main
    from tuner.storage import embedded, resolve
    from tuner.worker import Worker

    # the embedded default store (SQLite and artifacts under TUNER_HOME), as `tuner run` uses
    os.environ["TUNER_HOME"] = str(folder / name)
    storage_url, tracking, _ = embedded(folder / name)
    args = ["create", str(space), *data, "--study", name, "--trials", str(max_trials)]
    with contextlib.redirect_stdout(sys.stderr):  # its messages are not the report
        code = main([*args, "--max-epochs", str(max_epochs), "--quiet"])
    if code != 0:
        raise RuntimeError(f"tuner create failed for {name}")
    j = launch.join(resolve(storage_url, tracking), name, data[1])  # as `tuner worker` does
    study = j.study
    worker = Worker(study, j.storage, storage_url, j.space, j.spec, j.dataset, j.tracker)
    started = time.perf_counter()
    spent = 0
    while spent < budget and worker.ran < max_trials:
        worker.spec = worker.spec.with_max_epochs(min(max_epochs, budget - spent))
        before = worker.ran
        worker.run(max_trials=worker.ran + 1)
        if worker.ran == before:
            break  # the study has nothing left to run
        # every finished trial's epochs (the last trial by number may be a queued one)
        spent = sum(_epochs_of(t) for t in study.trials if t.state.is_finished())
    trace = Trace(tool=name, wall_s=time.perf_counter() - started)
    for t in study.trials:
        steps = sorted(t.intermediate_values.items())
        trace.values.extend(v for _, v in steps)
        # an epoch whose objective was not finite is spent but reaches nothing
        trace.values.extend([math.inf] * (_epochs_of(t) - len(steps)))
    trace.trials = len(study.trials)
    best = studies.best_trial(study)
    if best is not None:
        trace.best_value = float(best.value or math.inf)
        trace.test_mae = best.user_attrs.get("test_mae_original")
        trace.extra["best_params"] = best.params
    states = [t.state.name for t in study.trials]
    trace.extra["pruned"] = states.count("PRUNED")
    trace.extra["failed"] = states.count("FAIL")
    return trace


def _epochs_of(trial: Any) -> int:
    from tuner import records

    run = trial.user_attrs.get(records.EPOCHS_RUN)
    return int(run) if run is not None else len(trial.intermediate_values)
