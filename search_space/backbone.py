"""Towers of the modified Xception and the aggregation between them (the paper's Fig. 3).

Tower 1 runs the stem and three stages on the image. Tower t+1 has no stem: its enc2 input is
tower t's top (FC-attention) output upsampled to tower t's enc2 size (the sub-network link)
and/or tower t's enc2 output; its enc3 and enc4 inputs also take tower t's enc3 and enc4 outputs
(the sub-stage links). Each tower has its own weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from search_space.layers import ConvBNReLU, FCAttention, Stage, resize_to
from search_space.spec import ArchSpec


class TowerFeatures(NamedTuple):
    enc2: Tensor
    enc3: Tensor
    enc4: Tensor
    top: Tensor  # enc4 after FC attention (enc4 itself when attention is off)


class Tower(nn.Module):
    def __init__(
        self, in_channels: tuple[int, int, int], spec: ArchSpec, *, with_stem: bool
    ) -> None:
        super().__init__()
        self.stem = ConvBNReLU(3, spec.stem_channels, 3, stride=2) if with_stem else None
        self.enc2, self.enc3, self.enc4 = (
            Stage(in_ch, width, depth=depth, expansion=spec.expansion)
            for in_ch, width, depth in zip(in_channels, spec.widths, spec.depths, strict=True)
        )
        self.attention = (
            FCAttention(spec.widths[2], spec.fc_hidden, spec.fc_attention_gate)
            if spec.fc_attention
            else None
        )

    def forward(
        self, x: Tensor, link3: Tensor | None = None, link4: Tensor | None = None
    ) -> TowerFeatures:
        """`link3`/`link4`: the previous tower's enc3/enc4, joined to this enc3/enc4 input."""
        if self.stem is not None:
            x = self.stem(x)
        enc2 = self.enc2(x)
        enc3 = self.enc3(_join(enc2, link3))
        enc4 = self.enc4(_join(enc3, link4))
        top = self.attention(enc4) if self.attention is not None else enc4
        return TowerFeatures(enc2, enc3, enc4, top)


def _join(own: Tensor, linked: Tensor | None) -> Tensor:
    return own if linked is None else torch.cat((own, linked), dim=1)


class MultiTowerBackbone(nn.Module):
    """The stack of towers; returns every tower's features for the head to aggregate."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.subnetwork_link = spec.subnetwork_link
        self.substage_links = spec.substage_links
        towers = [Tower(tower_input_channels(spec, 0), spec, with_stem=True)]
        towers += [
            Tower(tower_input_channels(spec, index), spec, with_stem=False)
            for index in range(1, spec.towers)
        ]
        self.towers = nn.ModuleList(towers)

    def forward(self, image: Tensor) -> list[TowerFeatures]:
        features = [self.towers[0](image)]
        for tower in self.towers[1:]:
            previous = features[-1]
            _, link3, link4 = self.substage_links
            features.append(
                tower(
                    self._tower_input(previous),
                    previous.enc3 if link3 else None,
                    previous.enc4 if link4 else None,
                )
            )
        return features

    def _tower_input(self, previous: TowerFeatures) -> Tensor:
        parts = []
        if self.subnetwork_link:
            parts.append(resize_to(previous.top, previous.enc2.shape[-2:]))
        if self.substage_links[0]:
            parts.append(previous.enc2)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def tower_input_channels(spec: ArchSpec, index: int) -> tuple[int, int, int]:
    """Input channels of a tower's enc2, enc3 and enc4 (the concatenations of Fig. 3)."""
    c2, c3, c4 = spec.widths
    if index == 0:
        return spec.stem_channels, c2, c3
    link2, link3, link4 = spec.substage_links
    enc2_in = (c4 if spec.subnetwork_link else 0) + (c2 if link2 else 0)
    return enc2_in, c2 + (c3 if link3 else 0), c3 + (c4 if link4 else 0)
