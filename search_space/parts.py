"""An architecture as the parts its deployed network runs, with their input shapes.

A latency table (`search_space.latency_table`) times each part alone on the target device, and
the predictor (`search_space.latency.predict_latency`) adds up the parts of any `ArchSpec`. A
part is a block-level module of the network (an Xception block, a conv-BN-ReLU, FC attention,
a head's fusion module, ...) or one of the functional operations between them (a resize, a
concatenation, an addition, the deployed path's change of memory layout), at the exact shapes
it receives. Whatever runs inside a part (its adds, its pooling, its ReLUs) is timed with it.

The decomposition is computed from the genes, without building the network: tracing a network's
forward pass on the meta device takes ~0.25 s (DFANet A), too slow to enumerate a space's
parts, while this takes microseconds. It mirrors the builders (`model`, `backbone`, `heads`)
step by step; tests/test_parts.py runs every registered architecture and sampled ones with hooks
and checks that the network calls exactly these parts at these shapes, so the two cannot drift
apart unnoticed.

Shapes are (channels, height, width) per image; the batch is the table's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from search_space.backbone import tower_input_channels
from search_space.heads.bisenet import SPATIAL_PATH_DEPTH, AttentionRefinement, FeatureFusion
from search_space.heads.icnet import CascadeFeatureFusion
from search_space.layers import (
    ConvBNReLU,
    FCAttention,
    GlobalPooling,
    SeparableConv,
    XceptionBlock,
    resize_to,
)
from search_space.model import DEFAULT_NUM_CLASSES
from search_space.space import SearchSpace
from search_space.spec import HEAD_GENES, TOWER1_DEEPEST_STRIDE, ArchSpec

Shape = tuple[int, int, int]  # channels, height, width


class Resize(nn.Module):
    """`resize_to` as a module: the bilinear upsampling between blocks."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: Tensor) -> Tensor:
        return resize_to(x, self.size)


class Concat(nn.Module):
    """Channel concatenation; a 1x1 input is broadcast to the others' size (ASPP's pooling)."""

    def forward(self, *maps: Tensor) -> Tensor:
        size = maps[0].shape[-2:]
        return torch.cat([m.expand(-1, -1, *size) if m.shape[-2:] != size else m for m in maps], 1)


class Add(nn.Module):
    """Elementwise sum of two maps (the second may be 1x1, broadcast)."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + y


class ToChannelsLast(nn.Module):
    """The deployed path's first step: the NCHW image to channels-last (`deploy.DeployedModel`)."""

    def forward(self, image: Tensor) -> Tensor:
        return image.contiguous(memory_format=torch.channels_last)


class FusedOutput(nn.Module):
    """A cascade fusion unit returns (fused, guidance); in eval mode only `fused` exists."""

    def __init__(self, **arguments: Any) -> None:
        super().__init__()
        self.unit = CascadeFeatureFusion(**arguments)

    def forward(self, coarse: Tensor, fine: Tensor) -> Tensor:
        return self.unit(coarse, fine)[0]


# Each kind of part and the module that runs it; a part's arguments are this constructor's.
PART_MODULES: dict[str, Callable[..., nn.Module]] = {
    "conv_bn_relu": ConvBNReLU,
    "separable_conv": SeparableConv,
    "xception_block": XceptionBlock,
    "fc_attention": FCAttention,
    "global_pooling": GlobalPooling,
    "attention_refinement": AttentionRefinement,
    "feature_fusion": FeatureFusion,
    "cascade_fusion": FusedOutput,
    "conv": nn.Conv2d,
    "resize": Resize,
    "concat": Concat,
    "add": Add,
    "to_channels_last": ToChannelsLast,
}
# The part whose input arrives as the user's NCHW image rather than from another part.
NCHW_INPUT_KINDS = frozenset({"to_channels_last"})


