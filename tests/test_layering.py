"""The import graph runs one way, in every direction: each layer imports only the layers below.

    workbench  <-  search_space  <-  analysis  <-  experiments.data  <-  .config  <-  .training
               <-  .study  <-  experiments.benchmarks, experiments.research and the commands

`workbench` (record keys, storage, secrets, files, the command line) imports no other package of
the project, so every layer may import it; `search_space` knows nothing of data or results;
`analysis` reads results and never trains; within `experiments`, data knows nothing of
training, training nothing of studies, and no library module imports a command
(`experiments/<verb>.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
COMMANDS = (
    "experiments.search", "experiments.ablate", "experiments.retrain", "experiments.train",
    "experiments.evaluate",
)  # fmt: skip
LIBRARIES = ("workbench", "search_space", "analysis", "experiments")
# Layer -> the layers it may import (itself included). The longest matching prefix decides.
ALLOWED: dict[str, tuple[str, ...]] = {
    "workbench": ("workbench",),
    "search_space": ("workbench", "search_space"),
    "analysis": ("workbench", "search_space", "analysis"),
    "experiments": (),  # its __init__; a new command module must join COMMANDS
    "experiments.data": ("workbench", "search_space", "experiments.data"),
    "experiments.config": ("workbench", "search_space", "experiments.data", "experiments.config"),
    "experiments.training": (
        "workbench", "search_space", "experiments.config", "experiments.data",
        "experiments.training",
    ),
    "experiments.study": (
        "workbench", "search_space", "analysis", "experiments.config", "experiments.data",
        "experiments.training", "experiments.study",
    ),
    **{
        room: ("workbench", "search_space", "analysis", "experiments.config", "experiments.data",
               "experiments.training", "experiments.study", "experiments.benchmarks",
               "experiments.research")
        for room in ("experiments.benchmarks", "experiments.research")
    },
    **{
        command: ("workbench", "search_space", "analysis", "experiments.config",
                  "experiments.data", "experiments.training", "experiments.study")
        for command in COMMANDS
    },
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    matches = [layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")]
    return max(matches, key=len) if matches else None


def project_imports(path: Path) -> set[str]:
    """Every project module the file imports, at the top or inside a function."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
    return {name for name in imported if name.split(".")[0] in LIBRARIES}


SOURCES = sorted(path for package in LIBRARIES for path in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(REPO)))
def test_a_module_imports_only_the_layers_below_it(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    assert layer is not None, f"{module} is in no layer: add its package to ALLOWED"
    for imported in project_imports(path):
        allowed = ALLOWED[layer]
        assert layer_of(imported) in allowed, f"{module} ({layer}) imports {imported}"


def test_the_layering_check_catches_a_violation(tmp_path: Path) -> None:
    """The check itself: a data module importing the trainer is caught."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from experiments.training.trainer import Trainer\n")
    assert layer_of("experiments.training.trainer") not in ALLOWED["experiments.data"]
    assert project_imports(source) == {"experiments.training.trainer"}
