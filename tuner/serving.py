"""A trial's model as an MLflow model (issue 14): a ``pyfunc`` that takes raw rows of the same
table the study read and answers what ``tuner predict`` writes, through the same code
(``predict.predict_with``: the saved scaler, windowing, classes, safe loading). ``tuner best
--register NAME --data F`` logs it on the trial's run, with a signature and an input example
cut from ``F``, and registers it; ``mlflow models serve -m models:/NAME/1 --env-manager local``
then answers on raw rows, and MLflow's pyfunc loader works in a notebook. The model carries
the ``tuner`` package (``code_paths``), so it loads where tuner is not installed, and is logged
as code (``pyfunc_model.py``), so loading it unpickles nothing.

Tables only: a study that read an ``.npz`` (token ids, arrays of sequences) is refused, as rows
of a table cannot hold its arrays."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc

from tuner import records
from tuner.errors import InputError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from tuner.tracking import Tracker

PYFUNC_NAME = "pyfunc"  # the logged model's name on the trial's run
EXAMPLE_SEQUENCES = 3  # an input example of a sequence task: its first sequences' rows


class TunerModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """Raw rows in, ``tuner predict``'s table out."""

    def load_context(self, context: Any) -> None:
        from tuner.predict import load_model

        self.model = load_model(context.artifacts["model"])
        card = Path(context.artifacts["card"]).read_text()
        self.card = records.ModelCard.from_json(card, context.artifacts["card"])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> pd.DataFrame:
        return rows_predict(self.model, self.card, model_input)


def rows_predict(model: Any, card: records.ModelCard, rows: Any) -> pd.DataFrame:
    """``tuner predict`` on rows held in memory (written to a Parquet file it reads)."""
    import pandas as pd

    from tuner.errors import InputError
    from tuner.predict import predict_with

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        pd.DataFrame(rows).to_parquet(path, index=False)
        try:
            return predict_with(model, card, str(path), "the served model")
        except InputError as e:  # the file is ours: the client sent rows
            if e.source == str(path):
                raise InputError(
                    e.message, source="the request's rows", field=e.field, line=e.line
                ) from None
            raise


def example_rows(card: records.ModelCard, table: pd.DataFrame) -> pd.DataFrame:
    """An input example: enough rows for a forecast's windows, or the first sequences."""
    spec = card.data
    if card.task == "forecast":
        return table.head(min(len(table), max(3 * int(card.window) + int(card.horizon), 100)))
    if spec.get("id"):
        ids = table[spec["id"]].drop_duplicates().head(EXAMPLE_SEQUENCES)
        return table[table[spec["id"]].isin(ids)]
    return table.head(5)


def register(
    study: optuna.Study, tracker: Tracker, trial_number: int, name: str, data_path: str
) -> tuple[str, str]:
    """Log trial ``trial_number``'s model as a pyfunc on its run and register it as ``name``;
    returns the registered version and the logged model's URI."""
    import mlflow

    import tuner
    from tuner import data
    from tuner.predict import _model_uri, load_model

    model_uri = _model_uri(study, trial_number)
    run_id = study.trials[trial_number].user_attrs[records.RUN_ID]
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracker.download(model_uri, tmp)
        card_file = folder / records.CARD_FILE
        card = records.ModelCard.from_json(card_file.read_text(), model_uri)
        source = str(card.data.get("file", ""))
        if not source.lower().endswith(data.TABLE_SUFFIXES):
            raise InputError(
                f"the served model takes table rows; this study read {source!r} (an .npz): "
                "use tuner predict",
                field="--register",
            )
        example = example_rows(card, data.read_table(data_path))
        output = rows_predict(load_model(folder / records.MODEL_FILE), card, example)
        signature = mlflow.models.infer_signature(example, output)
        mlflow.set_tracking_uri(tracker.uri)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=PYFUNC_NAME,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={
                    "model": str(folder / records.MODEL_FILE),
                    "card": str(card_file),
                },
                code_paths=[str(Path(tuner.__file__).parent)],
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
            )
        version = mlflow.register_model(info.model_uri, name)
    return str(version.version), info.model_uri


def _requirements() -> list[str]:
    """What the served model imports, pinned to the versions here (tuner itself travels with
    the model)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("keras", "tensorflow", "mlflow", "pandas", "pyarrow", "numpy", "scikit-learn"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out
