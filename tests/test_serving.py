"""The best model as an MLflow model (issue 14): `tuner best --register NAME --data F` logs a
pyfunc (raw rows in, `tuner predict`'s table out) with a signature and an input example,
registers it, and `mlflow models serve` answers on raw rows."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tuner import records
from tuner.serving import example_rows


def card(task: str, **data) -> records.ModelCard:
    return records.ModelCard(task=task, window=8, scaler={}, data={"file": "t.csv", **data})


def test_the_input_example_holds_whole_windows_or_whole_sequences() -> None:
    table = pd.DataFrame({"id": [i // 10 for i in range(100)], "v": range(100)})
    assert len(example_rows(card("forecast"), table)) == 100, "3 windows + horizon, at least 100"
    long = pd.concat([table] * 3, ignore_index=True)
    assert len(example_rows(card("forecast"), long)) == 100
    sequences = example_rows(card("classify", id="id"), table)
    assert sorted(sequences["id"].unique()) == [0, 1, 2] and len(sequences) == 30
    assert len(example_rows(card("text"), table)) == 5


def test_a_served_model_s_error_names_the_request_not_a_temporary_file() -> None:
    """A new user's trial: a bad request's error named the served model's temporary file."""
    from types import SimpleNamespace

    import numpy as np

    from tuner import data
    from tuner.errors import InputError
    from tuner.serving import rows_predict

    options = data.DataOptions(path="t.csv", target=("y",), horizon=1)
    forecast = records.ModelCard(
        "forecast",
        2,
        data.Scaler("none", np.zeros(1), np.ones(1)).to_json(),
        options.to_spec(),
        columns=["y"],
        target_index=[0],
    )
    with pytest.raises(InputError) as e:
        model = SimpleNamespace(input_shape=(None, 2, 1))  # never reached: the rows are wrong
        rows_predict(model, forecast, {"x": [1.0, 2.0, 3.0]})  # no column y
    assert str(e.value).startswith("the request's rows: "), str(e.value)
    assert "rows.parquet" not in str(e.value)


@pytest.mark.slow
def test_the_registered_best_model_serves_raw_rows(space_file, co2_csv, capsys) -> None:
    import mlflow
    from conftest import CO2_OPTIONS

    from tuner.cli import main
    from tuner.storage import embedded
    from tuner.testing import free_port, kill_group, start, tail, wait_for

    space = space_file("""
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  units: 8
  window: 8
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main([*argv, "--trials", "1"]) == 0
    capsys.readouterr()
    assert main(["best", "--register", "co2", "--data", str(co2_csv), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["registered"]["version"] == "1"
    assert "models serve -m models:/co2/1 --env-manager local" in out["registered"]["serve"]

    _, tracking, _ = embedded()
    mlflow.set_tracking_uri(tracking)
    rows = pd.read_csv(co2_csv).head(60)
    served = mlflow.pyfunc.load_model("models:/co2/1")
    assert served.metadata.signature is not None
    got = served.predict(rows)
    assert {"origin", "step", "co2_pred", "co2_actual", "split"} <= set(got.columns)
    assert len(got) == 60 - 8 + 1 and got["co2_pred"].notna().all()

    port = free_port()
    log = Path("serve.log")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/co2/1"]
    command += ["--env-manager", "local", "--port", str(port), "--host", "127.0.0.1"]
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # the venv's uvicorn
    server = start(command, log, {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": path})
    try:

        def ping() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ping, 180, f"mlflow models serve answering ({tail(log, 5)})")
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)["predictions"]
        assert len(answer) == len(got)
        assert abs(answer[-1]["co2_pred"] - got["co2_pred"].iloc[-1]) < 1e-4
    finally:
        kill_group(server)
