"""The benchmark scripts run and report (not their figures).

One benchmark runs end to end at the hidden tiny size (B6: it needs only tuner and PostgreSQL);
every benchmark module must import, so the others cannot rot unseen.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
MODULES = [p.stem for p in sorted(SCRIPTS.glob("bench_*.py")) if p.stem != "bench_plain_keras"]


def test_every_benchmark_module_imports() -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); import bench; " + "; ".join(
        f"import {m}" for m in MODULES
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"bench_overhead", "bench_quality", "bench_pruning", "bench_scale"} <= set(MODULES)


@pytest.mark.slow
@pytest.mark.postgres
def test_bench_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench.py"), "sampler", "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "| id | figure | value | target | result |" in done.stdout
    assert "| B6 |" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["size"] == "tiny" and doc["errors"] == {}
    assert len(doc["figures"]) == 4  # TPE and random, SQLite and PostgreSQL
    for figure in doc["figures"]:
        assert set(figure) >= {"id", "name", "value", "target", "pass", "details"}
        assert figure["id"] == "B6"
        assert isinstance(figure["pass"], bool) and isinstance(figure["value"], float)


def test_b2_keeps_each_search_for_a_later_run_of_the_same_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from bench_driver import Trace
    from bench_quality import _kept, _TraceStore

    setup = {"rows": 1200, "budget": 300, "max_epochs": 15, "seeds": [1]}
    store = _TraceStore(tmp_path, setup)
    ran: list[int] = []

    def search() -> Trace:
        ran.append(1)
        return Trace("tuner", [0.5, math.inf, 0.2], 2, 0.2, 0.25, 9.5, {"best_params": {"u": 32}})

    first = _kept(store, 1, "tuner", search)
    again = _kept(_TraceStore(tmp_path, {**setup, "seeds": [1, 2, 3]}), 1, "tuner", search)
    assert ran == [1] and again == first and again.epochs_to_reach(0.3) == 3.0
    _kept(store, 2, "tuner", search)  # another seed is another search
    _kept(_TraceStore(tmp_path, {**setup, "budget": 90}), 1, "tuner", search)  # another setup
    assert ran == [1, 1, 1]
    assert not list(tmp_path.glob("*.part"))
