"""The GPU kit: built into tmp_path, it lists what it holds, and a Python that sees only the kit,
the packages the GPU image has and the checkout (no site-packages: `-S`) reads the project's
config and opens an Optuna SQLite storage."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from experiments.benchmarks.gpu_kit import (
    IMAGE_HAS,
    MANIFEST,
    build_kit,
    main,
    plan_kit,
    project_requirements,
)

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit") / ".gpukit"
    assert main(["--out", str(out)]) == 0
    return out


def the_image(folder: Path) -> Path:
    """What the GPU image has, taken from this environment: links to its distributions'
    top-level packages and modules."""
    folder.mkdir()
    for name in IMAGE_HAS:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in distribution.files or ():
            top = Path(file).parts[0]
            if ".." not in Path(file).parts and top != "__pycache__":
                link = folder / top
                if not link.exists():
                    link.symlink_to(distribution.locate_file(top))
    return folder


def test_the_kit_holds_the_missing_pure_python_packages_and_lists_them(kit: Path) -> None:
    listed = (kit / MANIFEST).read_text().splitlines()
    names = {line.split()[0].lower() for line in listed if not line.startswith("left out")}
    assert {"optuna", "hydra-core", "omegaconf", "fvcore", "iopath", "alembic", "sqlalchemy",
            "antlr4-python3-runtime", "colorlog", "mako", "cityscapesscripts"} <= names  # fmt: skip
    assert not names & {"torch", "numpy", "pandas", "pyyaml", "typing", "wandb"}
    assert "left out: typing (an old backport that would shadow the standard library)" in listed
    for package in ("optuna", "hydra", "omegaconf", "fvcore", "sqlalchemy", "antlr4"):
        assert (kit / package / "__init__.py").is_file()
    assert not list(kit.rglob("*.so")) and not list(kit.rglob("*.pyc"))
    assert not (kit / "typing.py").exists()


def test_the_kit_with_the_image_runs_the_projects_config_and_storage(
    kit: Path, tmp_path: Path
) -> None:
    image = the_image(tmp_path / "image")
    code = (
        "import optuna, hydra\n"
        "from experiments.config import compose_config\n"
        "from experiments.study.settings import SearchSettings\n"
        "config = compose_config('search', ['+study=demo', 'tracking=none'])\n"
        "settings = SearchSettings.from_config(config)\n"
        f"optuna.create_study(storage='sqlite:///{tmp_path}/kit.db', study_name='kit')\n"
        "print(optuna.__file__, hydra.__file__, settings.study.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (kit, image, REPO)))}
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    optuna_file, hydra_file, name = result.stdout.split()
    assert Path(optuna_file).is_relative_to(kit) and Path(hydra_file).is_relative_to(kit)
    assert name == "demo"


def test_a_folder_that_is_no_kit_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is no kit"):
        build_kit(plan_kit(project_requirements()), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
