"""`build(spec, num_classes)`: an `ArchSpec` made into a segmentation network."""

from __future__ import annotations

from torch import Tensor, nn

from search_space.backbone import MultiTowerBackbone
from search_space.heads import build_head
from search_space.layers import resize_to
from search_space.outputs import TrainOutput
from search_space.spec import ArchSpec

DEFAULT_NUM_CLASSES = 19  # the Cityscapes train classes


class SegmentationNet(nn.Module):
    """Backbone + head. Eval mode returns logits at the input size; train mode a `TrainOutput`.

    The head receives the image and the backbone (not precomputed features) because some heads
    run the backbone on a resized image (ICNet's cascade) or beside a path of their own.
    """

    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.backbone = MultiTowerBackbone(spec)
        self.head = build_head(spec, num_classes)

    def forward(self, image: Tensor) -> Tensor | TrainOutput:
        result = self.head(image, self.backbone)
        logits = resize_to(result.logits, image.shape[-2:])
        if self.training:
            return TrainOutput(logits, result.aux)
        return logits


def build(spec: ArchSpec, num_classes: int = DEFAULT_NUM_CLASSES) -> SegmentationNet:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return SegmentationNet(spec, num_classes)
