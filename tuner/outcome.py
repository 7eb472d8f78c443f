"""What a trial's training means for the study, decided without touching a store: its state,
value and reason, the text of its error, whether it beats the best, the seed it trains with,
and how many of a worker's trials failed in a row."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.errors import brief
from tuner.training import TrainResult

# A worker whose last trials all failed with their own errors stops: a bug or a broken machine,
# not a bad configuration.
MAX_CONSECUTIVE_ERRORS = 5


@dataclass
class Outcome:
    state: TrialState
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    error: str | None = None  # the exception type of the trial's own error
    best: bool = False  # the study's best when it completed (its model and test scores kept)

    def attrs(self) -> dict[str, Any]:
        """The trial attributes that record this outcome."""
        out: dict[str, Any] = dict(self.metrics)
        if self.reason:
            out[records.REASON] = self.reason
        if self.error:
            out[records.ERROR] = self.error
        return out


def of_training(result: TrainResult, metrics: dict[str, float]) -> Outcome:
    """A training that ran to its end: COMPLETE with its best value, PRUNED, or FAIL when the
    loss stopped being finite."""
    if result.stopped == "diverged":
        return Outcome(
            TrialState.FAIL, None, metrics, f"loss not finite at epoch {result.stopped_epoch}"
        )
    if result.stopped == "pruned":
        return Outcome(TrialState.PRUNED, None, metrics, f"pruned at epoch {result.stopped_epoch}")
    assert result.best_value is not None and result.best_epoch is not None
    return Outcome(TrialState.COMPLETE, result.best_value, metrics)


def of_error(e: BaseException) -> Outcome:
    """A training that raised (out of memory, a runtime configuration error, ...)."""
    return Outcome(TrialState.FAIL, reason=error_text(e), error=type(e).__name__)


def error_text(e: BaseException) -> str:
    """The reason a trial failed, one line; out of memory says so whatever the backend calls it
    (TensorFlow's ResourceExhaustedError, XLA's RESOURCE_EXHAUSTED, a host MemoryError)."""
    reason = type(e).__name__ + (f": {brief(e, 500)}" if str(e).strip() else "")
    text = str(e)
    if (
        isinstance(e, MemoryError)
        or type(e).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "out of memory" in text.lower()
    ):
        return f"out of memory: {reason} (a smaller batch_size, units or window needs less)"
    return reason


def is_better(value: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return value > best if direction == "maximize" else value < best


def trial_seed(space_seed: int, number: int, retry_of: int | None) -> int:
    """A trial trains with the space's seed plus its number; a retry with its original's."""
    return space_seed + (number if retry_of is None else retry_of)


def judged(trials: Iterable[FrozenTrial]) -> int:
    """How many of the study's trials a residual start has judged (they hold a
    ``start_pvalue``): the next one keeps its training at ``training.keep_level(judged + 1)``."""
    return sum(records.START_PVALUE in t.user_attrs for t in trials)


def failure_streak(trials: Iterable[FrozenTrial], worker: str) -> int:
    """How many of ``worker``'s last finished trials failed with their own error, in a row
    (derived from the study's records, as KerasTuner's oracle does, so the count survives the
    worker's trial processes being replaced)."""
    mine = [
        t for t in trials if t.state.is_finished() and t.user_attrs.get(records.WORKER) == worker
    ]
    mine.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
    streak = 0
    for t in reversed(mine):
        if t.state != TrialState.FAIL or records.ERROR not in t.user_attrs:
            break
        streak += 1
    return streak


def same_value(stored: Any, ours: Any) -> bool:
    """Whether an attribute read back from the storage is the one written: NaN is NaN (a NaN
    metric once made a healthy COMPLETE trial count as taken over), a list may come back for a
    tuple."""
    if isinstance(stored, float) and isinstance(ours, float):
        return stored == ours or (math.isnan(stored) and math.isnan(ours))
    if isinstance(stored, (list, tuple)) and isinstance(ours, (list, tuple)):
        return len(stored) == len(ours) and all(map(same_value, stored, ours))
    if isinstance(stored, dict) and isinstance(ours, dict):
        return stored.keys() == ours.keys() and all(same_value(stored[k], ours[k]) for k in ours)
    return bool(stored == ours)


def dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    """Whether values ``a`` are at least as good as ``b`` on every objective and better on one
    (``directions``: minimize / maximize each)."""
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    x = [s * v for s, v in zip(sign, a, strict=True)]
    y = [s * v for s, v in zip(sign, b, strict=True)]
    return all(p <= q for p, q in zip(x, y, strict=True)) and any(
        p < q for p, q in zip(x, y, strict=True)
    )
