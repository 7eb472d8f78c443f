"""`tuner dashboard` (issue 14): optuna-dashboard serves the study storage."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_dashboard_serves_the_study() -> None:
    import optuna

    from tuner.storage import embedded, make_storage
    from tuner.testing import free_port, kill_group, start, tail, wait_for

    storage_url, _, _ = embedded()
    storage = make_storage(storage_url, heartbeat=False)
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    port = free_port()
    log = Path("dashboard.log")
    server = start(
        [sys.executable, "-m", "tuner", "dashboard", "--port", str(port)], log, dict(os.environ)
    )
    try:

        def studies() -> list | None:
            try:
                url = f"http://127.0.0.1:{port}/api/studies"
                with urllib.request.urlopen(url, timeout=2) as r:
                    return json.load(r)["study_summaries"]
            except OSError:
                return None

        found = wait_for(studies, 60, f"optuna-dashboard answering ({tail(log, 5)})")
        assert [s["study_name"] for s in found] == ["s"]
        assert f"on http://127.0.0.1:{port}" in log.read_text()
    finally:
        kill_group(server)


def test_without_optuna_dashboard_it_says_what_to_install(monkeypatch, capsys) -> None:
    import importlib.util

    from tuner.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "optuna_dashboard" else real(name, *a),
    )
    assert main(["dashboard"]) == 2
    assert "pip install 'tuner[dashboard]'" in capsys.readouterr().err
