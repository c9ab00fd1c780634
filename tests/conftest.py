"""Shared test settings and fixtures: no wandb processes, one torch thread, a fixed torch seed
per test, and the small synthetic Cityscapes set generated once a session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from experiments.data import ensure_synthetic_cityscapes
from tests.support import SMALL, run_command, tiny_search_arguments

os.environ.setdefault("WANDB_MODE", "disabled")

# Two cores shared with subprocess-run commands: two-thread kernels stall each other badly.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_cityscapes(tmp_path_factory.mktemp("synthetic") / "set", **SMALL)


@pytest.fixture(scope="session")
def tiny_search(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished three-trial demo study `tiny` (storage `<folder>/studies.db`, artefacts and
    report under `<folder>/outputs`), run once a session by the real command: what the export
    and retrain tests take trials from. Tests that add to it copy the database first."""
    folder = tmp_path_factory.mktemp("tiny-search")
    # Checkpoints kept, as a scheduled study keeps them: an export reads a trial's weights.
    arguments = tiny_search_arguments(synthetic_root, folder, "study.keep_checkpoints=true")
    result = run_command("experiments.search", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder
