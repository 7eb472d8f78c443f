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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
INTERRUPTED_STATUS = "KILLED"
ROLE_TAG = "tuner.role"


class Tracker:
    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    # -- the study ---------------------------------------------------------------------------
    def ensure_study(self, study_name: str, artifact_location: str | None) -> tuple[str, str]:
        """Get or create the study's experiment and its parent run; returns their ids."""
        exp = self.client.get_experiment_by_name(study_name)
        if exp is None:
            exp_id = self.client.create_experiment(
                study_name, artifact_location=artifact_location, tags={"tuner.study": study_name}
            )
        else:
            exp_id = exp.experiment_id
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=1
        )
        if runs:
            return exp_id, runs[0].info.run_id
        run = self.client.create_run(
            exp_id, run_name=study_name, tags={ROLE_TAG: "study", "optuna.study_name": study_name}
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

        c = counts(study)
        now = _now()
        step = c["complete"] + c["pruned"] + c["fail"]  # one point per closing, never two alike
        metrics = [Metric(f"trials_{k}", v, now, step) for k, v in c.items() if k != "counted"]
        best = best_trial(study)
        if best is not None and best.value is not None:
            metrics.append(Metric("best_value", best.value, now, step))
            self.client.set_tag(parent_run_id, "best_trial_number", str(best.number))
            self.client.set_tag(
                parent_run_id, "best_run_id", best.user_attrs.get("mlflow_run_id", "")
            )
        self.client.log_batch(parent_run_id, metrics=metrics)
        if plots:
            self._log_plots(parent_run_id, study)
        self.client.set_terminated(parent_run_id, status)

    def _log_plots(self, parent_run_id: str, study: optuna.Study) -> None:
        import optuna

        table = study.trials_dataframe()
        self.client.log_text(parent_run_id, table.to_csv(index=False), "trials.csv")
        figures: dict[str, Callable[[optuna.Study], Any]] = {
            "optimization_history": optuna.visualization.plot_optimization_history,
            "param_importances": optuna.visualization.plot_param_importances,
            "parallel_coordinate": optuna.visualization.plot_parallel_coordinate,
            "intermediate_values": optuna.visualization.plot_intermediate_values,
        }
        for name, plot in figures.items():
            try:
                fig = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances need two complete trials with varied parameters
            self.client.log_figure(parent_run_id, fig, f"plots/{name}.html")

    # -- one trial ---------------------------------------------------------------------------
    def start_trial(
        self,
        experiment_id: str,
        parent_run_id: str,
        study_name: str,
        trial_number: int,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(
            experiment_id,
            run_name=f"trial-{trial_number}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                "optuna.study_name": study_name,
                "optuna.trial_number": str(trial_number),
                "optuna.state": "RUNNING",
                **tags,
            },
        )
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, _param(v)) for k, v in params.items()])
        return run_id

    def log_epoch(self, run_id: str, epoch: int, logs: dict[str, float]) -> None:
        """One call per epoch: every metric of the epoch in one batch."""
        from mlflow.entities import Metric

        now = _now()
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, epoch) for k, v in logs.items()])

    def end_trial(
        self,
        run_id: str,
        state: str,
        metrics: dict[str, float],
        reason: str | None = None,
        status: str | None = None,
    ) -> None:
        from mlflow.entities import Metric, RunTag

        now = _now()
        tags = [RunTag("optuna.state", state)]
        if reason:
            tags.append(RunTag("tuner.reason", reason[:5000]))
        self.client.log_batch(
            run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], tags=tags
        )
        self.client.set_terminated(run_id, status or RUN_STATUS[state])

    def close_run(self, run_id: str, status: str, reason: str) -> None:
        """Close a run left RUNNING by a trial that died (idempotent for closed runs)."""
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            return
        self.client.set_tag(run_id, "optuna.state", "FAIL")
        self.client.set_tag(run_id, "tuner.reason", reason)
        self.client.set_terminated(run_id, status)

    def log_model(self, run_id: str, model: Any, preprocess: dict[str, Any]) -> str:
        """The trained model (``.keras``) and what it needs to predict, under ``model/``."""
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "model.keras")
            (Path(tmp) / "preprocess.json").write_text(json.dumps(preprocess, indent=2))
            self.client.log_artifacts(run_id, tmp, "model")
        return f"runs:/{run_id}/model"


def _param(value: Any) -> str:
    return str(value)[:6000]


def _now() -> int:
    return int(time.time() * 1000)
