"""A BiSeNet-style two-path head (Yu et al., ECCV 2018) on the modified Xception.

Spatial path: three stride-2 conv-BN-ReLUs on the image, to 1/8, `bisenet_spatial_channels`
wide, its first two layers half as wide (BiSeNet's 64-64-64 costs 3.5 G MAdds at 1024x1024,
twice our whole backbone). Context path: our backbone. Attention refinement modules (ARMs)
refine its two deepest octaves: the last tower's top output and the map one octave finer,
which is the previous tower's top with several towers (1/16 and 1/32 for two towers, as in
BiSeNet) and enc3 (1/8) with one tower (enc4 and the top share 1/16, so enc3 is the next octave
up). A global-pool branch is added to the deepest refined map, which is then upsampled and
added to the finer one. A feature fusion module (FFM) merges the two paths at 1/8, and the
result is classified there. In training both refined context maps are also classified
(BiSeNet's auxiliary losses, weight 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search_space.backbone import MultiTowerBackbone
from search_space.layers import ConvBNReLU, GlobalPooling, StridedConvStack, resize_to
from search_space.outputs import AuxOutput, HeadOutput
from search_space.spec import ArchSpec

SPATIAL_PATH_DEPTH = 3  # to 1/8
AUX_WEIGHT = 1.0


class AttentionRefinement(nn.Module):
    """ARM: channel weights from the global average (1x1 conv, BN, sigmoid) rescale the map.

    A 1x1 conv-BN-ReLU first brings the map to the context width, so that refined maps of
    different depths can be summed.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.align = ConvBNReLU(in_channels, out_channels, 1)
        self.attention = ConvBNReLU(out_channels, out_channels, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.align(x)
        return x * torch.sigmoid(self.attention(F.adaptive_avg_pool2d(x, 1)))


class FeatureFusion(nn.Module):
    """FFM: concatenate the paths, 1x1 conv-BN-ReLU, then channel attention added back on."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fuse = ConvBNReLU(in_channels, out_channels, 1)
        hidden = max(1, out_channels // 4)
        self.attention = nn.Sequential(
            nn.Conv2d(out_channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        x = self.fuse(torch.cat((spatial, context), dim=1))
        return x + x * self.attention(F.adaptive_avg_pool2d(x, 1))


class BiSeNetHead(nn.Module):
    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        _, enc3_width, top_width = spec.widths
        finer_width = top_width if spec.towers > 1 else enc3_width
        spatial_width, channels = spec.bisenet_spatial_channels, spec.bisenet_channels
        self.spatial_path = StridedConvStack(spatial_width, depth=SPATIAL_PATH_DEPTH)
        self.global_context = GlobalPooling(top_width, channels)
        self.refine_deepest = AttentionRefinement(top_width, channels)
        self.refine_finer = AttentionRefinement(finer_width, channels)
        self.fusion = FeatureFusion(spatial_width + channels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.aux_deepest = nn.Conv2d(channels, num_classes, 1)
        self.aux_finer = nn.Conv2d(channels, num_classes, 1)

    def forward(self, image: Tensor, backbone: MultiTowerBackbone) -> HeadOutput:
        features = backbone(image)
        deepest_map = features[-1].top
        finer_map = features[-2].top if len(features) > 1 else features[-1].enc3
        deepest = self.refine_deepest(deepest_map) + self.global_context(deepest_map)
        finer = self.refine_finer(finer_map) + resize_to(deepest, finer_map.shape[-2:])
        spatial = self.spatial_path(image)
        fused = self.fusion(spatial, resize_to(finer, spatial.shape[-2:]))
        if not self.training:
            return HeadOutput(self.classifier(fused))
        aux = (
            AuxOutput(self.aux_deepest(deepest), AUX_WEIGHT),
            AuxOutput(self.aux_finer(finer), AUX_WEIGHT),
        )
        return HeadOutput(self.classifier(fused), aux)
