"""Unsafe input is refused by construction: the package never unpickles, never loads YAML with
Python tags, never turns off Keras's safe mode. A scan of the source, so a change that adds one
fails here (the behaviour itself is tested where it lives: test_space, test_data, test_predict)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tuner"

UNSAFE = {
    r"\bimport pickle\b|\bpickle\.load": "unpickling",
    r"\bimport (c?pickle|dill|joblib)\b|\bjoblib\.load": "unpickling",
    r"allow_pickle\s*=\s*True": "numpy with pickles",
    r"yaml\.(load|unsafe_load|full_load)\(": "YAML that can build Python objects",
    r"safe_mode\s*=\s*False": "Keras loading with code from the file",
    r"\beval\(|\bexec\(": "evaluating text",
    r"mlflow\.\w+\.load_model": "MLflow flavours (they may unpickle)",
}


def test_the_package_has_no_unsafe_loader() -> None:
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in UNSAFE.items():
                if re.search(pattern, line):
                    found.append(f"{path.name}:{n}: {what}: {line.strip()}")
    assert found == []


def test_the_scan_would_catch_one() -> None:
    line = "arrays = np.load(path, allow_pickle=True)"
    assert any(re.search(p, line) for p in UNSAFE)
