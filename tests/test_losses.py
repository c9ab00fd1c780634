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


def selected_by_value(
    config: LossConfig, logits: torch.Tensor, label: torch.Tensor
) -> torch.Tensor:
    """OHEM as it was defined before its fixed-size form: the hard pixels picked by value (a
    data-dependent size, read on the host), or the `ohem_min_kept` hardest if too few are hard."""
    losses = F.cross_entropy(logits, label, ignore_index=config.ignore_index, reduction="none")
    losses = losses[label != config.ignore_index]
    if losses.numel() == 0:
        return logits.sum() * 0.0
    hard = losses > -torch.log(torch.tensor(config.ohem_threshold))
    min_kept = min(config.ohem_min_kept, losses.numel())
    if int(hard.sum()) < min_kept:
        return losses.topk(min_kept).values.mean()
    return losses[hard].mean()


@pytest.mark.parametrize(
    ("threshold", "min_kept", "ignored"),
    [
        (0.7, 10, 0.25),  # more hard pixels than min_kept: their mean
        (0.7, 180, 0.25),  # fewer hard (168 of 187) than min_kept: the min_kept hardest
        (1e-6, 10, 0.25),  # nothing hard
        (0.7, 1000, 0.25),  # fewer valid pixels than min_kept: all of them
        (0.7, 10, 0.0),  # nothing ignored
        (0.7, 10, 1.0),  # everything ignored
    ],
)
def test_ohem_keeps_what_selecting_by_value_keeps(
    threshold: float, min_kept: int, ignored: float
) -> None:
    """The fixed-size OHEM gives the loss and the gradients of the selection by value; they
    differ only in the order of their sums (fp32 rounding)."""
    generator = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(2, 5, 8, 16, generator=generator)).requires_grad_()
    label = torch.randint(0, 5, (2, 8, 16), generator=generator)
    label[torch.rand(label.shape, generator=generator) < ignored] = 255
    config = loss_config(ohem=True, ohem_threshold=threshold, ohem_min_kept=min_kept)
    expected = selected_by_value(config, logits, label)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    loss = SegmentationLoss(config).pixel_loss(logits, label)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-8)
