"""The genes of a DFANet-like architecture: a frozen dataclass that validates itself.

An `ArchSpec` is the single description of an architecture that every part of the project
passes around: the builder turns it into a module, the cost model counts it, a study stores it
in a trial, the analysis reads it back. Invalid combinations are rejected at construction with a
message that names the gene and what it expected, so nothing downstream has to re-check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

HEADS = ("dfa",)
MAX_TOWERS = 4
NUM_STAGES = 3
# The stem and the three stages each halve the resolution: tower 1's deepest map is at 1/16.
TOWER1_DEEPEST_STRIDE = 16
MAX_INPUT_SIDE = 4096


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
    subnetwork_link: bool = True
    substage_links: tuple[bool, ...] = (True, True, True)
    head: str = "dfa"
    decoder_channels: int = 32
    decoder_high_level: bool = True
    decoder_low_level: bool = True
    decoder_fuse_kernel: int = 3
    input_size: tuple[int, ...] = field(default=(1024, 1024))

    LIST_GENES: ClassVar[tuple[str, ...]] = ("widths", "depths", "substage_links", "input_size")

    def __post_init__(self) -> None:
        # Lists from YAML/JSON are accepted and stored as tuples so the spec stays hashable.
        for name in self.LIST_GENES:
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                object.__setattr__(self, name, tuple(value))
        self._validate()

    # ----------------------------------------------------------------------------- validation
    def _validate(self) -> None:
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
        _bool(self, "subnetwork_link")
        _bool_list(self, "substage_links", NUM_STAGES)
        if self.towers > 1 and not (self.subnetwork_link or self.substage_links[0]):
            raise SpecError(
                "subnetwork_link",
                "with towers > 1, tower 2 needs an input: enable subnetwork_link or "
                "substage_links[0]",
            )
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
        _int_list(self, "input_size", 2, low=1, high=MAX_INPUT_SIDE)
        stride = deepest_stride(self.towers)
        if min(self.input_size) < stride:
            raise SpecError(
                "input_size",
                f"{list(self.input_size)} is too small for {self.towers} tower(s): the last "
                f"tower's deepest map is at 1/{stride}, so each side must be at least {stride}",
            )

    # ------------------------------------------------------------------------------- helpers
    def replace(self, **genes: Any) -> ArchSpec:
        """A copy with some genes changed; unknown gene names are rejected by name."""
        unknown = sorted(set(genes) - set(gene_names()))
        if unknown:
            raise SpecError(unknown[0], f"unknown gene; the genes are {list(gene_names())}")
        return dataclasses.replace(self, **genes)

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


def _sequence(spec: ArchSpec, name: str, length: int) -> tuple[Any, ...]:
    value = getattr(spec, name)
    if not isinstance(value, tuple) or len(value) != length:
        raise SpecError(name, f"expected a list of {length} values, got {value!r}")
    return value


def _int_list(spec: ArchSpec, name: str, length: int, *, low: int, high: int) -> None:
    for index, item in enumerate(_sequence(spec, name, length)):
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise SpecError(
                name, f"item {index} must be an integer in [{low}, {high}], got {item!r}"
            )


def _bool_list(spec: ArchSpec, name: str, length: int) -> None:
    for index, item in enumerate(_sequence(spec, name, length)):
        if not isinstance(item, bool):
            raise SpecError(name, f"item {index} must be true or false, got {item!r}")
