"""A small synthetic Cityscapes set shared by the tests that train (generated once a session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.data import ensure_synthetic_cityscapes

SMALL = {"n_train": 24, "n_val": 6, "height": 64, "width": 128, "seed": 0}
INPUT_SIZE = (64, 128)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_cityscapes(tmp_path_factory.mktemp("synthetic") / "set", **SMALL)
