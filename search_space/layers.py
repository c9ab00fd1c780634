"""The building blocks of the modified Xception backbone (the paper's Table 1 and Fig. 3).

Each module's constructor arguments are genes or values derived from genes, so a reader can
map any part of a built network back to the `ArchSpec` that made it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def resize_to(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    """Bilinear resize to an exact size (never a fixed factor), a no-op when sizes agree.

    Fusing by exact size is what lets any input size run, multiples of 64 or not.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def batch_norm_of(block: nn.Sequential) -> nn.BatchNorm2d:
    """The one batch norm of a conv-BN(-ReLU) block: where its initial scale is set."""
    return next(layer for layer in block if isinstance(layer, nn.BatchNorm2d))


class ConvBNReLU(nn.Sequential):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
    ) -> None:
        padding = dilation * (kernel_size // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """3x3 depthwise (carrying the stride and dilation) then 1x1 pointwise, BN, optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                in_channels,
                3,
                stride=stride,
                padding=dilation,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class StridedConvStack(nn.Sequential):
    """`depth` stride-2 3x3 conv-BN-ReLUs on the image: a shallow path that keeps detail cheaply.

    Every layer but the last is half as wide, as in ICNet's high-resolution branch (32, 32, 64):
    the first layers run at the highest resolutions, where width costs the most.
    """

    def __init__(self, width: int, *, depth: int) -> None:
        widths = [max(1, width // 2)] * (depth - 1) + [width]
        inputs = [3, *widths[:-1]]
        super().__init__(
            *(ConvBNReLU(i, o, 3, stride=2) for i, o in zip(inputs, widths, strict=True))
        )


class GlobalPooling(nn.Module):
    """Image-level context: global average, then 1x1 conv-BN-ReLU. Returns an N x C x 1 x 1 map.

    The callers broadcast it: a 1x1 map upsampled to any size is that constant everywhere.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(F.adaptive_avg_pool2d(x, 1))


class XceptionBlock(nn.Module):
    """Three separable convs of widths C/e, C/e, C plus a shortcut.

    The stride sits on the first separable conv: the placement that reproduces the paper's MAdds
    (stride on the last costs ~20% more; RESULTS.md, "MAdds against the paper").
    """

    def __init__(self, in_channels: int, out_channels: int, *, expansion: int, stride: int) -> None:
        super().__init__()
        inner = out_channels // expansion
        self.residual = nn.Sequential(
            SeparableConv(in_channels, inner, stride=stride),
            SeparableConv(inner, inner),
            SeparableConv(inner, out_channels, relu=False),
        )
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvBNReLU(in_channels, out_channels, 1, stride=stride, relu=False)
        else:
            self.shortcut = nn.Identity()
        self.activation = nn.ReLU(inplace=True)
        # Zero-initialised last BN scale (Goyal et al., 2017): every block starts as its
        # shortcut, so a deep multi-tower network trains from scratch nearly as fast as a
        # shallow one. Without it, at the demo budget, the shallowest backbone beat DFANet A
        # (docs/search-space.md, "Initialisation"). Pre-trained weights overwrite it.
        nn.init.zeros_(batch_norm_of(self.residual[-1]).weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.residual(x) + self.shortcut(x))


class Stage(nn.Sequential):
    """A stack of blocks; the first halves the resolution and adapts the channel count."""

    def __init__(self, in_channels: int, out_channels: int, *, depth: int, expansion: int) -> None:
        blocks = [
            XceptionBlock(
                in_channels if index == 0 else out_channels,
                out_channels,
                expansion=expansion,
                stride=2 if index == 0 else 1,
            )
            for index in range(depth)
        ]
        super().__init__(*blocks)


class FCAttention(nn.Module):
    """Global pool -> FC to `hidden` (the ImageNet classifier width) -> 1x1 conv back -> scale.

    `gate="relu"`: BN + ReLU after the 1x1 conv, no sigmoid, the most common reading of the
    paper. Its BN normalises each channel over the batch of pooled vectors, so in training about
    half the samples see a channel gated to zero. `gate="sigmoid"`: the conv's bias and a
    sigmoid (squeeze-and-excitation style), which has no batch statistics in the gate.
    """

    def __init__(self, channels: int, hidden: int, gate: str = "relu") -> None:
        super().__init__()
        self.fc = nn.Linear(channels, hidden)
        self.project: nn.Module
        if gate == "relu":
            self.project = ConvBNReLU(hidden, channels, 1)
            # The gate starts at exactly 1 (BN scale 0, shift 1): an untrained attention passes
            # the features through instead of zeroing about half of them. From scratch this was
            # worth 2.5 mIoU to DFANet A at the demo budget (22.5 -> 25.0, one seed).
            nn.init.zeros_(batch_norm_of(self.project).weight)
            nn.init.ones_(batch_norm_of(self.project).bias)
        else:
            self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        weights = self.project(self.fc(pooled)[:, :, None, None])
        return x * weights
