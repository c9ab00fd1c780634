from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from experiments.training.losses import LossConfig, SegmentationLoss
from search_space.outputs import AuxOutput, TrainOutput
from tests.support import trainer_config


def loss_config(**overrides: Any) -> LossConfig:
    """The demo recipe's loss (`conf/trainer/base.yaml`) with `overrides`."""
    return replace(trainer_config().loss, **overrides)


def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 8, 8, generator=generator)
    label = torch.randint(0, 4, (2, 8, 8), generator=generator)
    label[:, 0] = 255
    return logits, label


def test_plain_cross_entropy_ignores_255() -> None:
    logits, label = make_batch()
    loss = SegmentationLoss(loss_config())(TrainOutput(logits, ()), label)
    assert loss == pytest.approx(float(F.cross_entropy(logits, label, ignore_index=255)))


def test_aux_outputs_are_resized_and_weighted() -> None:
    logits, label = make_batch()
    aux_logits = torch.randn(2, 4, 4, 4)
    loss_fn = SegmentationLoss(loss_config())
    total = loss_fn(TrainOutput(logits, (AuxOutput(aux_logits, 0.4),)), label)
    upsampled = F.interpolate(aux_logits, size=(8, 8), mode="bilinear", align_corners=False)
    expected = F.cross_entropy(logits, label, ignore_index=255) + 0.4 * F.cross_entropy(
        upsampled, label, ignore_index=255
    )
    assert total == pytest.approx(float(expected))


def test_ohem_keeps_the_hardest_pixels() -> None:
    logits, label = make_batch()
    per_pixel = F.cross_entropy(logits, label, ignore_index=255, reduction="none")[label != 255]
    config = loss_config(ohem=True, ohem_threshold=1e-6, ohem_min_kept=10)  # nothing is "hard"
    loss = SegmentationLoss(config)(TrainOutput(logits, ()), label)
    assert loss == pytest.approx(float(per_pixel.topk(10).values.mean()))
    config = loss_config(ohem=True, ohem_threshold=0.7, ohem_min_kept=1)
    hard = per_pixel[per_pixel > -torch.log(torch.tensor(0.7))]
    loss = SegmentationLoss(config)(TrainOutput(logits, ()), label)
    assert loss == pytest.approx(float(hard.mean()))


def test_all_ignored_crop_gives_zero_with_a_graph() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    label = torch.full((1, 4, 4), 255)
    for ohem in (False, True):
        loss = SegmentationLoss(loss_config(ohem=ohem))(TrainOutput(logits, ()), label)
        loss.backward()
        assert float(loss.detach()) == 0.0
