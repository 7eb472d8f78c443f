"""A study's life outside its trials, as the CLI and the benchmarks run it: ``prepare`` (check
every input, write nothing), ``create`` (the study, its MLflow experiment and parent run),
``join`` (what a worker needs: the study, its space and data), ``work`` (one worker's trials)
and ``close_if_idle`` (the parent run, when no trial runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import records
from tuner.errors import InputError
from tuner.log import log
from tuner.records import StudySpec

if TYPE_CHECKING:
    import optuna

    from tuner.data import DataOptions, Dataset
    from tuner.space import Space
    from tuner.storage import Stores
    from tuner.tracking import Tracker


@dataclass
class Prepared:
    """A study's inputs, checked: nothing is written before all of them are."""

    name: str
    space: Space
    dataset: Dataset
    spec: StudySpec
    stores: Stores
    baselines: dict[str, Any]
    data_path: str  # absolute: local workers read it from another directory


@dataclass
class Joined:
    """A study as a worker (or a command that trains) holds it."""

    study: optuna.Study
    storage: Any
    stores: Stores
    tracker: Tracker
    spec: StudySpec
    space: Space
    dataset: Dataset


def max_window(space: Space) -> int:
    """The longest window a trial of ``space`` can draw (classify, tag and text without a
    window: 1; a trial reads the whole sequence, or the texts' usual length)."""
    if space.task != "forecast" and "window" not in space.searched and "window" not in space.fixed:
        return 1
    return int(max(space.candidates("window")))


def check_objective(space: Space, dataset: Dataset) -> Space:
    """The objective for this data. A per-step task's must fit its targets: accuracy for
    labels, the MAE in the targets' units for values. A forecast of several targets is
    compared scale-free (``val_nmae``) unless the space names its objective (then a note says
    that ``val_mae_original`` averages the targets' own units)."""
    if space.objective == "val_nmae" and dataset.metric != "nmae":
        raise InputError(
            "val_nmae compares several targets scale-free; this data has one target: use "
            "val_mae_original (its MAE in its own units) or val_loss",
            source=space.source,
            field="objective",
        )
    if space.task == "forecast" and dataset.metric == "nmae":
        if "objective" not in space.raw:
            log.info(
                "note: %d targets: the objective is val_nmae, the mean over targets of each "
                "one's MAE divided by its standard deviation on the training split (each "
                "target's MAE is recorded as mae_<target>)",
                len(dataset.target_index),  # type: ignore[union-attr]
            )
            return space.with_objective("val_nmae")
        if space.objective == "val_mae_original":
            log.info(
                "note: val_mae_original averages the targets' errors in their own units; "
                "objective: val_nmae weighs every target alike"
            )
        return space
    if space.task != "tag":
        return space
    if (
        dataset.metric == "mae_original"
        and space.objective == "val_loss"
        and "loss" in space.searched
    ):
        raise InputError(
            "val_loss is not comparable across trials when loss is searched; use objective: "
            "val_mae_original",
            source=space.source,
            field="objective",
        )
    wrong = {"accuracy": "val_mae_original", "mae_original": "val_accuracy"}[dataset.metric]
    if space.objective == wrong:
        kind = "labels" if dataset.metric == "accuracy" else "values (decimals)"
        raise InputError(
            f"{wrong} does not apply: the data's targets are {kind}; use val_loss or "
            f"val_{dataset.metric}",
            source=space.source,
            field="objective",
        )
    return space


def prepare(
    space_path: str,
    options: DataOptions,
    stores: Stores,
    *,
    name: str | None = None,
    season: int | None = None,
    max_epochs: int | None = None,
    budget_epochs: int | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
) -> Prepared:
    """Validate everything (space, Keras names, data, settings, both stores) before anything is
    written; compute the baselines."""
    from dataclasses import replace

    from tuner import data
    from tuner.baselines import compute
    from tuner.model import check_names
    from tuner.space import load_space
    from tuner.storage import check_separate, check_stores

    space = load_space(space_path, sampler=sampler, pruner=pruner)
    check_names(space)  # before any note: a misspelt name is the one thing to say
    for line in space.cudnn_warnings():
        log.info("note: %s", line)
    options = replace(options, task=space.task)
    dataset = data.load(options, 1 if space.window_auto else max_window(space))
    space = check_objective(space, dataset)
    check_season(season, dataset, options.path)
    window_auto = space.window_auto
    if window_auto:
        space = _auto_window(space, dataset, season, dataset_path=options.path)
    note_vocabulary(space, dataset, options.path)
    name = name or f"{Path(space_path).stem}-{Path(options.path).stem}"
    check_study_name(name)
    check_separate(stores.storage, stores.tracking)
    baselines = compute(dataset, max_window(space), season)
    start_from_ridge_baseline(dataset, baselines)
    if window_auto:
        space = _ridge_start_window(space, baselines)
    spec = StudySpec(
        space=space.raw,
        space_file=Path(space_path).name,
        data=options.to_spec(),
        fingerprint=dataset.fingerprint(),
        max_epochs=max_epochs,
        season=season,
        budget_epochs=budget_epochs,
        window_auto=window_auto,
    )
    check_stores(stores)  # last: nothing is written before every input is checked
    return Prepared(
        name, space, dataset, spec, stores, baselines, str(Path(options.path).resolve())
    )


