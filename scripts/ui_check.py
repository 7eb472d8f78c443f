"""What a person sees in the MLflow UI, checked in a real browser (issue 14).

Runs a tiny study (the bundled CO2 series, 3 trials of 2 epochs) in a scratch folder, starts
`tuner ui` on it, and opens the printed runs page in headless Chromium (Debian's package, driven
by Playwright's Python API with the system browser: no browser download). It saves screenshots of
the study's runs (as the printed URL opens them, nothing clicked: the trials listed, the best one
marked and on the first row, the compared metrics in columns), a trial's per-epoch curves and
each PNG and HTML plot of the parent run, and checks that every plot has rendered (non-blank
pixels; the HTML plots drew their SVG) and that no request left the machine.

    .venv/bin/python scripts/ui_check.py --out /tmp/ui        # screenshots and a summary there

Needs `pip install playwright` and a Chromium on PATH (`apt-get install chromium`); exits 3 and
says so when either is missing. Exit 0: every check passed; 1: a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  units: [8, 16]
  window: 8
"""
LOCAL = {"127.0.0.1", "localhost", ""}
FIRST_ROW = ".ag-row[row-index='0']"  # ag-grid's first row, in each of its column blocks
COMPARED = ["best_val_mae_original", "test_mae_original", "epochs_run", "params"]
TIMEOUT = 180.0  # seconds for a page or plot to render (a busy 2-core machine)


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def study(folder: Path, env: dict[str, str]) -> None:
    (folder / "space.yaml").write_text(SPACE)
    lines = (ROOT / "examples" / "co2_weekly.csv").read_text().splitlines()[:300]
    (folder / "co2.csv").write_text("\n".join(lines) + "\n")
    tuner = [sys.executable, "-m", "tuner"]
    subprocess.run(
        [*tuner, "run", "space.yaml", "--data", "co2.csv", "--target", "co2", "--time", "date"]
        + ["--nan", "interpolate", "--study", "co2", "--trials", "3", "-q"],
        cwd=folder,
        env=env,
        check=True,
    )


