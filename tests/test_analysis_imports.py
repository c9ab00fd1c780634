"""`analysis` reads results and never trains: it must not import `experiments`."""

from __future__ import annotations

import ast
from pathlib import Path

ANALYSIS = Path(__file__).parents[1] / "analysis"


def test_analysis_never_imports_experiments() -> None:
    for path in ANALYSIS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "experiments" for m in modules), path.name
