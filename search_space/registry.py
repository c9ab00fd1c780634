"""Named reference architectures, each tied to the paper row it reproduces.

One registry, timm-style: a keyword-free builder per name returning an `ArchSpec`. Tests are
generated from it, so every architecture registered here is built, run and counted by the
suite without anyone having to remember to add it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from search_space.spec import ArchSpec


@dataclass(frozen=True)
class PaperRow:
    """A row of `data/published_results.csv` (DFANet, CVPR 2019) that an architecture matches."""

    table: str
    model: str
    input_size: tuple[int, int] = (1024, 1024)


@dataclass(frozen=True)
class ReferenceArch:
    name: str
    spec: ArchSpec
    description: str
    paper_rows: tuple[PaperRow, ...] = ()


_REGISTRY: dict[str, ReferenceArch] = {}


def register(
    name: str, description: str, *paper_rows: PaperRow
) -> Callable[[Callable[[], ArchSpec]], Callable[[], ArchSpec]]:
    def decorator(builder: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        _REGISTRY[name] = ReferenceArch(name, builder(), description, paper_rows)
        return builder

    return decorator


def arch_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def reference(name: str) -> ReferenceArch:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown architecture {name!r}; registered: {', '.join(_REGISTRY)}"
        ) from None


def get_arch(name: str) -> ArchSpec:
    return reference(name).spec


# --------------------------------------------------------------------- the paper's backbones
XCEPTION_A = ArchSpec(widths=(48, 96, 192), depths=(4, 6, 4))
XCEPTION_B = ArchSpec(widths=(32, 64, 128), depths=(4, 6, 4))
NO_DECODER = {"decoder_high_level": False, "decoder_low_level": False}
HIGH_LEVEL_ONLY = {"decoder_high_level": True, "decoder_low_level": False}


def _row(table: str, model: str, size: tuple[int, int] = (1024, 1024)) -> PaperRow:
    return PaperRow(table, model, size)


@register(
    "dfanet_a",
    "Backbone A x3 + HL + LL",
    _row("Table 4", "DFANet A"),
    _row("Table 5", "DFANet A'", (512, 1024)),
)
def dfanet_a() -> ArchSpec:
    return XCEPTION_A


@register("dfanet_b", "Backbone B x3 + HL + LL", _row("Table 4", "DFANet B"))
def dfanet_b() -> ArchSpec:
    return XCEPTION_B


@register(
    "xception_a",
    "Xception A: one tower, no FC attention, no decoder",
    _row("Table 2", "Xception A"),
)
def xception_a() -> ArchSpec:
    return XCEPTION_A.replace(towers=1, fc_attention=False, **NO_DECODER)


@register(
    "xception_b",
    "Xception B: one tower, no FC attention, no decoder",
    _row("Table 2", "Xception B"),
)
def xception_b() -> ArchSpec:
    return XCEPTION_B.replace(towers=1, fc_attention=False, **NO_DECODER)


@register(
    "xception_a_aspp",
    "Xception A + ASPP with the aspp_* genes' defaults (the paper's ASPP is not published)",
    _row("Table 2", "Xception A + ASPP"),
)
def xception_a_aspp() -> ArchSpec:
    return XCEPTION_A.replace(towers=1, fc_attention=False, head="aspp")


@register(
    "xception_b_aspp",
    "Xception B + ASPP with the aspp_* genes' defaults (the paper's ASPP is not published)",
    _row("Table 2", "Xception B + ASPP"),
)
def xception_b_aspp() -> ArchSpec:
    return XCEPTION_B.replace(towers=1, fc_attention=False, head="aspp")


@register("backbone_a", "Xception A + FC attention, no decoder", _row("Table 2", "Backbone A"))
def backbone_a() -> ArchSpec:
    return XCEPTION_A.replace(towers=1, **NO_DECODER)


@register("backbone_b", "Xception B + FC attention, no decoder", _row("Table 2", "Backbone B"))
def backbone_b() -> ArchSpec:
    return XCEPTION_B.replace(towers=1, **NO_DECODER)


# ------------------------------------------------------- Tables 3 and 4: towers and decoder
def _register_tower_rows(letter: str, base: ArchSpec) -> None:
    for towers in (2, 3, 4):
        register(
            f"backbone_{letter}_x{towers}",
            f"Backbone {letter.upper()} x{towers}, no decoder",
            _row("Table 3", f"Backbone {letter.upper()} x{towers}"),
        )(lambda towers=towers: base.replace(towers=towers, **NO_DECODER))


_register_tower_rows("a", XCEPTION_A)
_register_tower_rows("b", XCEPTION_B)


@register(
    "backbone_a_x2_hl",
    "Backbone A x2, high-level fusion only",
    _row("Table 4", "Backbone A x2 + HL"),
)
def backbone_a_x2_hl() -> ArchSpec:
    return XCEPTION_A.replace(towers=2, **HIGH_LEVEL_ONLY)


@register(
    "backbone_a_x2_hl_ll",
    "Backbone A x2, full dual-path decoder",
    _row("Table 4", "Backbone A x2 + HL + LL"),
)
def backbone_a_x2_hl_ll() -> ArchSpec:
    return XCEPTION_A.replace(towers=2)


@register(
    "backbone_a_x3_hl",
    "Backbone A x3, high-level fusion only",
    _row("Table 4", "Backbone A x3 + HL"),
)
def backbone_a_x3_hl() -> ArchSpec:
    return XCEPTION_A.replace(**HIGH_LEVEL_ONLY)


@register(
    "backbone_b_x3_hl",
    "Backbone B x3, high-level fusion only",
    _row("Table 4", "Backbone B x3 + HL"),
)
def backbone_b_x3_hl() -> ArchSpec:
    return XCEPTION_B.replace(**HIGH_LEVEL_ONLY)


# ------------------------------------------ the paper's Fig. 1: each head on one Backbone A
# Every head's genes at their defaults, on the same single tower; `HEAD_COMPARISON` adds the
# bare backbone and DFANet A to price the heads against (`python -m search_space.cost --heads`).
# The base is Backbone A with DFA's full decoder (the registered `backbone_a` has none): the
# DFA variant is this spec itself, and the other heads ignore the decoder genes.
BACKBONE_A_HL_LL = XCEPTION_A.replace(towers=1)


@register("dfa_backbone_a", "Backbone A + DFA's dual-path decoder (HL + LL) on its one tower")
def dfa_backbone_a() -> ArchSpec:
    return BACKBONE_A_HL_LL


@register("aspp_backbone_a", "Backbone A + ASPP (DeepLabV3-style) on its 1/16 map")
def aspp_backbone_a() -> ArchSpec:
    return BACKBONE_A_HL_LL.replace(head="aspp")


@register(
    "icnet_backbone_a",
    "ICNet-style cascade: Backbone A on the 1/4 image, shallow branches on 1/2 and 1/1",
)
def icnet_backbone_a() -> ArchSpec:
    return BACKBONE_A_HL_LL.replace(head="icnet")


@register(
    "bisenet_backbone_a",
    "BiSeNet-style: Backbone A as the context path beside a 1/8 spatial path",
)
def bisenet_backbone_a() -> ArchSpec:
    return BACKBONE_A_HL_LL.replace(head="bisenet")


HEAD_COMPARISON = (
    "backbone_a",
    "dfa_backbone_a",
    "aspp_backbone_a",
    "icnet_backbone_a",
    "bisenet_backbone_a",
    "dfanet_a",
)


def matching_reference(spec: ArchSpec) -> ReferenceArch | None:
    """The registered architecture `spec` is, whatever its input size (for paper rows)."""
    for arch in _REGISTRY.values():
        if spec.replace(input_size=arch.spec.input_size) == arch.spec and arch.paper_rows:
            return arch
    return None
