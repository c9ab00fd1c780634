from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_space.model import build
from search_space.pretrained import load_backbone, save_backbone
from search_space.registry import get_arch


def test_backbone_loads_into_every_tower_and_reports_the_rest(tmp_path: Path) -> None:
    source = build(get_arch("backbone_a"))
    path = tmp_path / "backbone_a.pt"
    save_backbone(source, path)
    target = build(get_arch("dfanet_a"))
    report = load_backbone(target, path)

    expected = source.backbone.towers[0].state_dict()
    for index, tower in enumerate(target.backbone.towers):
        for key, value in tower.state_dict().items():
            name = f"towers.{index}.{key}"
            if name in report.loaded:
                assert torch.equal(value, expected[key]), name
    # Tower 1 is a copy; towers 2 and 3 keep their first blocks (wider inputs, no stem).
    assert all(f"towers.0.{key}" in report.loaded for key in expected)
    mismatched = {item.split(":")[0] for item in report.shape_mismatch}
    assert "towers.1.enc2.0.residual.0.0.weight" in mismatched
    assert "towers.2.enc4.0.shortcut.0.weight" in mismatched
    assert not any(name.startswith("towers.0.") for name in mismatched)
    assert "towers.1.enc2.1.residual.0.0.weight" in report.loaded
    assert not report.missing and not report.unused
    assert "kept initialised (shape differs)" in report.summary()


def test_whole_model_checkpoint_is_accepted(tmp_path: Path) -> None:
    source = build(get_arch("dfanet_b"))
    path = tmp_path / "model.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = build(get_arch("backbone_b"))
    report = load_backbone(target, path)
    assert not report.shape_mismatch and not report.missing
    assert torch.equal(
        target.backbone.towers[0].enc3[0].shortcut[0].weight,
        source.backbone.towers[0].enc3[0].shortcut[0].weight,
    )


def test_bad_checkpoints_name_the_file(tmp_path: Path) -> None:
    model = build(get_arch("backbone_b"))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_backbone(model, tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage.pt: not a readable torch checkpoint"):
        load_backbone(model, garbage)
