"""Run finished trials again from their recorded parameters.

- ``reproduce``: one trial with its own seed; on the same machine (CPU) the curve is the same,
  so a result can be trusted, or a difference found.
- ``retrain``: the K best configurations over S new seeds each, logged as runs under the study's
  parent; mean and spread of validation and test error tell a robust winner from a lucky draw.
  The figures are stored on the study (``tuner_retrain``: per trial number), so
  ``tuner best --by-mean`` can pick by them (a finished trial's attributes cannot change).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from tuner import records
from tuner.config import TrialConfig
from tuner.errors import InputError
from tuner.fitting import Fit, fit
from tuner.sampling import sample

if TYPE_CHECKING:
    import optuna

    from tuner.data import Dataset
    from tuner.records import StudySpec
    from tuner.space import Space
    from tuner.tracking import Tracker

SEED_STRIDE = 100_003  # retrain seed i of a trial: its seed + i * SEED_STRIDE (never a trial's)


def config_of(
    trial: optuna.trial.FrozenTrial,
    space: Space,
    spec: StudySpec,
    dataset: Dataset,
    seed: int | None = None,
) -> TrialConfig:
    """The trial's config, rebuilt from its recorded parameters (and epochs, if the study's
    budget trimmed them, and the level a residual trial kept its training below);
    ``seed`` replaces its recorded seed."""
    import dataclasses

    import optuna

    window = dataset.default_window
    defaults = {} if window is None else {"window": window}
    recorded = trial.user_attrs.get(records.SEED, space.seed + trial.number)
    config = sample(
        optuna.trial.FixedTrial(trial.params, trial.number),
        space,
        max_epochs=spec.max_epochs,
        seed=recorded if seed is None else seed,
        defaults=defaults,
    )
    if records.EPOCHS in trial.user_attrs:  # what it trained with (a resume may change the cap)
        config = dataclasses.replace(config, epochs=int(trial.user_attrs[records.EPOCHS]))
    if records.KEEP_LEVEL in trial.user_attrs:  # else it kept below the level of its time
        config = dataclasses.replace(config, keep_level=float(trial.user_attrs[records.KEEP_LEVEL]))
    return config


def scores(done: Fit, config: TrialConfig) -> dict[str, float]:
    """The run's summary: its objective's best value, the best epoch's validation scores and
    the test split's."""
    out = done.summary()
    if done.result.best_value is not None:
        out["value"] = done.result.best_value
        out.update(done.test(config.batch_size))
    return out


def reproduce(
    study: optuna.Study, space: Space, spec: StudySpec, dataset: Dataset, number: int
) -> dict[str, Any]:
    """Train trial ``number`` again with its seed: ``{"recorded": .., "reproduced": ..}``, the
    recorded figures as the trial holds them."""
    trial = _finished(study, number)
    config = config_of(trial, space, spec, dataset)
    _start_as_recorded(dataset, trial)
    done = fit(dataset, config, objective=space.objective, direction=space.direction)
    recorded: dict[str, Any] = {
        k: v for k, v in trial.user_attrs.items() if isinstance(v, (int, float))
    }
    recorded["value"] = trial.values[0] if trial.values else None
    return {
        "trial": number,
        "seed": config.seed,
        "recorded": recorded,
        "reproduced": scores(done, config),
    }


