"""The genes of a DFANet-like architecture: a frozen dataclass that validates itself.

An `ArchSpec` is the single description of an architecture that every part of the project
passes around: the builder turns it into a module, the cost model counts it, a study stores it
in a trial, the analysis reads it back. Invalid combinations are rejected at construction with a
message that names the gene and what it expected, so nothing downstream has to re-check.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# The genes each head reads. A spec carries every head's genes (each always validated) and the
# builder reads only the chosen head's: inactive genes keep whatever value they have, so a space
# can switch heads without resetting genes, and `head_genes()` tells which ones count.
HEAD_GENES: dict[str, tuple[str, ...]] = {
    "dfa": ("decoder_channels", "decoder_high_level", "decoder_low_level", "decoder_fuse_kernel"),
    "aspp": ("aspp_channels", "aspp_rates", "aspp_separable"),
    "icnet": ("icnet_scales", "icnet_channels", "icnet_branch_channels", "icnet_branch_depth"),
    "bisenet": ("bisenet_spatial_channels", "bisenet_channels"),
}
HEADS = tuple(HEAD_GENES)
MAX_TOWERS = 4
NUM_STAGES = 3
# The stem and the three stages each halve the resolution: tower 1's deepest map is at 1/16.
TOWER1_DEEPEST_STRIDE = 16
MAX_INPUT_SIDE = 4096


# "relu": BN + ReLU after the 1x1 conv (the common reading of the paper); "sigmoid": the conv's
# bias and a sigmoid, squeeze-and-excitation style (no batch statistics inside the gate).
FC_ATTENTION_GATES = ("relu", "sigmoid")


class SpecError(ValueError):
    """An architecture description that is not valid; the message names the gene."""

    def __init__(self, gene: str, message: str) -> None:
        super().__init__(f"gene '{gene}': {message}")
        self.gene = gene


def deepest_stride(towers: int) -> int:
    """Output stride of the last tower's enc4: every extra tower starts one octave lower."""
    return TOWER1_DEEPEST_STRIDE * 2 ** (towers - 1)


