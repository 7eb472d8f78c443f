"""What the stores hold, named once: every Optuna attribute and MLflow tag tuner writes, the
study's spec (``StudySpec``) and the card saved beside each model (``ModelCard``).

Optuna (study and trial user attributes):

======================  =====  ===============================================================
attribute               on     holds
======================  =====  ===============================================================
``tuner_spec``          study  the ``StudySpec``: space, data options, data fingerprint, caps
``tuner_target_trials`` study  trials that count towards the target (COMPLETE/PRUNED/RUNNING)
``tuner_budget_epochs`` study  the compute budget: epochs of every trial together
``tuner_baselines``     study  the baselines' scores (``tuner.baselines.compute``)
``tuner_retrain``       study  ``tuner retrain``'s summary per trial number
``mlflow_experiment_id`` study the MLflow experiment of the study
``mlflow_parent_run_id`` study the study's parent run
``mlflow_run_id``       trial  the trial's run
``mlflow_unrecorded``   trial  what MLflow lacks of the trial (it was down too long)
``model_uri``           trial  the model of a trial that was the best when it completed
``reason``              trial  why a trial is FAIL or PRUNED
``error``               trial  the exception type of a trial's own error (the failure streak)
``worker``              trial  the worker that ran it (host:pid of its ``tuner worker``)
``keras_backend``       trial  tensorflow, jax or torch: what the trial trained on
``seed``, ``sampler_seed``, ``cudnn_eligible``, ``epochs``, ``epochs_run``, ``interrupted``
======================  =====  ===============================================================

MLflow: runs carry ``optuna.study_name``, ``optuna.trial_number``, ``optuna.state`` and the
``tuner.*`` tags below; a trial's run is a child (``mlflow.parentRunId``) of the study's run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import InputError

# -- study attributes --------------------------------------------------------------------------
SPEC = "tuner_spec"
TARGET = "tuner_target_trials"
DEFAULT_TRIALS = 20  # a new study's TARGET without --trials (a resume keeps its own)
NO_TRIAL_TARGET = 1_000_000  # TARGET under --budget-epochs without --trials: the budget ends it
BUDGET = "tuner_budget_epochs"
BASELINES = "tuner_baselines"
RETRAIN = "tuner_retrain"
EXPERIMENT = "mlflow_experiment_id"
PARENT_RUN = "mlflow_parent_run_id"

# -- trial attributes --------------------------------------------------------------------------
RUN_ID = "mlflow_run_id"
UNRECORDED = "mlflow_unrecorded"
MODEL_URI = "model_uri"
REASON = "reason"
ERROR = "error"
WORKER = "worker"
SEED = "seed"
SAMPLER_SEED = "sampler_seed"
CUDNN = "cudnn_eligible"
BACKEND = "keras_backend"  # tensorflow, jax or torch: what the trial trained on
EPOCHS = "epochs"  # the epochs a trial trains (reserved at its claim under a budget)
EPOCHS_RUN = "epochs_run"  # the epochs it trained
# A residual model: the p-value of its network's gain over its start on validation, and 1 when
# it went back to its start (the ridge autoregression or the last value: no significant gain)
START_PVALUE = "start_pvalue"
BACK_TO_START = "back_to_start"
START_LAGS = "start_lags"  # a ridge start: the lags its ridge read
# a ridge start that was the study's ridge baseline: the window that ridge was fitted on
START_WINDOW = "start_window"
KEEP_LEVEL = "keep_level"  # the p below which it kept its training (``training.keep_level``)
INTERRUPTED = "interrupted"  # the number of a trial stopped by a signal (to be retried)
# A trial's attributes that describe it rather than measure it (the rest are metrics).
NOT_METRICS = (
    RUN_ID,
    MODEL_URI,
    REASON,
    ERROR,
    WORKER,
    SEED,
    SAMPLER_SEED,
    CUDNN,
    BACKEND,
    INTERRUPTED,
)

# -- reasons (the start of a trial's ``reason``) ------------------------------------------------
INTERRUPTED_REASON = "interrupted by "  # + the signal's name: the trial is retried as it was
NOT_STARTED = "could not start: "  # a claimed trial its worker could not open
ORPHAN_REASON = "orphan: claimed, but its worker never started it (the claim's answer was lost)"
STALE_REASON = "worker died (heartbeat stale); trial retried"
BUDGET_SPENT_REASON = "not run: the study's epoch budget was spent first"

# -- MLflow tags -------------------------------------------------------------------------------
ROLE_TAG = "tuner.role"  # study (the parent run) or retrain; trials' runs have none
REASON_TAG = "tuner.reason"
CUDNN_TAG = "tuner.cudnn_eligible"
BACKEND_TAG = "tuner.keras_backend"
RETRY_OF_TAG = "tuner.retry_of"
RETRAIN_OF_TAG = "tuner.retrain_of"
SEED_TAG = "tuner.seed"
STUDY_TAG = "tuner.study"  # on the experiment
# MLflow 3 opens an experiment in its GenAI view unless told it is model training
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# The runs table a study's URL opens on: MLflow's shared view state, an experiment tag that its
# UI reads for ``?viewStateShareKey=trials`` (sort, columns)
VIEW_TAG_PREFIX, TRIALS_VIEW = "mlflow.sharedViewState.", "trials"
TRIALS_VIEW_TAG = VIEW_TAG_PREFIX + TRIALS_VIEW
LOG_ID_TAG = "tuner.log_id"  # a run created while MLflow was flaky: found again by this id
STUDY_NAME_TAG = "optuna.study_name"
TRIAL_NUMBER_TAG = "optuna.trial_number"
STATE_TAG = "optuna.state"
PARENT_RUN_TAG = "mlflow.parentRunId"
BEST_TAG = "tuner.best"  # "true" on the run of the study's best trial (one at a time)
BEST_TRIAL_TAG = "best_trial_number"  # on the parent run
BEST_RUN_TAG = "best_run_id"

# -- files -------------------------------------------------------------------------------------
MODEL_DIR = "model"
MODEL_FILE = "model.keras"
CARD_FILE = "preprocess.json"


@dataclass(frozen=True)
class StudySpec:
    """What a worker anywhere needs besides the storage URL, the study name and the data file:
    the resolved space, the data options, the data's fingerprint and the study's caps."""

    space: dict[str, Any]  # the space as parsed (``Space.raw``), window range resolved
    data: dict[str, Any]  # ``DataOptions.to_spec()``
    fingerprint: str
    space_file: str = ""
    max_epochs: int | None = None
    season: int | None = None
    budget_epochs: int | None = None
    # the window range was resolved from the data: a resume keeps the study's own
    window_auto: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudySpec:
        """A stored spec; keys a newer version added are ignored, missing ones take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def with_max_epochs(self, max_epochs: int | None) -> StudySpec:
        return dataclasses.replace(self, max_epochs=max_epochs)


