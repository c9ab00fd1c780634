"""Tests generated from the registry: every registered architecture is built, run and counted."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from search_space.cost import count_madds
from search_space.model import build
from search_space.outputs import TrainOutput
from search_space.published import find_published
from search_space.registry import (
    HEAD_COMPARISON,
    arch_names,
    get_arch,
    matching_reference,
    reference,
)
from search_space.spec import HEAD_GENES, HEADS, ArchSpec, deepest_stride

NAMES = arch_names()
# The head-comparison architectures: the paper sketches them (Fig. 1) but publishes no figure.
HEADS_ON_BACKBONE_A = (
    "dfa_backbone_a",
    "aspp_backbone_a",
    "icnet_backbone_a",
    "bisenet_backbone_a",
)
PAPER_ARCHS = tuple(name for name in NAMES if name not in HEADS_ON_BACKBONE_A)


def small_input(name: str) -> tuple[int, int]:
    """The smallest convenient size the architecture accepts, not a multiple of 64."""
    side = max(deepest_stride(get_arch(name).towers), 96)
    return side + 8, side * 2 + 24


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_shapes(name: str) -> None:
    height, width = small_input(name)
    spec = get_arch(name).replace(input_size=(height, width))
    model = build(spec, num_classes=7).train()
    image = torch.randn(2, 3, height, width)
    output = model(image)
    assert isinstance(output, TrainOutput)
    assert output.logits.shape == (2, 7, height, width)
    loss = output.logits.mean() + sum(aux.logits.mean() * aux.weight for aux in output.aux)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters that get no gradient: {unused[:5]}"
    model.eval()
    with torch.no_grad():
        logits = model(image[:1])
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (1, 7, height, width)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_madds_equal_torch_flop_counter(name: str) -> None:
    """Our MAdds = FlopCounterMode's total / 2, at the architecture's own input size."""
    spec = get_arch(name)
    with torch.device("meta"):
        model = build(spec).eval()
        image = torch.empty(1, 3, *spec.input_size)
    with FlopCounterMode(display=False) as counter:
        model(image)
    assert count_madds(spec).madds == counter.get_total_flops() // 2


@pytest.mark.parametrize("name", PAPER_ARCHS)
def test_every_paper_arch_has_a_published_row(name: str) -> None:
    rows = reference(name).paper_rows
    assert rows, f"{name} reproduces no row of the paper"
    for row in rows:
        assert find_published(row.table, row.model).gmadds is not None


def test_only_the_heads_on_backbone_a_have_no_paper_row() -> None:
    """The paper sketches the head families (Fig. 1) but publishes no figure for them on one
    Backbone A: these are registered to be priced and trained against each other, and no paper
    row may be matched to them. Every other registered architecture reproduces a row."""
    unpublished = {name for name in NAMES if not reference(name).paper_rows}
    assert unpublished == set(HEADS_ON_BACKBONE_A)
    assert {get_arch(name).head for name in HEADS_ON_BACKBONE_A} == set(HEADS)
    assert all(matching_reference(get_arch(name)) is None for name in HEADS_ON_BACKBONE_A)


@pytest.mark.parametrize("name", NAMES)
def test_genes_of_other_heads_keep_their_defaults(name: str) -> None:
    """One architecture, one spec: a space whose base has default genes can express every
    registered architecture (a study enqueues them as reference designs)."""
    spec, defaults = get_arch(name), ArchSpec()
    for head, genes in HEAD_GENES.items():
        if head != spec.head:
            assert {g: getattr(spec, g) for g in genes} == {g: getattr(defaults, g) for g in genes}


def test_head_comparison_covers_every_head() -> None:
    assert {get_arch(name).head for name in HEAD_COMPARISON} == set(HEADS)
    assert {get_arch(name).towers for name in HEAD_COMPARISON[:-1]} == {1}


def test_unknown_name_lists_the_registry() -> None:
    with pytest.raises(KeyError, match="dfanet_a"):
        get_arch("dfanet_c")
