"""The pyfunc model's code (MLflow's "models from code"): MLflow runs this file to build the
model when it loads it, so nothing of it is pickled (``tuner.serving``)."""

import mlflow

from tuner.serving import TunerModel

mlflow.models.set_model(TunerModel())
