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
        # A pixel's loss is -log p(true class): p < threshold <=> loss > -log(threshold), the
        # bound taken in fp32 as the losses are, so that the comparison is the same either way.
        self.hard_above = float(-torch.log(torch.tensor(config.ohem_threshold)))

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
        return self.ohem_loss(logits, label)

    def ohem_loss(self, logits: Tensor, label: Tensor) -> Tensor:
        """The mean loss of the hard pixels if there are at least `ohem_min_kept` of them (or
        of the valid pixels, if fewer), else of the `ohem_min_kept` hardest.

        Every tensor has a size fixed by the batch's shape and nothing is read on the host, so
        a CUDA graph can capture it: both means are computed and the count picks one on the
        device. The `ohem_min_kept` hardest come from a top-k over every pixel, the ignored
        ones below any real loss (-1), so that it keeps every valid pixel when there are
        fewer; it costs that top-k on every step, where selecting by value ran it only when
        too few pixels were hard. The value is the selection's, up to the order of the sums.
        """
        valid = label != self.config.ignore_index
        losses = F.cross_entropy(
            logits.float(), label, ignore_index=self.config.ignore_index, reduction="none"
        )
        hard = valid & (losses > self.hard_above)
        hard_count = hard.sum()
        hard_mean = torch.where(hard, losses, 0.0).sum() / hard_count.clamp(min=1)
        min_kept = min(self.config.ohem_min_kept, losses.numel())
        hardest = torch.where(valid, losses, -1.0).flatten().topk(min_kept).values
        kept = valid.sum().clamp(max=min_kept)  # fewer valid pixels than min_kept: all of them
        hardest_mean = hardest.clamp(min=0).sum() / kept.clamp(min=1)
        # An all-ignore crop: both are 0, with a graph; it teaches nothing.
        return torch.where(hard_count < kept, hardest_mean, hard_mean)
