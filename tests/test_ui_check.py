"""What a person sees in the MLflow UI (issue 14), in a real browser: `scripts/ui_check.py` runs
where Chromium and Playwright are installed (Debian's package; no browser download) and says so
where they are not. CI's REST-level checks are in test_e2e (plots as PNG and offline HTML, the
best run marked, the runs URL) and test_serving."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_mlflow_ui_shows_the_study_in_a_browser(tmp_path: Path, plots) -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    out = tmp_path / "ui"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ui_check.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = json.loads((out / "summary.json").read_text())
    failed = [c for c in summary if not c["ok"]]
    assert result.returncode == 0 and not failed, (failed, result.stdout[-2000:])
    assert {"runs.png", "curves.png"} <= {p.name for p in out.iterdir()}