def note_vocabulary(space: Space, dataset: Any, source: str) -> None:
    """A searched ``vocab_size`` that reaches past the training texts' whole vocabulary draws
    the same model at every size beyond it (only unused embedding rows differ): say so once."""
    if space.task != "text" or "vocab_size" not in space.searched:
        return
    whole = dataset.whole_vocabulary()
    most = max(int(v) for v in space.candidates("vocab_size"))
    if most > whole:
        log.info(
            "note: %s: a vocab_size of %d keeps every token of the training texts: the "
            "searched sizes beyond it (up to %d) all draw the same model",
            source,
            whole,
            most,
        )


def check_season(season: int | None, dataset: Any, source: str) -> None:
    """A forecast's ``--season`` must fit twice in the training split: the seasonal naive reads
    one season back, and ``window: auto`` covers one to three of them."""
    if season is None or dataset.task != "forecast":
        return
    train = dataset.splits[0]
    rows = train.stop - train.start
    if 2 * season > rows:
        raise InputError(
            f"{season} rows do not fit twice in the training split ({rows} rows); at most "
            f"{rows // 2}, or leave it out to detect the season",
            source=source,
            field="--season",
        )


STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def check_study_name(name: str) -> None:
    import re

    if not re.fullmatch(STUDY_NAME_PATTERN, name):
        raise InputError(
            f"invalid study name {name!r}: letters, digits, '.', '_', '-' (at most 100)",
            field="--study",
        )


