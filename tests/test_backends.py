"""Keras 3's backends (issue 13): a study trains and predicts on TensorFlow (the default, the
rest of the suite), JAX (a test dependency: CI runs it) and PyTorch (where it is installed: its
PyPI wheel brings ~5 GB of CUDA libraries, so elsewhere the test says so and skips). Each trial
records the backend it trained on."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tuner.device import keras_backend

BACKENDS = {"jax": "jax", "torch": "torch"}  # backend -> the package it needs


def test_the_backend_is_read_as_keras_reads_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as a fresh trial process
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert keras_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert keras_backend() == "torch"


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_study_trains_and_predicts_on_the_backend(
    backend: str, space_file, co2_csv, monkeypatch, tmp_path: Path
) -> None:
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed here (its PyPI wheel brings ~5 GB of CUDA)")
    assert importlib.util.find_spec(BACKENDS[backend]), f"{backend} is a test dependency"
    import optuna
    import pandas as pd
    from conftest import CO2_OPTIONS

    from tuner.cli import main
    from tuner.storage import embedded

    monkeypatch.setenv("KERAS_BACKEND", backend)  # the trial processes start with it
    space = space_file("""
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  units: 8
  window: 8
  residual: [none, ridge]
  highway: true
start_with:
  - {residual: ridge}
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main([*argv, "--trials", "1"]) == 0
    storage, _, _ = embedded()
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("reason")
    assert trial.user_attrs["keras_backend"] == backend
    assert trial.user_attrs["cudnn_eligible"] is True  # unmasked: the fused kernel on any backend
    assert trial.user_attrs["test_mae_original"] > 0
    out = tmp_path / "p.csv"
    assert main(["predict", "--study", "s", "--data", str(co2_csv), "-o", str(out)]) == 0
    assert pd.read_csv(out)["co2_pred"].notna().all()


@pytest.mark.slow
def test_a_stateful_lstm_trains_on_pytorch() -> None:
    """Keras 3.15's fused LSTM on PyTorch updates a stateful layer's state in place and its
    backward pass fails (keras-team/keras#23462); the model takes the step loop there."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed here (its PyPI wheel brings ~5 GB of CUDA)")
    import os
    import subprocess

    script = """
import numpy as np
from tuner.config import TrialConfig
from tuner.model import build_model

model = build_model(TrialConfig(units=(8,), stateful=True), "forecast", (8, 2), 1, batch=4)
model.compile("adam", "mse")
x = np.random.default_rng(0).normal(size=(8, 8, 2)).astype("float32")
history = model.fit(x, x[:, :, :1], batch_size=4, epochs=2, shuffle=False, verbose=0)
print(history.history["loss"])
"""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_tensorflows_start_up_notes_stay_off_a_trials_stderr(backend: str) -> None:
    # On JAX and PyTorch Keras imports TensorFlow late, in set_random_seed: its C++ start-up
    # notes ("All log messages before absl::InitializeLog()", oneDNN) would reach the terminal.
    import os
    import subprocess

    code = (
        "from tuner.device import import_keras; from tuner.fitting import seed_everything; "
        "import_keras(); seed_everything(1); import sys; assert 'tensorflow' in sys.modules"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "InitializeLog" not in done.stderr and "oneDNN" not in done.stderr, done.stderr
