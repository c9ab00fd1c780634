"""An ICNet-style image cascade (Zhao et al., ECCV 2018) on the modified Xception.

The image runs at the resolutions 1/s for s in `icnet_scales` (coarsest first). The coarsest
goes through the whole backbone; each finer one through a shallow stack of
`icnet_branch_depth` stride-2 convs. Cascade feature fusion (CFF) units merge them coarse to
fine, and the last fused map, at the finest branch's stride, is classified. In training each CFF
also classifies its upsampled coarse input: ICNet's cascade label guidance, down-weighted (0.4)
so the coarse branches guide the main output rather than compete with it.
"""

from __future__ import annotations

from torch import Tensor, nn

from search_space.backbone import MultiTowerBackbone
from search_space.layers import ConvBNReLU, StridedConvStack, resize_to
from search_space.outputs import AuxOutput, HeadOutput
from search_space.spec import TOWER1_DEEPEST_STRIDE, ArchSpec

AUX_WEIGHT = 0.4


class CascadeFeatureFusion(nn.Module):
    """Coarse map upsampled to the finer map's exact size, 3x3 dilated conv, BN; plus the finer
    map through a 1x1 conv and BN; summed, ReLU.

    The dilation is the upsampling factor (ICNet: x2, dilation 2), so the 3x3 taps land on the
    coarse map's own neighbours rather than on interpolated copies of one pixel.
    """

    def __init__(
        self,
        coarse_channels: int,
        fine_channels: int,
        out_channels: int,
        *,
        dilation: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.coarse = ConvBNReLU(coarse_channels, out_channels, 3, dilation=dilation, relu=False)
        self.fine = ConvBNReLU(fine_channels, out_channels, 1, relu=False)
        self.activation = nn.ReLU(inplace=True)
        self.aux_classifier = nn.Conv2d(coarse_channels, num_classes, 1)

    def forward(self, coarse: Tensor, fine: Tensor) -> tuple[Tensor, AuxOutput | None]:
        upsampled = resize_to(coarse, fine.shape[-2:])
        fused = self.activation(self.coarse(upsampled) + self.fine(fine))
        if not self.training:
            return fused, None
        return fused, AuxOutput(self.aux_classifier(upsampled), AUX_WEIGHT)


class ICNetHead(nn.Module):
    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        self.scales = spec.icnet_scales
        branch_width, depth = spec.icnet_branch_channels, spec.icnet_branch_depth
        self.branches = nn.ModuleList(
            StridedConvStack(branch_width, depth=depth) for _ in self.scales[1:]
        )
        # Validation allows one tower only: the backbone's map is at 1/16 of its own input.
        coarse_stride, coarse_channels = self.scales[0] * TOWER1_DEEPEST_STRIDE, spec.widths[2]
        fusions = []
        for scale in self.scales[1:]:
            fine_stride = scale * 2**depth
            fusions.append(
                CascadeFeatureFusion(
                    coarse_channels,
                    branch_width,
                    spec.icnet_channels,
                    dilation=max(1, round(coarse_stride / fine_stride)),
                    num_classes=num_classes,
                )
            )
            coarse_stride, coarse_channels = fine_stride, spec.icnet_channels
        self.fusions = nn.ModuleList(fusions)
        self.classifier = nn.Conv2d(spec.icnet_channels, num_classes, 1)

    def forward(self, image: Tensor, backbone: MultiTowerBackbone) -> HeadOutput:
        x = backbone(_downscale(image, self.scales[0]))[-1].top
        aux = []
        for scale, branch, fusion in zip(self.scales[1:], self.branches, self.fusions, strict=True):
            x, guidance = fusion(x, branch(_downscale(image, scale)))
            if guidance is not None:
                aux.append(guidance)
        return HeadOutput(self.classifier(x), tuple(aux))


def _downscale(image: Tensor, scale: int) -> Tensor:
    """The image at 1/scale, rounding up as a stride-2 conv does."""
    height, width = image.shape[-2:]
    return resize_to(image, (-(-height // scale), -(-width // scale)))
