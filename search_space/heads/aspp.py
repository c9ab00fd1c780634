"""DeepLabV3's atrous spatial pyramid pooling (ASPP), as a head on the last tower's top output.

Parallel branches on the deepest map: a 1x1 conv, one dilated 3x3 conv per rate in
`aspp_rates`, and image pooling; concatenated, projected by a 1x1 conv and classified where the
map is (the model resizes the logits to the input). As in the DeepLabV3 paper, the projection
goes straight to the classifier (torchvision's DeepLabHead adds a 3x3 conv there).
`aspp_separable` makes the dilated convs depthwise-separable, DeepLabV3+'s choice on Xception.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from search_space.backbone import MultiTowerBackbone
from search_space.layers import ConvBNReLU, GlobalPooling, SeparableConv
from search_space.outputs import HeadOutput
from search_space.spec import ArchSpec


class ASPPHead(nn.Module):
    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        in_channels, channels = spec.widths[2], spec.aspp_channels
        dilated = [
            SeparableConv(in_channels, channels, dilation=rate)
            if spec.aspp_separable
            else ConvBNReLU(in_channels, channels, 3, dilation=rate)
            for rate in spec.aspp_rates
        ]
        self.branches = nn.ModuleList([ConvBNReLU(in_channels, channels, 1), *dilated])
        self.pooling = GlobalPooling(in_channels, channels)
        self.project = ConvBNReLU(channels * (len(self.branches) + 1), channels, 1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, image: Tensor, backbone: MultiTowerBackbone) -> HeadOutput:
        top = backbone(image)[-1].top
        pooled = self.pooling(top).expand(-1, -1, *top.shape[-2:])
        features = torch.cat([branch(top) for branch in self.branches] + [pooled], dim=1)
        return HeadOutput(self.classifier(self.project(features)))