def retrain(
    study: optuna.Study,
    space: Space,
    spec: StudySpec,
    dataset: Dataset,
    tracker: Tracker | None,
    *,
    top: int,
    seeds: int,
) -> list[dict[str, Any]]:
    """Retrain the ``top`` best complete trials over ``seeds`` new seeds each; each run is an
    MLflow run under the study's parent (when ``tracker`` is given) and the figures are stored
    on the study. Returns one summary per trial, best mean validation first."""
    from optuna.trial import TrialState

    if top < 1 or seeds < 1:
        bad, value = ("--top", top) if top < 1 else ("--seeds", seeds)
        raise InputError(f"must be >= 1, got {value}", field=bad)
    complete = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE and t.values is not None
    ]
    if not complete:
        raise InputError(f"study {study.study_name!r} has no complete trial", field="--study")
    reverse = space.direction == "maximize"
    best = sorted(complete, key=lambda t: float(t.values[0]), reverse=reverse)[:top]
    test_key = f"test_{dataset.metric}"
    out = []
    for trial in best:
        base = trial.user_attrs.get(records.SEED, space.seed + trial.number)
        _start_as_recorded(dataset, trial)
        runs = []
        for i in range(1, seeds + 1):
            config = config_of(trial, space, spec, dataset, seed=base + i * SEED_STRIDE)
            done = fit(dataset, config, objective=space.objective, direction=space.direction)
            result = scores(done, config)
            if tracker is not None:
                tracker.log_retrain(study, trial.number, config, result)
            runs.append((config.seed, result))
        summary = _summary(
            trial.number, float(trial.values[0] if trial.values else 0.0), runs, test_key
        )
        stored = dict(study.user_attrs.get(records.RETRAIN) or {})
        stored[str(trial.number)] = summary
        study.set_user_attr(records.RETRAIN, stored)
        out.append(summary)
    return sorted(out, key=lambda s: _mean_or_worst(s, reverse), reverse=reverse)


def _start_as_recorded(dataset: Dataset, trial: optuna.trial.FrozenTrial) -> None:
    """A ridge start rebuilt as its trial's was: the study's ridge baseline on the window it
    was fitted on (``start_window``), else a ridge on the trial's own windows with the lags it
    read (``start_lags``); a trial recorded without lags chose them for its own window (the
    study's baseline lags may have been computed again since, by other code)."""
    from tuner.data import Series

    if isinstance(dataset, Series):
        lags = trial.user_attrs.get(records.START_LAGS)
        window = trial.user_attrs.get(records.START_WINDOW)
        dataset.ridge_lags = int(lags) if lags else None
        dataset.ridge_window = int(window) if lags and window else None


def _summary(
    number: int, value: float, runs: list[tuple[int, dict[str, float]]], test_key: str
) -> dict[str, Any]:
    vals = [r["value"] for _, r in runs if "value" in r]
    tests = [r[test_key] for _, r in runs if test_key in r]
    return {
        "trial": number,
        "value": value,
        "seeds": [s for s, _ in runs],
        "val": vals,
        "test": tests,
        "val_mean": statistics.fmean(vals) if vals else None,
        "val_std": statistics.pstdev(vals) if len(vals) > 1 else 0.0 if vals else None,
        "test_key": test_key,
        "test_mean": statistics.fmean(tests) if tests else None,
        "test_std": statistics.pstdev(tests) if len(tests) > 1 else 0.0 if tests else None,
        "failed": len(runs) - len(vals),
    }


def _mean_or_worst(summary: dict[str, Any], maximize: bool) -> float:
    if summary["val_mean"] is not None:
        return summary["val_mean"]
    return -float("inf") if maximize else float("inf")


def best_by_mean(study: optuna.Study, direction: str) -> optuna.trial.FrozenTrial | None:
    """The retrained trial with the best mean validation value over its new seeds (the search's
    own run left out: it was picked as the best, so it carries the luck retraining removes), or
    None if no trial was retrained. The same order as ``retrain``'s."""
    retrained = study.user_attrs.get(records.RETRAIN) or {}
    candidates = []
    for t in study.get_trials(deepcopy=False):
        r = retrained.get(str(t.number))
        if r and r.get("val"):
            candidates.append((statistics.fmean(r["val"]), t))
    if not candidates:
        return None
    pick = max if direction == "maximize" else min
    return pick(candidates, key=lambda c: c[0])[1]


def _finished(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise InputError(
            f"no trial {number} in study {study.study_name!r} (0..{len(trials) - 1})",
            field="trial",
        )
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise InputError(
            f"trial {number} is {trial.state.name}; only a complete trial has a result to "
            "reproduce",
            field="trial",
        )
    return trial
