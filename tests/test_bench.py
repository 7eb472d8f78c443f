"""The benchmark scripts run and report (not their figures).

One benchmark runs end to end at the hidden tiny size (B6: it needs only tuner and PostgreSQL);
every benchmark module must import, so the others cannot rot unseen.
"""

from __future__ import annotations

import json
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