def start_ui(folder: Path, env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], str]:
    ui = subprocess.Popen(
        [sys.executable, "-m", "tuner", "ui", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert ui.stdout is not None
    for line in ui.stdout:
        if line.startswith("MLflow UI: "):
            return ui, line.split()[2]
    raise RuntimeError("tuner ui exited before printing its URL")


def wait_drawn(page, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    """Whether a frame of the page shows a drawn plotly plot within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for frame in page.frames:
            try:
                if frame.query_selector(".main-svg") is not None:
                    return True
            except Exception:  # a frame replaced while asked
                continue
        time.sleep(0.5)
    return False


def non_blank(png: bytes) -> float:
    """The share of pixels that differ from the most common colour (0: a blank image)."""
    import io

    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(io.BytesIO(png), format="png")[..., :3].reshape(-1, 3)
    colours, counts = np.unique((pixels * 255).astype(int), axis=0, return_counts=True)
    return 1.0 - counts.max() / counts.sum()


def check(out: Path) -> list[tuple[str, bool, str]]:
    from mlflow import MlflowClient
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from tuner.testing import free_port

    results: list[tuple[str, bool, str]] = []

    def record(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "TUNER_HOME": str(folder / ".tuner"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        study(folder, env)
        tracking = f"sqlite:///{folder / '.tuner' / 'mlflow.db'}"
        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("co2")
        parent = client.search_runs([exp.experiment_id], "tags.`tuner.role` = 'study'")[0]
        best = client.search_runs([exp.experiment_id], "tags.`tuner.best` = 'true'")
        record("one run is marked best", len(best) == 1)
        port = free_port()
        ui, url = start_ui(folder, env, port)
        external: list[str] = []
        try:
            with sync_playwright() as p:
                chromium = p.chromium.launch(executable_path=browser(), headless=True)
                page = chromium.new_page(viewport={"width": 1500, "height": 950})

                def watch(request) -> None:  # type: ignore[no-untyped-def]
                    if urlparse(request.url).hostname not in LOCAL | {None} and not (
                        request.url.startswith(("data:", "blob:", "about:"))
                    ):
                        external.append(request.url)

                page.on("request", watch)
                page.goto(url)
                page.wait_for_selector(".ag-row", timeout=TIMEOUT * 1000)
                record(
                    "opens in the model-training view", "Traces" not in page.inner_text("h1, h2")
                )
                # nothing clicked: the URL's view lists the trials, best first, with metrics
                try:
                    page.wait_for_selector("text=trial-", timeout=TIMEOUT * 1000)
                except PlaywrightTimeout:  # recorded below: no trial listed
                    pass
                time.sleep(2)
                shot = page.screenshot(path=str(out / "runs.png"))
                text = page.inner_text("body")
                record("the runs page lists the trials", "trial-" in text)
                record("the best run is marked in its name", "(best)" in text)
                first = " ".join(r.inner_text() for r in page.query_selector_all(FIRST_ROW))
                record(
                    "the best run is on the first row",
                    "(best)" in first,
                    " ".join(first.split())[:40],
                )
                header = page.inner_text(".ag-header")
                shown = [m for m in COMPARED if m in header]
                record("the compared metrics are columns", shown == COMPARED, ", ".join(shown))
                record("runs page rendered", non_blank(shot) > 0.02)

                runs = f"{url.split('#')[0]}#/experiments/{exp.experiment_id}/runs"
                view = "?workflowType=machine_learning"
                page.goto(f"{runs}/{best[0].info.run_id}/model-metrics{view}")
                page.wait_for_selector("text=val_loss", timeout=TIMEOUT * 1000)
                time.sleep(3)
                shot = page.screenshot(path=str(out / "curves.png"))
                record("a trial's per-epoch curves rendered", non_blank(shot) > 0.02)

                plots = [a.path for a in client.list_artifacts(parent.info.run_id, "plots")]
                page.goto(f"{runs}/{parent.info.run_id}/artifacts/{plots[0]}{view}")
                for path in plots:  # each file clicked in the tree, as a person would
                    name = Path(path).name
                    page.click(f"text='{name}'", timeout=TIMEOUT * 1000)
                    page.wait_for_selector(f"text='{path}'", timeout=TIMEOUT * 1000)
                    if name.endswith(".png"):
                        img = page.wait_for_selector(
                            "img[src*='get-artifact'], img[src*='blob:']", timeout=TIMEOUT * 1000
                        )
                        page.wait_for_function(
                            "i => i.complete && i.naturalWidth > 0", arg=img, timeout=TIMEOUT * 1000
                        )
                        time.sleep(1)
                        shot = img.screenshot(path=str(out / f"plot-{name}"))
                        record(f"{path} rendered", non_blank(shot) > 0.02)
                    else:
                        # the viewer loads the file (plotly.js inside: ~4.6 MB) into an iframe
                        drawn = wait_drawn(page, TIMEOUT)
                        shot = page.screenshot(path=str(out / f"plot-{name}.png"))
                        record(f"{path} drew its plot offline", drawn and non_blank(shot) > 0.02)
                chromium.close()
        finally:
            os.killpg(ui.pid, 15)
        record("no request left the machine", not external, ", ".join(external[:3]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("ui-check"), help="screenshots here")
    a = parser.parse_args()
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("ui_check: playwright is not installed (pip install playwright)", file=sys.stderr)
        return 3
    if browser() is None:
        print("ui_check: no Chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 3
    a.out.mkdir(parents=True, exist_ok=True)
    results = check(a.out)
    summary = [{"check": n, "ok": bool(ok), "detail": d} for n, ok, d in results]
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    failed = [n for n, ok, _ in results if not ok]
    passed = len(results) - len(failed)
    print(f"ui_check: {passed} of {len(results)} checks passed; screenshots in {a.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