@dataclass(frozen=True, order=True)
class Part:
    """One kind of module at one set of input shapes: a row of a latency table."""

    kind: str
    arguments: tuple[tuple[str, Any], ...]  # the module's constructor arguments, sorted by name
    inputs: tuple[Shape, ...]

    @property
    def key(self) -> str:
        """A readable, unique name: `xception_block(in_channels=240, ...) <- 240x32x64`."""
        arguments = ", ".join(f"{name}={_text(value)}" for name, value in self.arguments)
        shapes = " + ".join("x".join(map(str, shape)) for shape in self.inputs)
        return f"{self.kind}({arguments}) <- {shapes}"

    def module(self) -> nn.Module:
        return PART_MODULES[self.kind](**dict(self.arguments))

    def example_inputs(
        self, *, batch: int, dtype: torch.dtype, device: torch.device | str
    ) -> tuple[Tensor, ...]:
        """Random inputs in the layout the deployed network hands this part (channels-last)."""
        generator = torch.Generator().manual_seed(0)
        layout = torch.contiguous_format if self.kind in NCHW_INPUT_KINDS else torch.channels_last
        return tuple(
            torch.randn(batch, *shape, generator=generator)
            .to(device=device, dtype=dtype)
            .contiguous(memory_format=layout)
            for shape in self.inputs
        )


def part_from_key_fields(kind: str, arguments: dict[str, Any], inputs: Iterable[Any]) -> Part:
    """A part from its stored fields (JSON lists back to tuples)."""
    if kind not in PART_MODULES:
        raise ValueError(f"unknown part kind {kind!r}; the kinds are {sorted(PART_MODULES)}")
    return Part(
        kind,
        tuple(sorted((name, _frozen(value)) for name, value in arguments.items())),
        tuple(tuple(int(side) for side in shape) for shape in inputs),  # type: ignore[misc]
    )


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


class _Parts:
    """Collects the parts of one network as its forward pass would run them."""

    def __init__(self) -> None:
        self.counts: Counter[Part] = Counter()

    def add(self, kind: str, inputs: Iterable[Shape], times: int = 1, **arguments: Any) -> None:
        if times:
            self.counts[Part(kind, tuple(sorted(arguments.items())), tuple(inputs))] += times

    # Each helper below runs one part and returns its output shape.
    def conv_bn_relu(
        self,
        x: Shape,
        out: int,
        kernel: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
    ) -> Shape:
        self.add(
            "conv_bn_relu",
            [x],
            in_channels=x[0],
            out_channels=out,
            kernel_size=kernel,
            stride=stride,
            dilation=dilation,
            relu=relu,
        )
        return _strided(x, out, stride)

    def conv(self, x: Shape, out: int) -> Shape:
        self.add("conv", [x], in_channels=x[0], out_channels=out, kernel_size=1)
        return (out, x[1], x[2])

    def resize(self, x: Shape, size: tuple[int, int]) -> Shape:
        if (x[1], x[2]) == tuple(size):  # resize_to is a no-op then
            return x
        self.add("resize", [x], size=tuple(size))
        return (x[0], *size)

    def concat(self, maps: list[Shape]) -> Shape:
        if len(maps) == 1:
            return maps[0]
        self.add("concat", maps)
        return (sum(m[0] for m in maps), maps[0][1], maps[0][2])

    def add_maps(self, x: Shape, y: Shape) -> Shape:
        self.add("add", [x, y])
        return x

    def sum_at(self, size: tuple[int, int], maps: list[Shape]) -> Shape:
        """dfa._sum_at: each map resized to `size`, then added one by one."""
        total = self.resize(maps[0], size)
        for item in maps[1:]:
            total = self.add_maps(total, self.resize(item, size))
        return total


