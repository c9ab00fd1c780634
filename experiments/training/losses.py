"""The training loss: cross entropy with ignore, optional OHEM, and the heads' auxiliaries.

Every model returns a `TrainOutput` in train mode; auxiliary logits arrive at their own
resolution and are resized to the label here, so any head's auxiliaries train the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from search_space.layers import resize_to
from search_space.outputs import TrainOutput


@dataclass(frozen=True)
class LossConfig:
    """`trainer.loss` (`conf/trainer/base.yaml`)."""

    ignore_index: int
    ohem: bool
    # OHEM keeps the pixels whose true-class probability is below `ohem_threshold`, and at
    # least `ohem_min_kept` of the hardest pixels per batch (the BiSeNet/ICNet recipe).
    ohem_threshold: float
    ohem_min_kept: int


class SegmentationLoss:
    def __init__(self, config: LossConfig) -> None:
        self.config = config

    def __call__(self, output: TrainOutput, label: Tensor) -> Tensor:
        loss = self.pixel_loss(output.logits, label)
        for aux in output.aux:
            loss = loss + aux.weight * self.pixel_loss(
                resize_to(aux.logits, label.shape[-2:]), label
            )
        return loss

    def pixel_loss(self, logits: Tensor, label: Tensor) -> Tensor:
        ignore = self.config.ignore_index
        if not self.config.ohem:
            # A sum over the valid count, not "mean": an all-ignore batch gives 0, not NaN.
            total = F.cross_entropy(logits.float(), label, ignore_index=ignore, reduction="sum")
            return total / (label != ignore).sum().clamp(min=1)
        losses = F.cross_entropy(logits.float(), label, ignore_index=ignore, reduction="none")
        losses = losses[label != ignore]
        if losses.numel() == 0:
            return logits.sum() * 0.0  # keeps the graph; an all-ignore crop teaches nothing
        # A pixel's loss is -log p(true class): p < threshold <=> loss > -log(threshold).
        hard = losses > -torch.log(torch.tensor(self.config.ohem_threshold))
        min_kept = min(self.config.ohem_min_kept, losses.numel())
        if int(hard.sum()) < min_kept:
            return losses.topk(min_kept).values.mean()
        return losses[hard].mean()
