"""DFANet's dual-path decoder (the paper's Sec. 3.3 and Table 4).

High-level path: every tower's top output, reduced by a 1x1 conv and upsampled to 1/4 (with
`high_level` off, only the last tower's). Low-level path: every tower's enc2 output, reduced by a
1x1 conv, upsampled to 1/4, summed and fused by one conv. The two are summed and classified at
1/4. With both paths off there is no decoder: the last tower's top output is classified where
it is (the "without decoder" rows of Table 3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from search_space.backbone import MultiTowerBackbone, TowerFeatures
from search_space.layers import ConvBNReLU, resize_to
from search_space.outputs import HeadOutput
from search_space.spec import ArchSpec


class DFAHead(nn.Module):
    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        low_width, _, top_width = spec.widths
        channels = spec.decoder_channels
        self.has_decoder = spec.decoder_high_level or spec.decoder_low_level
        fused_towers = spec.towers if spec.decoder_high_level else 1
        self.high = nn.ModuleList(
            ConvBNReLU(top_width, channels, 1) for _ in range(fused_towers * self.has_decoder)
        )
        self.low = nn.ModuleList(
            ConvBNReLU(low_width, channels, 1) for _ in range(spec.towers * spec.decoder_low_level)
        )
        self.fuse = (
            ConvBNReLU(channels, channels, spec.decoder_fuse_kernel)
            if spec.decoder_low_level
            else None
        )
        self.classifier = nn.Conv2d(channels if self.has_decoder else top_width, num_classes, 1)

    def forward(self, image: Tensor, backbone: MultiTowerBackbone) -> HeadOutput:
        return HeadOutput(self.decode(backbone(image)))

    def decode(self, features: list[TowerFeatures]) -> Tensor:
        if not self.has_decoder:
            return self.classifier(features[-1].top)
        size = features[0].enc2.shape[-2:]
        # The high-level reducers pair with the last towers: all of them, or only the last.
        high_sources = features[len(features) - len(self.high) :]
        x = _sum_at(size, [r(f.top) for r, f in zip(self.high, high_sources, strict=True)])
        if self.fuse is not None:
            low = _sum_at(size, [r(f.enc2) for r, f in zip(self.low, features, strict=True)])
            x = x + self.fuse(low)
        return self.classifier(x)


def _sum_at(size: torch.Size, maps: list[Tensor]) -> Tensor:
    total = resize_to(maps[0], size)
    for item in maps[1:]:
        total = total + resize_to(item, size)
    return total
