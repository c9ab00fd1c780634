"""What a segmentation model returns: logits in eval mode, logits plus auxiliaries in training.

One interface for every head, so the trainer adds auxiliary losses without knowing which head
made them.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class AuxOutput(NamedTuple):
    """Logits at the resolution they were made at; the loss resizes them to the label."""

    logits: Tensor
    weight: float


class HeadOutput(NamedTuple):
    """A head's result before the model resizes the main logits to the input."""

    logits: Tensor
    aux: tuple[AuxOutput, ...] = ()


class TrainOutput(NamedTuple):
    """A model's result in train mode: logits at the input size, and the auxiliary outputs."""

    logits: Tensor
    aux: tuple[AuxOutput, ...]
