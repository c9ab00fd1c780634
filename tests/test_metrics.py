from __future__ import annotations

import math

import pytest
import torch

from experiments.training.metrics import ConfusionMatrix


def test_miou_by_hand() -> None:
    # label:      0 0 1 1 255     prediction: 0 1 1 1 0
    label = torch.tensor([[0, 0, 1, 1, 255]])
    prediction = torch.tensor([[0, 1, 1, 1, 0]])
    matrix = ConfusionMatrix(num_classes=3)
    matrix.update(prediction, label)
    scores = matrix.result()
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 1 -> 2/3; class 2 absent -> NaN.
    assert scores.per_class_iou[0] == pytest.approx(0.5)
    assert scores.per_class_iou[1] == pytest.approx(2 / 3)
    assert math.isnan(scores.per_class_iou[2])
    assert scores.miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores.pixel_accuracy == pytest.approx(3 / 4)


def test_accumulates_over_batches_like_one_pass() -> None:
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (4, 16, 16), generator=generator)
    label[:, :2] = 255
    prediction = torch.randint(0, 5, (4, 16, 16), generator=generator)
    whole, parts = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(prediction, label)
    for index in range(4):
        parts.update(prediction[index], label[index])
    assert torch.equal(whole.matrix, parts.matrix)
    assert int(whole.matrix.sum()) == int((label != 255).sum())


def test_bad_inputs_are_named() -> None:
    matrix = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="differ"):
        matrix.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"label values must be in \[0, 3\)"):
        matrix.update(torch.zeros(2, dtype=torch.long), torch.tensor([0, 7]))