def _strided(x: Shape, out: int, stride: int) -> Shape:
    # A 3x3 conv with padding 1, or a 1x1 conv without padding, at stride s: ceil(side / s).
    return (out, -(-x[1] // stride), -(-x[2] // stride))


class _TowerShapes(NamedTuple):
    enc2: Shape
    enc3: Shape
    enc4: Shape
    top: Shape


def network_parts(spec: ArchSpec, num_classes: int = DEFAULT_NUM_CLASSES) -> Counter[Part]:
    """The parts the deployed network of `spec` runs on one image, with how often each runs."""
    parts = _Parts()
    height, width = spec.input_size
    image: Shape = (3, height, width)
    parts.add("to_channels_last", [image])
    logits = _HEAD_PARTS[spec.head](parts, spec, image, num_classes)
    parts.resize(logits, (height, width))
    return parts.counts


def _backbone(parts: _Parts, spec: ArchSpec, image: Shape) -> list[_TowerShapes]:
    features = [_tower(parts, spec, 0, image)]
    _, link3, link4 = spec.substage_links
    for index in range(1, spec.towers):
        previous = features[-1]
        inputs = []
        if spec.subnetwork_link:
            inputs.append(parts.resize(previous.top, previous.enc2[1:]))
        if spec.substage_links[0]:
            inputs.append(previous.enc2)
        features.append(
            _tower(
                parts,
                spec,
                index,
                parts.concat(inputs),
                link3=previous.enc3 if link3 else None,
                link4=previous.enc4 if link4 else None,
            )
        )
    return features


def _tower(
    parts: _Parts,
    spec: ArchSpec,
    index: int,
    x: Shape,
    *,
    link3: Shape | None = None,
    link4: Shape | None = None,
) -> _TowerShapes:
    if index == 0:
        x = parts.conv_bn_relu(x, spec.stem_channels, 3, stride=2)
    expected = tower_input_channels(spec, index)
    enc2 = _stage(parts, spec, x, spec.widths[0], spec.depths[0], expected[0])
    enc3_input = parts.concat([enc2, link3] if link3 else [enc2])
    enc3 = _stage(parts, spec, enc3_input, spec.widths[1], spec.depths[1], expected[1])
    enc4_input = parts.concat([enc3, link4] if link4 else [enc3])
    enc4 = _stage(parts, spec, enc4_input, spec.widths[2], spec.depths[2], expected[2])
    top = enc4
    if spec.fc_attention:
        parts.add(
            "fc_attention",
            [enc4],
            channels=enc4[0],
            hidden=spec.fc_hidden,
            gate=spec.fc_attention_gate,
        )
    return _TowerShapes(enc2, enc3, enc4, top)


def _stage(
    parts: _Parts, spec: ArchSpec, x: Shape, width: int, depth: int, expected_input: int
) -> Shape:
    # The builder sizes the stage from tower_input_channels; the shapes must agree with it.
    assert x[0] == expected_input, f"stage input {x[0]} != built {expected_input}"
    first = _strided(x, width, 2)
    block = {"out_channels": width, "expansion": spec.expansion}
    parts.add("xception_block", [x], in_channels=x[0], **block, stride=2)
    parts.add("xception_block", [first], depth - 1, in_channels=width, **block, stride=1)
    return first


def _dfa(parts: _Parts, spec: ArchSpec, image: Shape, num_classes: int) -> Shape:
    features = _backbone(parts, spec, image)
    if not (spec.decoder_high_level or spec.decoder_low_level):
        return parts.conv(features[-1].top, num_classes)
    size = features[0].enc2[1:]
    channels = spec.decoder_channels
    high_sources = features if spec.decoder_high_level else features[-1:]
    x = parts.sum_at(size, [parts.conv_bn_relu(f.top, channels, 1) for f in high_sources])
    if spec.decoder_low_level:
        low = parts.sum_at(size, [parts.conv_bn_relu(f.enc2, channels, 1) for f in features])
        x = parts.add_maps(x, parts.conv_bn_relu(low, channels, spec.decoder_fuse_kernel))
    return parts.conv(x, num_classes)


def _aspp(parts: _Parts, spec: ArchSpec, image: Shape, num_classes: int) -> Shape:
    top = _backbone(parts, spec, image)[-1].top
    channels = spec.aspp_channels
    pooled: Shape = (channels, 1, 1)
    parts.add("global_pooling", [top], in_channels=top[0], out_channels=channels)
    branches = [parts.conv_bn_relu(top, channels, 1)]
    for rate in spec.aspp_rates:
        if spec.aspp_separable:
            parts.add(
                "separable_conv",
                [top],
                in_channels=top[0],
                out_channels=channels,
                stride=1,
                dilation=rate,
                relu=True,
            )
            branches.append((channels, top[1], top[2]))
        else:
            branches.append(parts.conv_bn_relu(top, channels, 3, dilation=rate))
    features = parts.concat([*branches, pooled])
    return parts.conv(parts.conv_bn_relu(features, channels, 1), num_classes)


def _icnet(parts: _Parts, spec: ArchSpec, image: Shape, num_classes: int) -> Shape:
    coarsest, *finer = spec.icnet_scales
    x = _backbone(parts, spec, _downscaled(parts, image, coarsest))[-1].top
    depth, branch_width = spec.icnet_branch_depth, spec.icnet_branch_channels
    coarse_stride = coarsest * TOWER1_DEEPEST_STRIDE
    for scale in finer:
        fine = _strided_stack(parts, _downscaled(parts, image, scale), branch_width, depth)
        fine_stride = scale * 2**depth
        parts.add(
            "cascade_fusion",
            [x, fine],
            coarse_channels=x[0],
            fine_channels=fine[0],
            out_channels=spec.icnet_channels,
            dilation=max(1, round(coarse_stride / fine_stride)),
            num_classes=num_classes,
        )
        x, coarse_stride = (spec.icnet_channels, fine[1], fine[2]), fine_stride
    return parts.conv(x, num_classes)


def _downscaled(parts: _Parts, image: Shape, scale: int) -> Shape:
    return parts.resize(image, (-(-image[1] // scale), -(-image[2] // scale)))


def _strided_stack(parts: _Parts, x: Shape, width: int, depth: int) -> Shape:
    """layers.StridedConvStack: every layer but the last half as wide."""
    for layer_width in [max(1, width // 2)] * (depth - 1) + [width]:
        x = parts.conv_bn_relu(x, layer_width, 3, stride=2)
    return x


def _bisenet(parts: _Parts, spec: ArchSpec, image: Shape, num_classes: int) -> Shape:
    features = _backbone(parts, spec, image)
    channels = spec.bisenet_channels
    deepest_map = features[-1].top
    finer_map = features[-2].top if len(features) > 1 else features[-1].enc3

    def refined(x: Shape) -> Shape:
        parts.add("attention_refinement", [x], in_channels=x[0], out_channels=channels)
        return (channels, x[1], x[2])

    parts.add("global_pooling", [deepest_map], in_channels=deepest_map[0], out_channels=channels)
    deepest = parts.add_maps(refined(deepest_map), (channels, 1, 1))
    finer = parts.add_maps(refined(finer_map), parts.resize(deepest, finer_map[1:]))
    spatial = _strided_stack(parts, image, spec.bisenet_spatial_channels, SPATIAL_PATH_DEPTH)
    context = parts.resize(finer, spatial[1:])
    parts.add(
        "feature_fusion",
        [spatial, context],
        in_channels=spatial[0] + context[0],
        out_channels=channels,
    )
    return parts.conv((channels, spatial[1], spatial[2]), num_classes)


_HEAD_PARTS: dict[str, Callable[[_Parts, ArchSpec, Shape, int], Shape]] = {
    "dfa": _dfa,
    "aspp": _aspp,
    "icnet": _icnet,
    "bisenet": _bisenet,
}


# Genes that change the backbone's parts but not the shapes of the features a head receives,
# and genes that change only a head's parts. ICNet's scales change both: its backbone runs on
# the 1/icnet_scales[0] image, so they are in neither list.
BACKBONE_ONLY_GENES = (
    "depths",
    "expansion",
    "stem_channels",
    "fc_attention",
    "fc_hidden",
    "fc_attention_gate",
    "subnetwork_link",
    "substage_links",
)
HEAD_ONLY_GENES = tuple(
    gene for genes in HEAD_GENES.values() for gene in genes if gene != "icnet_scales"
)


def space_parts(space: SearchSpace, num_classes: int = DEFAULT_NUM_CLASSES) -> list[Part]:
    """Every part that any member of `space` (its input size pinned) runs, once each.

    The heads space has ~10^8 members (556,956 with the depths held); two walks of 36,936 and
    6,318 members give the same parts. The
    first holds the head-only genes (every backbone, under every head and ICNet scale); the
    second the backbone-only genes (every head on every width, tower count and input size).
    A network's parts are its backbone's and its head's, so the union is exact. Both hold a
    stage's depth at its largest value: depth only repeats a stage's second block (a depth of
    1 would hide that block).
    """
    found: set[Part] = set()
    for held in ((*HEAD_ONLY_GENES, "depths"), BACKBONE_ONLY_GENES):
        for params in space.assignments(held=held):
            found.update(network_parts(space.spec_from_params(params), num_classes))
    return sorted(found)


def part_calls(parts: Counter[Part]) -> int:
    """How many part calls one forward pass makes (a repeated block counts each time)."""
    return sum(parts.values())
