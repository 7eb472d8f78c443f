"""The only module that talks to MLflow: one experiment and parent run per study, a child run per
trial, per-epoch curves, the best models and the study plots.

Optuna trial state -> MLflow run status (the ``optuna.state`` tag always holds the Optuna state):

=============================  ==========  =============================================
Optuna                         MLflow      meaning
=============================  ==========  =============================================
COMPLETE                       FINISHED    trained its budget (or stopped early on patience)
PRUNED                         KILLED      stopped on purpose by the pruner
FAIL                           FAILED      an error; the ``tuner.reason`` tag says which
FAIL (signal, dead worker)     KILLED      interrupted; ``tuner.reason`` says how; retried
=============================  ==========  =============================================

The trial's run id is the Optuna user attribute ``mlflow_run_id``; the run carries the tags
``optuna.study_name`` and ``optuna.trial_number``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import records
from tuner.errors import brief
from tuner.log import log
from tuner.retry import Backoff, clock

if TYPE_CHECKING:
    import optuna

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
RETRY_ENV = "TUNER_MLFLOW_RETRY_SECONDS"  # how long a trial's end waits for MLflow to be back
DEFAULT_RETRY_SECONDS = 60.0
END_TAGS = 2  # optuna.state and tuner.reason, sent with a trial's last metrics
FLUSH_ENV = "TUNER_MLFLOW_FLUSH_SECONDS"  # epoch points are sent at most this often (and at end)
DEFAULT_FLUSH_SECONDS = 5.0
PLOTS_ENV = "TUNER_PLOTS"  # "0": no study plots at its close (they take seconds; CI smoke runs)
INTERRUPTED_STATUS = "KILLED"
BASELINE_COLUMNS = {  # by the metric the baselines are compared on
    "mae_original": (
        "val_mae_original",
        "test_mae_original",
        "val_rmse_original",
        "test_rmse_original",
    ),
    "accuracy": ("val_accuracy", "test_accuracy", "val_loss", "test_loss"),
    "nmae": ("val_nmae", "test_nmae", "val_mae_original", "test_mae_original"),
}


class Tracker:
    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    # -- the study ---------------------------------------------------------------------------
    def ensure_study(
        self, study_name: str, artifact_location: str | None, known_parent: str | None = None
    ) -> tuple[str, str]:
        """Get or create the study's experiment and its parent run; returns their ids. A study
        that has a parent run keeps it (a second one, closed by `tuner check --repair`, is
        never picked up instead)."""
        exp = self.client.get_experiment_by_name(study_name)
        if exp is not None and known_parent is not None:
            return exp.experiment_id, known_parent
        if exp is None:
            exp_id = self.client.create_experiment(
                study_name,
                artifact_location=artifact_location,
                tags={
                    records.STUDY_TAG: study_name,
                    records.EXPERIMENT_KIND_TAG: records.EXPERIMENT_KIND,
                },
            )
        else:
            exp_id = exp.experiment_id
            if records.EXPERIMENT_KIND_TAG not in exp.tags:  # a study made before the tag
                self.client.set_experiment_tag(
                    exp_id, records.EXPERIMENT_KIND_TAG, records.EXPERIMENT_KIND
                )
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{records.ROLE_TAG}` = 'study'", max_results=1
        )
        if runs:
            return exp_id, runs[0].info.run_id
        run = self.client.create_run(
            exp_id,
            run_name=study_name,
            tags={records.ROLE_TAG: "study", records.STUDY_NAME_TAG: study_name},
        )
        return exp_id, run.info.run_id

    def open_study(self, parent_run_id: str, settings: dict[str, Any]) -> None:
        """Mark the parent run RUNNING (again, on resume) and record the study's settings."""
        from mlflow.entities import Param

        self.client.update_run(parent_run_id, status="RUNNING")
        run = self.client.get_run(parent_run_id)
        params = [Param(k, _param(v)) for k, v in settings.items() if k not in run.data.params]
        if params:
            self.client.log_batch(parent_run_id, params=params)

    def set_trials_view(self, experiment_id: str, objective: str, direction: str) -> None:
        """The view of the study's runs its printed URL opens (``trials_view``)."""
        view = json.dumps(trials_view(objective, direction), separators=(",", ":"))
        self.client.set_experiment_tag(experiment_id, records.TRIALS_VIEW_TAG, view)

    def log_baselines(self, parent_run_id: str, baselines: dict[str, Any]) -> None:
        """The study's baselines on its parent run: ``baseline_<name>_<split>_<metric>``
        metrics, the detected season as a param, and the table ``baselines.csv``."""
        from mlflow.entities import Metric, Param

        from tuner.baselines import metric_of

        now = _now()
        metrics = [
            Metric(f"baseline_{name}_{key}", value, now, 0)
            for name, scores in baselines["scores"].items()
            for key, value in scores.items()
            if key.startswith(("val_", "test_")) and math.isfinite(value)
        ]
        run = self.client.get_run(parent_run_id)
        params = [
            Param(k, _param(v))
            for k, v in (("season", baselines.get("period")), ("best_baseline", baselines["best"]))
            if k not in run.data.params
        ]
        self.client.log_batch(parent_run_id, metrics=metrics, params=params)
        rows = ["baseline," + ",".join(BASELINE_COLUMNS[metric_of(baselines)])]
        for name, scores in baselines["scores"].items():
            cells = [
                f"{scores[c]:.6g}" if c in scores else ""
                for c in BASELINE_COLUMNS[metric_of(baselines)]
            ]
            rows.append(",".join([name, *cells]))
        self.client.log_text(parent_run_id, "\n".join(rows) + "\n", "baselines.csv")

    def log_retrain(
        self, study: optuna.Study, number: int, config: Any, scores: dict[str, float]
    ) -> str:
        """One retraining of trial ``number`` (another seed) as a finished run under the study's
        parent, tagged ``tuner.role = retrain`` (so ``tuner check`` does not count it a trial's)."""
        from mlflow.entities import Metric, Param, RunTag

        exp_id = study.user_attrs[records.EXPERIMENT]
        parent = study.user_attrs[records.PARENT_RUN]
        run = self.client.create_run(
            exp_id,
            run_name=f"trial-{number}-seed-{config.seed}",
            tags={records.PARENT_RUN_TAG: parent, records.ROLE_TAG: "retrain"},
        )
        now = _now()
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in scores.items() if math.isfinite(v)],
            params=[Param(k, _param(v)) for k, v in config.as_params().items()],
            tags=[
                RunTag(records.RETRAIN_OF_TAG, str(number)),
                RunTag(records.SEED_TAG, str(config.seed)),
            ],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def finish_study(
        self,
        parent_run_id: str,
        study: optuna.Study,
        status: str = "FINISHED",
        *,
        plots: bool = True,
    ) -> None:
        """Counts and best value, the study-level plots and the table of all trials (unless
        ``plots`` is False: a worker stopping on a signal has seconds), then close the run."""
        from mlflow.entities import Metric

        from tuner.study import best_trial, counts
        from tuner.study import value as best_value

        c = counts(study)
        now = _now()
        step = c["complete"] + c["pruned"] + c["fail"]  # one point per closing, never two alike
        done = self.client.get_metric_history(parent_run_id, "trials_complete")
        if any(m.step == step for m in done):  # closed at these counts already (stop, resume)
            metrics = []
        else:
            metrics = [Metric(f"trials_{k}", v, now, step) for k, v in c.items() if k != "counted"]
        best = best_trial(study)
        value = None if best is None else best_value(best)
        if best is not None and value is not None:
            if metrics:
                metrics.append(Metric("best_value", value, now, step))
            baselines = study.user_attrs.get(records.BASELINES)
            if metrics and baselines:
                from tuner.baselines import skill

                for key, value in skill(baselines, best.user_attrs).items():
                    if math.isfinite(value):
                        metrics.append(Metric(f"best_{key}", value, now, step))
            self.client.set_tag(parent_run_id, records.BEST_TRIAL_TAG, str(best.number))
            best_run = best.user_attrs.get(records.RUN_ID, "")
            self.client.set_tag(parent_run_id, records.BEST_RUN_TAG, best_run)
            if best_run:
                self.mark_best(parent_run_id, best_run)
        if metrics:
            self.client.log_batch(parent_run_id, metrics=metrics)
        if plots:
            self._log_plots(parent_run_id, study)
        self.client.set_terminated(parent_run_id, status)

    def mark_best(self, parent_run_id: str, run_id: str) -> None:
        """Tag the run of the study's best trial ``tuner.best = true`` and name it
        ``trial-N (best)``, so it stands out in the runs table; the mark leaves the run that had
        it (searched by tag, so two workers finishing best trials at once end with one mark
        after the next call)."""
        run = self.client.get_run(run_id)
        exp_id = run.info.experiment_id
        marked = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.`{records.BEST_TAG}` = 'true' and "
            f"tags.`{records.PARENT_RUN_TAG}` = '{parent_run_id}'",
            max_results=100,
        )
        for other in marked:
            if other.info.run_id != run_id:
                self.client.delete_tag(other.info.run_id, records.BEST_TAG)
                number = other.data.tags.get(records.TRIAL_NUMBER_TAG)
                self.client.update_run(other.info.run_id, name=f"trial-{number}")
        if run.data.tags.get(records.BEST_TAG) != "true":
            self.client.set_tag(run_id, records.BEST_TAG, "true")
            number = run.data.tags.get(records.TRIAL_NUMBER_TAG)
            self.client.update_run(run_id, name=f"trial-{number} (best)")

    def _log_plots(self, parent_run_id: str, study: optuna.Study) -> None:
        """The trials as ``trials.csv`` and the study's plots, each as a PNG (Optuna's
        matplotlib plots) and a self-contained HTML (plotly.js inside, not fetched from a CDN:
        GPU clusters are often offline); several objectives add ``pareto.csv`` and the front.
        ``$TUNER_PLOTS=0`` leaves the plots out (the tables and the best trial's figure stay)."""
        import functools

        import optuna
        from optuna.visualization import matplotlib as mpl

        table = study.trials_dataframe()
        self.client.log_text(parent_run_id, table.to_csv(index=False), "trials.csv")
        v = optuna.visualization
        figures: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "optimization_history": (v.plot_optimization_history, mpl.plot_optimization_history),
            "param_importances": (v.plot_param_importances, mpl.plot_param_importances),
            "parallel_coordinate": (v.plot_parallel_coordinate, mpl.plot_parallel_coordinate),
            "intermediate_values": (v.plot_intermediate_values, mpl.plot_intermediate_values),
        }
        if len(study.directions) > 1:  # the plots read the first objective; the front, all
            import pandas as pd

            from tuner.study import pareto_front

            first = study.metric_names[0] if study.metric_names else "objective_0"
            for name in ("optimization_history", "param_importances", "parallel_coordinate"):
                figures[name] = tuple(  # type: ignore[assignment]
                    functools.partial(f, target=lambda t: t.values[0], target_name=first)
                    for f in figures[name]
                )
            figures["pareto_front"] = (v.plot_pareto_front, mpl.plot_pareto_front)
            front = pd.DataFrame(
                [
                    {
                        "trial": row["trial"],
                        **row["values"],
                        **{f"params_{k}": v for k, v in row["params"].items()},
                    }
                    for row in pareto_front(study)
                ]
            )
            if len(front):
                self.client.log_text(parent_run_id, front.to_csv(index=False), "pareto.csv")
        import matplotlib.pyplot as plt

        if os.environ.get(PLOTS_ENV, "1") == "0":
            figures = {}
        trials = study.get_trials(deepcopy=False)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            # Optuna warns of an empty plot (a study stopped before its first trial ended); its
            # intermediate values are drawn for pruned and running trials, not failed ones
            drawn = (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
            reported = any(t.intermediate_values for t in trials if t.state in drawn)
            figures = {k: f for k, f in figures.items() if k == "intermediate_values" and reported}
        for name, (plotly, matplotlib) in figures.items():
            try:
                with warnings.catch_warnings():  # "importance may be inaccurate" on few trials,
                    warnings.simplefilter("ignore")  # "experimental" matplotlib plots
                    html = plotly(study).to_html(include_plotlyjs=True, full_html=True)
                    image = _figure_of(matplotlib(study))
            except (ValueError, RuntimeError, ZeroDivisionError):
                plt.close("all")  # a plot that failed half-way may have opened its figure
                continue  # e.g. importances need two complete trials with varied parameters
            try:
                self.client.log_text(parent_run_id, html, f"plots/{name}.html")
            except Exception:
                plt.close(image)
                raise
            self.log_image(parent_run_id, image, f"plots/{name}.png")
        self._copy_best_figure(parent_run_id, study)

    def _copy_best_figure(self, parent_run_id: str, study: optuna.Study) -> None:
        """The best trial's figure (``plots/best_*.png``, on its run) onto the study's run: at
        the study's close, so an older best's upload never lands last."""
        from tuner.study import best_trial

        best = best_trial(study)
        run_id = None if best is None else best.user_attrs.get(records.RUN_ID)
        if run_id is None:
            return
        names = [a.path for a in self.client.list_artifacts(run_id, "plots")]
        with tempfile.TemporaryDirectory() as tmp:
            for path in names:
                if Path(path).name.startswith("best_"):
                    local = self.client.download_artifacts(run_id, path, tmp)
                    self.client.log_artifact(parent_run_id, local, "plots")

    def log_image(self, run_id: str, figure: Any, path: str) -> None:
        """A matplotlib figure as a PNG artifact, then closed (pyplot keeps every open one)."""
        import matplotlib.pyplot as plt

        try:
            self.client.log_figure(run_id, figure, path)
        finally:
            plt.close(figure)

    # -- one trial ---------------------------------------------------------------------------
    def kill_trial_run(self, study: optuna.Study, trial: Any, reason: str) -> None:
        """Close the run of a trial whose worker died as KILLED, whatever it said before (the
        worker may have told MLflow its end, not Optuna). A trial killed before its run was
        linked is found by its tags; one killed before its run existed gets a closed one. A run
        killed before its first batch of points has no parameters yet (they ride with it): it
        gets the trial's sampled ones."""
        from mlflow.entities import Param

        run_id = trial.user_attrs.get(records.RUN_ID)
        exp_id = study.user_attrs.get(records.EXPERIMENT)
        parent = study.user_attrs.get(records.PARENT_RUN)
        if run_id is None and exp_id is not None:
            found = self.client.search_runs(
                [exp_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and "
                f"tags.`optuna.trial_number` = '{trial.number}'",
                max_results=1,
            )
            if found:
                run_id = found[0].info.run_id
            else:
                run_id = self.client.create_run(
                    exp_id,
                    run_name=f"trial-{trial.number}",
                    tags={
                        records.PARENT_RUN_TAG: parent,
                        records.STUDY_NAME_TAG: study.study_name,
                        records.TRIAL_NUMBER_TAG: str(trial.number),
                    },
                ).info.run_id
        if run_id is None:
            return
        params = [Param(k, _param(v)) for k, v in trial.params.items()]
        if params and not self.client.get_run(run_id).data.params:
            self.client.log_batch(run_id, params=params)
        self.close_run(run_id, INTERRUPTED_STATUS, reason, only_running=False)

    def close_run(
        self, run_id: str, status: str, reason: str, *, only_running: bool = True
    ) -> None:
        """Close a run left RUNNING by a trial that died (idempotent for closed runs)."""
        if only_running and self.client.get_run(run_id).info.status != "RUNNING":
            return
        self.client.set_tag(run_id, records.STATE_TAG, "FAIL")
        self.client.set_tag(run_id, records.REASON_TAG, reason)
        self.client.set_terminated(run_id, status)

    def log_model(self, run_id: str, model: Any, card: records.ModelCard) -> str:
        """The trained model (``.keras``) and what it needs to predict, under ``model/``."""
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / records.MODEL_FILE)
            (Path(tmp) / records.CARD_FILE).write_text(card.to_json())
            self.client.log_artifacts(run_id, tmp, records.MODEL_DIR)
        return f"runs:/{run_id}/{records.MODEL_DIR}"

    def download(self, artifact_uri: str, folder: str) -> Path:
        """An artifact folder (e.g. ``runs:/ID/model``) downloaded into ``folder``."""
        import mlflow.artifacts

        path = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=folder, tracking_uri=self.uri
        )
        return Path(path)


