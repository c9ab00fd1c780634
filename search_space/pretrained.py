"""Load a pre-trained backbone (one tower's weights) into every tower of a network.

DFANet's towers are copies of one ImageNet-pre-trained backbone. Towers 2+ have no stem and
wider first blocks (their inputs are concatenations), so those tensors cannot take the
checkpoint's weights: they are left as initialised and reported, never silently dropped.

A checkpoint is a state dict of one `Tower` (as `save_backbone` writes), or of a whole
`SegmentationNet` (tower 1 is used), optionally wrapped as {"state_dict": ...} or
{"model": ...}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from search_space.model import SegmentationNet

_TOWER1_PREFIX = "backbone.towers.0."


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)  # "towers.1.enc2.0...: (a) vs (b)"
    missing: list[str] = field(default_factory=list)  # tower tensors the checkpoint lacks
    unused: list[str] = field(default_factory=list)  # checkpoint tensors no tower has

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors into the towers"]
        for title, items in (
            ("kept initialised (shape differs)", self.shape_mismatch),
            ("kept initialised (not in checkpoint)", self.missing),
            ("unused checkpoint tensors", self.unused),
        ):
            if items:
                lines.append(f"{title}: {len(items)}")
                lines.extend(f"  {item}" for item in items)
        return "\n".join(lines)


def save_backbone(model: SegmentationNet, path: Path) -> None:
    """Write tower 1's weights: the file format `load_backbone` reads."""
    torch.save(model.backbone.towers[0].state_dict(), path)


def read_backbone_state(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such backbone checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from error
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    if any(key.startswith(_TOWER1_PREFIX) for key in state):
        state = {
            key.removeprefix(_TOWER1_PREFIX): value
            for key, value in state.items()
            if key.startswith(_TOWER1_PREFIX)
        }
    return state


def load_backbone(model: SegmentationNet, path: Path) -> LoadReport:
    """Copy the checkpoint into every tower where shapes agree; report everything else."""
    checkpoint = read_backbone_state(path)
    report = LoadReport()
    used: set[str] = set()
    for index, tower in enumerate(model.backbone.towers):
        state = tower.state_dict()
        for key, target in state.items():
            name = f"towers.{index}.{key}"
            source = checkpoint.get(key)
            if source is None:
                report.missing.append(name)
            elif source.shape != target.shape:
                report.shape_mismatch.append(
                    f"{name}: checkpoint {tuple(source.shape)} vs tower {tuple(target.shape)}"
                )
            else:
                state[key] = source
                report.loaded.append(name)
                used.add(key)
        tower.load_state_dict(state)
    report.unused = sorted(set(checkpoint) - used)
    return report