@dataclass(frozen=True)
class ModelCard:
    """What ``tuner predict`` needs besides the model file (``preprocess.json``, plain JSON):
    the task, the window, the scaler and data options, and the columns (forecast) or the
    classes (classify, text); a text model of token ids, its vocabulary size."""

    task: str
    window: int
    scaler: dict[str, Any]  # ``Scaler.to_json()``: kind, center, scale (text: empty)
    data: dict[str, Any]  # ``DataOptions.to_spec()``
    columns: list[str] = field(default_factory=list)
    target_index: list[int] = field(default_factory=list)
    horizon: int = 1
    classes: list[Any] = field(default_factory=list)
    vocab_size: int = 0
    # tag regression: the targets' names and their standardization (center, scale)
    targets: list[str] = field(default_factory=list)
    target_scaler: dict[str, Any] = field(default_factory=dict)
    # seq2seq: the target ids (< target_vocab; the start token is target_vocab) and how many
    # steps greedy decoding runs at most (vocab_size: the source's)
    target_vocab: int = 0
    decoder_length: int = 0
    stateful: bool = False  # forecast: the model reads the table in order, batch size 1
    # forecast: text input columns one-hot encoded into ``name=category`` columns
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def features(self) -> int:
        """Numbers per time step of the model's input (text: 1, a token id)."""
        if self.task == "forecast":
            return len(self.columns)
        return len(self.scaler["center"]) if self.task in ("classify", "tag") else 1

    def to_json(self) -> str:
        out = dataclasses.asdict(self)
        keep = {
            "forecast": ("columns", "target_index", "horizon", "stateful", "categories"),
            "classify": ("classes",),
            "text": ("classes", "vocab_size"),
            "tag": ("classes", "targets", "target_scaler"),
            "seq2seq": ("vocab_size", "target_vocab", "decoder_length"),
        }[self.task]
        optional = ("columns", "target_index", "horizon", "classes", "vocab_size")
        seq2seq = ("target_vocab", "decoder_length")
        for key in (*optional, "targets", "target_scaler", *seq2seq, "stateful", "categories"):
            if key not in keep:
                del out[key]
        return json.dumps(out, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelCard:
        try:
            raw = json.loads(text)
            card = cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})
            _ = card.features, int(card.window)
        except (ValueError, TypeError, KeyError) as e:
            raise InputError(f"cannot read {CARD_FILE}: {e}", source=source) from None
        return card