class TrialRun:
    """One trial's MLflow run, kept whole through a tracking-server outage.

    Nothing here raises: training never waits on MLflow and never fails because of it. What
    could not be sent (the run itself, its parameters, epoch points, the end) is kept in order
    and sent at the next epoch, backing off (1 s, 2 s, ... 30 s between tries) while the server
    is down; ``catch_up`` waits for it within a bound. Epoch points go out in batches, at most
    every ``$TUNER_MLFLOW_FLUSH_SECONDS`` (5 s; 0 sends every epoch at once), and all of them at
    the trial's end: a curve in the UI lags by that much, and a trial of fast epochs does not
    pay a tracking-server round trip per epoch. The parameters ride with the first batch, so a
    trial shorter than that costs the tracking server three calls: create, one batch, end.
    Points keep the time they were measured, and MLflow drops a point it already has, so a send
    whose answer was lost duplicates nothing; a run whose creation answer was lost is found
    again by its ``tuner.log_id`` tag.
    """

    def __init__(
        self,
        tracker: Tracker,
        experiment_id: str,
        parent_run_id: str,
        study_name: str,
        trial_number: int,
        params: dict[str, Any],
        tags: dict[str, str],
        on_created: Callable[[str], None] | None = None,
    ) -> None:
        from mlflow.entities import Param

        self.tracker = tracker
        self.client = tracker.client
        self.on_created = on_created
        self.experiment_id = experiment_id
        self.number = trial_number
        self.run_id: str | None = None
        self.log_id = uuid.uuid4().hex
        self.tags = {
            records.PARENT_RUN_TAG: parent_run_id,
            records.STUDY_NAME_TAG: study_name,
            records.TRIAL_NUMBER_TAG: str(trial_number),
            records.STATE_TAG: "RUNNING",
            records.LOG_ID_TAG: self.log_id,
            **tags,
        }
        self._params = [Param(k, _param(v)) for k, v in params.items()]
        self._metrics: list[Any] = []
        self._end: tuple[list[Any], str] | None = None
        self._tried_create = False
        self._next_try = 0.0
        self._backoff = Backoff(1.0, 30.0)
        self._down = False
        raw = os.environ.get(FLUSH_ENV)
        self.flush_seconds = float(raw) if raw else DEFAULT_FLUSH_SECONDS
        self._sent = clock.monotonic()
        self.sync(send=False)  # the run at once; its parameters ride with the first points

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = _now()
        self._metrics += [Metric(k, v, now, epoch) for k, v in logs.items()]
        if self.run_id is None or clock.monotonic() - self._sent >= self.flush_seconds:
            self.sync()

    def sync(self, *, force: bool = False, send: bool = True) -> bool:
        """Send what is pending, once (unless backing off); True when nothing is left
        (``send=False``: only create the run, True when it exists)."""
        if clock.monotonic() < self._next_try and not force:
            return False
        created = None
        try:
            if self.run_id is None:
                self.run_id = created = self._create()
            # As few calls as MLflow's batch limits allow (100 params, 1,000 entities a call);
            # the end's tags ride with the last metrics. Resending a batch whose answer was lost
            # duplicates nothing (same points, same values).
            tagged = False
            while send and (self._params or self._metrics):
                params = self._params[:100]
                metrics = self._metrics[: 1000 - len(params) - END_TAGS]
                last = len(metrics) == len(self._metrics)
                tags = self._end[0] if self._end is not None and last else []
                self.client.log_batch(self.run_id, metrics=metrics, params=params, tags=tags)
                del self._params[: len(params)], self._metrics[: len(metrics)]
                tagged = bool(tags)
            if self._end is not None:
                tags, status = self._end
                if not tagged:
                    self.client.log_batch(self.run_id, tags=tags)
                self.client.set_terminated(self.run_id, status)
                self._end = None
        except Exception as e:  # the server is down or answered with an error
            if not self._down:
                log.warning(
                    "MLflow did not answer for trial %d (%s); training goes on and its records "
                    "are sent when MLflow is back",
                    self.number,
                    brief(e),
                )
            self._down = True
            self._next_try = clock.monotonic() + self._backoff.next()
            return False
        finally:
            if created is not None and self.on_created is not None:
                self.on_created(created)
        if self._down:
            log.warning("MLflow is back; trial %d caught up", self.number)
        self._down = False
        self._backoff.reset()
        self._sent = clock.monotonic()
        return True

    def _create(self) -> str:
        if self._tried_create:  # the first try may have created it and lost the answer
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`tuner.log_id` = '{self.log_id}'",
                max_results=1,
            )
            if found:
                return str(found[0].info.run_id)
        self._tried_create = True
        run = self.client.create_run(
            self.experiment_id, run_name=f"trial-{self.number}", tags=self.tags
        )
        return str(run.info.run_id)

    def catch_up(self, seconds: float | None = None) -> list[str]:
        """Wait (within ``seconds``, default ``$TUNER_MLFLOW_RETRY_SECONDS``) until everything
        pending is sent; returns what is still unrecorded, in words (empty when all is sent)."""
        if seconds is None:
            raw = os.environ.get(RETRY_ENV)
            seconds = float(raw) if raw else DEFAULT_RETRY_SECONDS
        deadline = clock.monotonic() + seconds
        while not self.sync():
            left = deadline - clock.monotonic()
            if left <= 0:
                break
            if self._next_try >= deadline:  # the backoff would pass the bound: a last try
                clock.sleep(left)
                self.sync(force=True)
                break
            clock.sleep(max(self._next_try - clock.monotonic(), 0.05))
        return self.unrecorded()

    def unrecorded(self) -> list[str]:
        if self.run_id is None:
            return ["the run (MLflow was down)"]
        out = []
        if self._params:
            out.append("parameters")
        if self._metrics:
            out.append(f"{len(self._metrics)} metric points")
        if self._end is not None:
            out.append("the run's end")
        return out

    def log_image(self, figure: Any, path: str) -> None:
        """A figure of the trial on its run; a warning if MLflow is down: a missing figure
        does not fail a trial that trained well."""
        import matplotlib.pyplot as plt

        if self.run_id is None:
            self.catch_up()
        if self.run_id is None:
            plt.close(figure)
            return
        try:
            self.tracker.log_image(str(self.run_id), figure, path)
        except Exception as e:
            log.warning("the figure of trial %d was not recorded: %s", self.number, brief(e, 500))

    def log_model(self, model: Any, card: records.ModelCard) -> str | None:
        """The model's artifacts; None (with a message) if MLflow is down: a missing model file
        does not fail a trial that trained well."""
        if self.run_id is None:
            self.catch_up()
        if self.run_id is None:
            return None
        try:
            return self.tracker.log_model(str(self.run_id), model, card)
        except Exception as e:
            log.warning("the model of trial %d was not recorded: %s", self.number, brief(e, 500))
            return None

    def end(
        self,
        state: str,
        metrics: dict[str, float],
        reason: str | None = None,
        status: str | None = None,
        *,
        seconds: float | None = None,
    ) -> list[str]:
        """Record the trial's end (summary metrics, state and reason tags, run status)."""
        from mlflow.entities import Metric, RunTag

        now = _now()
        tags = [RunTag(records.STATE_TAG, state)]
        if reason:
            tags.append(RunTag(records.REASON_TAG, reason[:5000]))
        self._metrics += [Metric(k, v, now, 0) for k, v in metrics.items()]
        self._end = (tags, status or RUN_STATUS[state])
        left = self.catch_up(seconds)
        if left:
            log.warning(
                "MLflow is still down; trial %d's run is missing %s (`tuner check --repair` "
                "closes a run left RUNNING)",
                self.number,
                ", ".join(left),
            )
        return left


def trials_view(objective: str, direction: str) -> dict[str, Any]:
    """MLflow's runs table as a study's URL opens it: the trials sorted by their best epoch's
    objective, best first (a sorted table lists them flat, where by date they start collapsed
    under the study's run), with the columns a user compares shown (MLflow shows none of the
    metrics until they are picked under "Columns"). ``objective``: the (first) objective."""
    test = "test_" + objective.removeprefix("val_")
    metrics = (f"best_{objective}", test, records.EPOCHS_RUN, "params")
    return {
        "orderByKey": f"metrics.`best_{objective}`",
        "orderByAsc": direction == "minimize",
        "selectedColumns": [f"metrics.`{m}`" for m in metrics] + ["attributes.`Duration`"],
    }


def _param(value: Any) -> str:
    return str(value)[:6000]


def _now() -> int:
    return int(time.time() * 1000)


def _figure_of(axes: Any) -> Any:
    """The figure of what Optuna's matplotlib plots return (one Axes, or an array of them)."""
    import numpy as np

    first = np.asarray(axes, dtype=object).flat[0] if isinstance(axes, np.ndarray) else axes
    figure = first.figure
    figure.tight_layout()
    return figure
