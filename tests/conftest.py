"""Shared test settings: no wandb processes, a fixed torch seed per test."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")


# Two cores shared with subprocess-run commands: two-thread kernels stall each other badly.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    torch.manual_seed(0)