@dataclass(frozen=True)
class ArchSpec:
    """The genes. Defaults are DFANet A at 1024x1024 (the paper's Table 1 and Table 5)."""

    widths: tuple[int, ...] = (48, 96, 192)
    depths: tuple[int, ...] = (4, 6, 4)
    expansion: int = 4
    stem_channels: int = 8
    towers: int = 3
    fc_attention: bool = True
    fc_hidden: int = 1000
    fc_attention_gate: str = "relu"
    subnetwork_link: bool = True
    substage_links: tuple[bool, ...] = (True, True, True)
    head: str = "dfa"
    decoder_channels: int = 32
    decoder_high_level: bool = True
    decoder_low_level: bool = True
    decoder_fuse_kernel: int = 3
    # Comparison heads (the paper's Fig. 1), sized for a 128-192-channel map at 1/16 rather
    # than ResNet-101's 2048 channels; see search_space/heads/ for what each gene does.
    aspp_channels: int = 128
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    aspp_separable: bool = False
    icnet_scales: tuple[int, ...] = (4, 2, 1)
    icnet_channels: int = 64
    icnet_branch_channels: int = 64
    icnet_branch_depth: int = 3
    bisenet_spatial_channels: int = 64
    bisenet_channels: int = 128
    input_size: tuple[int, ...] = field(default=(1024, 1024))

    LIST_GENES: ClassVar[tuple[str, ...]] = (
        "widths",
        "depths",
        "substage_links",
        "aspp_rates",
        "icnet_scales",
        "input_size",
    )

    def __post_init__(self) -> None:
        # Lists from YAML/JSON are accepted and stored as tuples so the spec stays hashable.
        for name in self.LIST_GENES:
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                object.__setattr__(self, name, tuple(value))
        self._validate()

    # ----------------------------------------------------------------------------- validation
    def _validate(self) -> None:
        self._validate_backbone()
        self._validate_head_genes()
        _int_list(self, "input_size", 2, low=1, high=MAX_INPUT_SIDE)
        stride = deepest_stride(self.towers)
        if min(self.input_size) < stride:
            raise SpecError(
                "input_size",
                f"{list(self.input_size)} is too small for {self.towers} tower(s): the last "
                f"tower's deepest map is at 1/{stride}, so each side must be at least {stride}",
            )
        if self.head == "icnet":
            self._validate_icnet_fit()

    def _validate_backbone(self) -> None:
        _int_list(self, "widths", NUM_STAGES, low=4, high=2048)
        _int_list(self, "depths", NUM_STAGES, low=1, high=32)
        _int(self, "expansion", low=1, high=16)
        for stage, width in enumerate(self.widths):
            if width % self.expansion:
                raise SpecError(
                    "widths",
                    f"enc{stage + 2} width {width} must be divisible by expansion "
                    f"{self.expansion} (a block's inner width is width / expansion)",
                )
        _int(self, "stem_channels", low=1, high=512)
        _int(self, "towers", low=1, high=MAX_TOWERS)
        _bool(self, "fc_attention")
        _int(self, "fc_hidden", low=1, high=8192)
        if self.fc_attention_gate not in FC_ATTENTION_GATES:
            raise SpecError(
                "fc_attention_gate",
                f"expected one of {list(FC_ATTENTION_GATES)}, got {self.fc_attention_gate!r}",
            )
        _bool(self, "subnetwork_link")
        _bool_list(self, "substage_links", NUM_STAGES)
        if self.towers > 1 and not (self.subnetwork_link or self.substage_links[0]):
            raise SpecError(
                "subnetwork_link",
                "with towers > 1, tower 2 needs an input: enable subnetwork_link or "
                "substage_links[0]",
            )

    def _validate_head_genes(self) -> None:
        if self.head not in HEADS:
            raise SpecError("head", f"expected one of {list(HEADS)}, got {self.head!r}")
        _int(self, "decoder_channels", low=1, high=1024)
        _bool(self, "decoder_high_level")
        _bool(self, "decoder_low_level")
        _int(self, "decoder_fuse_kernel", low=1, high=7)
        if self.decoder_fuse_kernel % 2 == 0:
            raise SpecError(
                "decoder_fuse_kernel",
                f"expected an odd kernel size (keeps the 1/4 map's size), "
                f"got {self.decoder_fuse_kernel}",
            )
        _int(self, "aspp_channels", low=1, high=1024)
        # One branch per rate; their order means nothing, so one canonical (increasing) order
        # keeps equal architectures equal specs.
        _int_list(self, "aspp_rates", range(1, 5), low=1, high=64)
        _strictly_ordered(self, "aspp_rates", descending=False, meaning="one branch per rate")
        _bool(self, "aspp_separable")
        _int_list(self, "icnet_scales", range(2, 5), low=1, high=16)
        _strictly_ordered(
            self, "icnet_scales", descending=True, meaning="downscale factors, coarsest first"
        )
        _int(self, "icnet_channels", low=1, high=1024)
        _int(self, "icnet_branch_channels", low=1, high=1024)
        _int(self, "icnet_branch_depth", low=1, high=5)
        _int(self, "bisenet_spatial_channels", low=1, high=1024)
        _int(self, "bisenet_channels", low=1, high=1024)

    def _validate_icnet_fit(self) -> None:
        coarsest = self.icnet_scales[0]
        if self.towers != 1:
            # The cascade is already the multi-resolution aggregation, and its backbone runs on
            # the 1/coarsest image: a second tower would end at 1/(32 * coarsest) of the input.
            raise SpecError(
                "towers",
                f"head 'icnet' takes one tower (its backbone runs on the 1/{coarsest} image), "
                f"got {self.towers}",
            )
        need = coarsest * TOWER1_DEEPEST_STRIDE
        if min(self.input_size) < need:
            raise SpecError(
                "input_size",
                f"{list(self.input_size)} is too small for head 'icnet': its backbone runs on "
                f"the 1/{coarsest} image (icnet_scales[0]) down to 1/{TOWER1_DEEPEST_STRIDE} of "
                f"that, so each side must be at least {need}",
            )

    # ------------------------------------------------------------------------------- helpers
    def replace(self, **genes: Any) -> ArchSpec:
        """A copy with some genes changed; unknown gene names are rejected by name."""
        unknown = sorted(set(genes) - set(gene_names()))
        if unknown:
            raise SpecError(unknown[0], f"unknown gene; the genes are {list(gene_names())}")
        return dataclasses.replace(self, **genes)

    def head_genes(self) -> dict[str, Any]:
        """The genes the chosen head reads, with their values (the others have no effect)."""
        genes = self.to_dict()
        return {name: genes[name] for name in HEAD_GENES[self.head]}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready genes (lists, not tuples)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, genes: Mapping[str, Any]) -> ArchSpec:
        return cls().replace(**dict(genes))


def gene_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(ArchSpec))


# ------------------------------------------------------------------------- per-gene validators
def _int(spec: ArchSpec, name: str, *, low: int, high: int) -> None:
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(name, f"expected an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise SpecError(name, f"expected an integer in [{low}, {high}], got {value}")


def _bool(spec: ArchSpec, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, bool):
        raise SpecError(name, f"expected true or false, got {value!r}")


def _sequence(spec: ArchSpec, name: str, length: int | range) -> tuple[Any, ...]:
    """`length`: the exact number of items, or the range of numbers allowed."""
    value = getattr(spec, name)
    lengths = range(length, length + 1) if isinstance(length, int) else length
    if not isinstance(value, tuple) or len(value) not in lengths:
        count = str(lengths.start) if len(lengths) == 1 else f"{lengths.start} to {lengths[-1]}"
        raise SpecError(name, f"expected a list of {count} values, got {value!r}")
    return value


def _int_list(spec: ArchSpec, name: str, length: int | range, *, low: int, high: int) -> None:
    for index, item in enumerate(_sequence(spec, name, length)):
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise SpecError(
                name, f"item {index} must be an integer in [{low}, {high}], got {item!r}"
            )


def _bool_list(spec: ArchSpec, name: str, length: int) -> None:
    for index, item in enumerate(_sequence(spec, name, length)):
        if not isinstance(item, bool):
            raise SpecError(name, f"item {index} must be true or false, got {item!r}")


def _strictly_ordered(spec: ArchSpec, name: str, *, descending: bool, meaning: str) -> None:
    value = getattr(spec, name)
    if not all(a > b if descending else a < b for a, b in itertools.pairwise(value)):
        order = "decreasing" if descending else "increasing"
        raise SpecError(name, f"expected strictly {order} values ({meaning}), got {list(value)}")
