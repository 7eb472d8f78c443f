"""tuner: find good Keras LSTM architectures for sequence data, with Optuna and MLflow."""

__version__ = "0.1.0"
