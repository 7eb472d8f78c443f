"""The package's shape (issue 9): no import circle between tuner's modules, and every stored
attribute and tag spelled in ``records.py`` alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tuner import records

PACKAGE = Path(__file__).resolve().parents[1] / "tuner"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The tuner modules ``path`` imports, at its top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tuner"):
            parts = node.module.split(".")
            if len(parts) > 1:
                out.add(parts[1])
            else:
                out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tuner.")}
    return out & modules


def test_no_import_circle_between_tuner_modules() -> None:
    paths = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__main__"}
    graph = {m: _imports(p, set(paths)) for m, p in paths.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    circles = sorted((a, b) for a in graph for b in graph[a] if b != a and reaches(b, a))
    assert circles == [], f"modules that import each other (directly or not): {circles}"


def test_every_stored_name_is_spelled_in_records_alone() -> None:
    names = {
        value
        for key, value in vars(records).items()
        if key.isupper()
        and isinstance(value, str)
        and ("_" in value or "." in value)
        and not key.endswith(("_REASON", "_FILE", "_DIR"))
        and key != "NOT_STARTED"
    }
    assert {"mlflow_run_id", "tuner.role", "optuna.trial_number"} <= names
    spelled = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "records":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                spelled.setdefault(node.value, []).append(f"{path.name}:{node.lineno}")
    assert spelled == {}, f"stored names spelled outside records.py: {spelled}"