def create(prepared: Prepared, target: int | None) -> Joined:
    """Create or resume the study and its MLflow experiment and parent run."""
    from tuner import study as studies
    from tuner.liveness import claim_lock, on_stale
    from tuner.storage import enable_wal, make_storage
    from tuner.tracking import Tracker

    stores, space, spec = prepared.stores, prepared.space, prepared.spec
    if stores.tracking.startswith("sqlite:///"):
        enable_wal(stores.tracking)
    storage = make_storage(stores.storage, on_stale=on_stale(stores.tracking))
    tracker = Tracker(stores.tracking)
    # Two `tuner create`s of one study racing: the second waits, then resumes what the first
    # made (once, the loser crashed and a third made a second parent run).
    with claim_lock(storage, stores.storage, f"create:{prepared.name}"):
        study, created = studies.create_or_resume(storage, prepared.name, space, spec, target)
        if target is not None and target < len(space.start_with):
            log.info(
                "note: --trials %d runs the first %d of the space's %d start_with configurations",
                target,
                target,
                len(space.start_with),
            )
        stored = study.user_attrs[records.SPEC]["space"]
        if stored != space.raw:  # a resume keeps the study's own (its window range, objective)
            from dataclasses import replace

            from tuner.space import parse_space

            space = parse_space(stored, source=space.source, stored=True)
            spec = replace(spec, space=stored)
        # A resume keeps the study's budget unless a new one is given; a budget given alone (no
        # --trials) runs trials until it is spent. The same command again keeps the target.
        budget = spec.budget_epochs or study.user_attrs.get(records.BUDGET)
        if target is None and budget and (created or spec.budget_epochs):
            study.set_user_attr(records.TARGET, records.NO_TRIAL_TARGET)
        study.set_user_attr(records.BUDGET, budget)
        study.set_user_attr(records.BASELINES, prepared.baselines)
        exp_id, parent_id = tracker.ensure_study(
            study.study_name, stores.artifacts, study.user_attrs.get(records.PARENT_RUN)
        )
        study.set_user_attr(records.EXPERIMENT, exp_id)
        study.set_user_attr(records.PARENT_RUN, parent_id)
    settings = {
        "space_file": spec.space_file,
        "data_file": spec.data["file"],
        "task": space.task,
        "objective": space.objective,
        "sampler": space.sampler["name"],
        "pruner": space.pruner["name"],
        # what trials actually get: the space's epochs capped by --max-epochs (issue 14: the
        # parent showed the space's 30 for a study run with --max-epochs 10)
        "epochs": space.capped_epochs(spec.max_epochs),
        "target": ",".join(spec.data["target"]) or None,
        "horizon": spec.data["horizon"],
        "nan": spec.data["nan"],
        "budget_epochs": spec.budget_epochs,
        "fingerprint": spec.fingerprint,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    tracker.open_study(parent_id, settings)
    tracker.set_trials_view(exp_id, space.objective, space.direction)
    tracker.log_baselines(parent_id, prepared.baselines)
    return Joined(study, storage, stores, tracker, spec, space, prepared.dataset)


def require_studies(url: str) -> None:
    """A SQLite storage must exist already: opening it would create an empty file."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise InputError(
            "no studies here yet; start one with `tuner run` (or `tuner create`)", source=url
        )


def open_study(stores: Stores, name: str | None, *, heartbeat: bool = False) -> optuna.Study:
    """An existing study (``name`` None: the storage's only one). ``heartbeat``: with the
    heartbeat settings that tell a RUNNING trial whose worker is gone (``tuner check``)."""
    from tuner import study as studies
    from tuner.liveness import on_stale
    from tuner.storage import make_storage

    require_studies(stores.storage)
    stale = on_stale(stores.tracking) if heartbeat else None
    storage = make_storage(stores.storage, heartbeat=heartbeat, on_stale=stale, create_tables=False)
    return studies.load(storage, name or studies.only_study_name(storage))[0]


def with_data(study: optuna.Study, data_path: str) -> tuple[StudySpec, Space, Dataset]:
    """The study's spec and space, and its data read from ``data_path`` (fingerprint checked:
    every worker must read the same data)."""
    from tuner import data
    from tuner import study as studies
    from tuner.space import parse_space

    spec = StudySpec.from_dict(study.user_attrs[records.SPEC])
    space = parse_space(spec.space, source=f"study {study.study_name}", stored=True)
    dataset = data.load(data.DataOptions.from_spec(spec.data, data_path), max_window(space))
    studies.check_fingerprint(spec, dataset.fingerprint(), data_path)
    start_from_ridge_baseline(dataset, study.user_attrs.get(records.BASELINES))
    return spec, space, dataset


def ridge_baseline_lags(baselines: dict[str, Any] | None) -> int | None:
    """The lags the study's ridge baseline chose (None: a study stored without them)."""
    lags = ((baselines or {}).get("scores", {}).get("ridge_ar") or {}).get("lags")
    return int(lags) if lags else None


def start_from_ridge_baseline(dataset: Dataset, baselines: dict[str, Any] | None) -> None:
    """A ``residual: ridge`` trial starts from the study's ridge baseline (fitted on windows of
    the length ``baselines.compute`` recorded: the same data and window, the same fit), in the
    trial's units, when its window holds the lags the baseline chose; a shorter window, from a
    ridge on as many of those lags as it holds, fitted on its own windows. Not on lags chosen
    again for each window and scaler: each trial's start was then a fresh draw from
    validation's noise (in a B7 run before this, gasoline's best trial, window 90 and min-max
    scaling, started from and went back to a 1-lag ridge 10% worse on test than the study's
    2-lag baseline)."""
    from tuner.data import Series

    if isinstance(dataset, Series):
        dataset.ridge_lags = ridge_baseline_lags(baselines)
        window = (baselines or {}).get("window")
        dataset.ridge_window = int(window) if dataset.ridge_lags and window else None


def join(stores: Stores, name: str | None, data_path: str) -> Joined:
    """What a worker needs: the study (with its sampler, pruner and heartbeats), its space and
    data, and its MLflow parent run marked RUNNING (if MLflow answers: else later)."""
    from tuner import study as studies
    from tuner.errors import brief
    from tuner.liveness import on_stale
    from tuner.retry import retrying, retrying_storage
    from tuner.storage import check_connection_budget, check_separate, make_storage
    from tuner.tracking import Tracker

    check_separate(stores.storage, stores.tracking)
    require_studies(stores.storage)
    rdb = make_storage(stores.storage, on_stale=on_stale(stores.tracking), create_tables=False)
    retrying(lambda: check_connection_budget(rdb, stores.storage), "checking connections")
    storage = retrying_storage(rdb)  # from here every storage call is retried
    study, _ = studies.load(storage, name or studies.only_study_name(storage))
    spec, space, dataset = with_data(study, data_path)
    tracker = Tracker(stores.tracking)
    try:
        tracker.open_study(study.user_attrs[records.PARENT_RUN], {})
    except Exception as e:  # MLflow down: trials keep their records until it is back
        log.warning("MLflow did not answer (%s); starting anyway", brief(e, 200))
    return Joined(study, storage, stores, tracker, spec, space, dataset)


def work(
    joined: Joined,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    share: bool = False,
) -> int:
    """Run the study's trials in this process until it (or ``trials``, ``timeout``) is done,
    then close the parent run if no trial is left running. ``share``: this is a trial process
    whose supervisor starts another once it ran its ``trials``; then the run stays open.
    Returns how many trials ran. A stop signal ends it with ``signals.Interrupted`` (the trial
    in flight re-queued)."""
    from tuner.errors import FatalError
    from tuner.signals import Interrupted
    from tuner.worker import Worker

    j = joined
    worker = Worker(j.study, j.storage, j.stores.storage, j.space, j.spec, j.dataset, j.tracker)
    signalled = False
    try:
        with worker.stop.handling():
            return worker.run(max_trials=trials, timeout=timeout)
    except Interrupted:
        signalled = True  # exit within seconds: the plots wait for the study's next close
        raise
    except BaseException as e:
        if worker.stop.pending is None or isinstance(e, (FatalError, InputError)):
            raise  # a fault or bad input is reported as such, signal or not
        # A signal that cut an import (a fresh trial process loading the framework) surfaces
        # as the import's own error: still a stop; a trial it left RUNNING is retried.
        signalled = True
        raise Interrupted(worker.stop.pending) from e
    finally:
        if signalled or not (share and worker.ran == trials):
            close_if_idle(j.study, j.storage, j.stores.storage, j.tracker, plots=not signalled)


def close_if_idle(
    study: optuna.Study, storage: Any, storage_url: str, tracker: Tracker, *, plots: bool = True
) -> str | None:
    """When no trial of the study is running, log the study-level results on the parent run and
    close it: FINISHED if the target is reached, else KILLED (a resume reopens it).

    Serialized by the claim lock, so of several workers stopping at once one closes it and the
    others find nothing to do. Returns the status set, or None.
    """
    from tuner import study as studies
    from tuner.errors import brief
    from tuner.liveness import claim_lock
    from tuner.retry import retrying
    from tuner.tracking import INTERRUPTED_STATUS

    def close() -> str | None:
        with claim_lock(storage, storage_url, study.study_name):
            c = studies.counts(study)
            parent = study.user_attrs.get(records.PARENT_RUN)
            if c["running"] or parent is None:
                return None
            status = "FINISHED" if studies.target_reached(study, c) else INTERRUPTED_STATUS
            try:
                if tracker.client.get_run(parent).info.status == status:
                    return None  # closed already, as it should be, by another worker
                tracker.finish_study(parent, study, status, plots=plots)
            except Exception as e:  # MLflow down: the next worker to stop, or a repair, closes it
                log.warning(
                    "the study's parent run was not closed: MLflow: %s; `tuner check --repair` "
                    "closes it",
                    brief(e, 500),
                )
                return None
            return status

    return retrying(close, "closing the study's parent run")


def _auto_window(space: Space, dataset: Any, season: int | None, *, dataset_path: str) -> Space:
    """Resolve ``window: auto`` from the data: one to three seasons of the first target (the
    period detected on the training split, or ``--season``), bounded by the splits' lengths."""
    from tuner.data import check_windows_fit

    period, low, high = auto_window_range(dataset, season)
    found = f"season {period}" if period else "no season found"
    log.info("note: window: auto -> %d..%d (%s)", low, high, found)
    resolved = space.with_window(low, high)
    check_windows_fit(dataset, high, dataset_path)
    return resolved


def auto_window_range(dataset: Any, season: int | None) -> tuple[int | None, int, int]:
    """``window: auto``'s season (``season``, else detected on the training split of the first
    target) and window range (``baselines.window_range``)."""
    from tuner.baselines import detect_period, window_range

    train, val, test = dataset.splits
    period = season or detect_period(dataset.values[train, dataset.target_index[0]])
    h = dataset.horizon
    rows = min(  # window_range takes a quarter: of the training rows, half of val and test's
        train.stop - train.start - h,
        2 * (val.stop - val.start - h),
        2 * (test.stop - test.start - h),
    )
    return (period, *window_range(period, rows))


def _ridge_start_window(space: Space, baselines: dict[str, Any]) -> Space:
    """``start_with`` entries that start from the ridge (``residual: ridge``) and name no window
    get the lags the ridge baseline chose on validation, within the resolved range: a hybrid
    whose window is drawn at random starts from a weaker ridge than the baseline it is compared
    with (elecdemand: window 68 gave 0.0220 validation MAE where the baseline's 144 lags gave
    0.0202)."""
    from optuna.distributions import IntDistribution

    lags = ridge_baseline_lags(baselines) or 0
    dist = space.searched.get("window")
    if not lags or not isinstance(dist, IntDistribution):
        return space
    window = min(max(lags, dist.low), dist.high)
    starts = [
        {**e, "window": window} if e.get("residual") == "ridge" and "window" not in e else e
        for e in space.raw.get("start_with") or []
    ]
    if starts == (space.raw.get("start_with") or []):
        return space
    from tuner.space import parse_space

    return parse_space({**space.raw, "start_with": starts}, source=space.source)
