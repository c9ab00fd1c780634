"""The network a training checkpoint holds: what evaluating or exporting one needs.

`experiments.training.Trainer` writes the checkpoint; it records the architecture's genes
(`spec`) and the number of classes beside the weights, so that the network is rebuilt from the
file alone, with nothing of the run's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search_space.model import SegmentationNet, build
from search_space.spec import ArchSpec


@dataclass(frozen=True)
class Checkpoint:
    model: SegmentationNet
    dataset: dict[str, Any] | None  # the config of the data it was trained on, when recorded
    step: int


def load_checkpoint(path: Path) -> Checkpoint:
    """The network of a checkpoint written by `experiments.train` or a study's trial."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("spec") is None:
        raise ValueError(f"{path}: not a checkpoint written by experiments.train (no 'spec')")
    model = build(ArchSpec.from_dict(state["spec"]), int(state["num_classes"]))
    model.load_state_dict(state["model"])
    return Checkpoint(model, state.get("dataset"), int(state["step"]))
