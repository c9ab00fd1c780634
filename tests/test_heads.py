"""The comparison heads (ASPP, ICNet-style, BiSeNet-style) beside DFA: outputs, shapes, rules."""

from __future__ import annotations

import pytest
import torch

from search_space.cost import count_madds
from search_space.heads.icnet import ICNetHead
from search_space.model import build
from search_space.outputs import TrainOutput
from search_space.registry import get_arch
from search_space.spec import ArchSpec, SpecError

# Not multiples of anything: every fusion must resize by exact size. ICNet needs sides >= 64.
SIZE = (70, 98)
NUM_CLASSES = 5


def down(size: tuple[int, int], times: int) -> tuple[int, int]:
    """The size after `times` stride-2 3x3 convs (padding 1): each rounds up."""
    height, width = size
    for _ in range(times):
        height, width = (height + 1) // 2, (width + 1) // 2
    return height, width


def train_forward(spec: ArchSpec) -> tuple[torch.nn.Module, TrainOutput]:
    model = build(spec.replace(input_size=SIZE), NUM_CLASSES).train()
    output = model(torch.randn(2, 3, *SIZE))
    assert isinstance(output, TrainOutput)
    assert output.logits.shape == (2, NUM_CLASSES, *SIZE)
    return model, output


def aux_shapes(output: TrainOutput) -> list[tuple[int, ...]]:
    return [tuple(aux.logits.shape) for aux in output.aux]


def test_aspp_has_no_auxiliaries() -> None:
    _, output = train_forward(get_arch("aspp_backbone_a"))
    assert output.aux == ()


def test_icnet_guides_each_cascade_fusion_at_the_finer_branch_size() -> None:
    _, output = train_forward(get_arch("icnet_backbone_a"))
    # Branches at 1/2 and 1/1 of the image, three stride-2 convs each (icnet_branch_depth).
    half = down(SIZE, 1)
    assert aux_shapes(output) == [
        (2, NUM_CLASSES, *down(half, 3)),
        (2, NUM_CLASSES, *down(SIZE, 3)),
    ]
    assert [aux.weight for aux in output.aux] == [0.4, 0.4]


def test_icnet_with_two_scales_has_one_fusion_and_one_auxiliary() -> None:
    spec = get_arch("icnet_backbone_a").replace(icnet_scales=(2, 1), icnet_branch_depth=2)
    _, output = train_forward(spec)
    assert aux_shapes(output) == [(2, NUM_CLASSES, *down(SIZE, 2))]


def test_icnet_fusion_dilation_is_the_upsampling_factor() -> None:
    # Coarse branch: backbone at 1/16 of the 1/4 image = 1/64; the branches end at 1/16, 1/8.
    head = ICNetHead(get_arch("icnet_backbone_a"), NUM_CLASSES)
    assert [fusion.coarse[0].dilation for fusion in head.fusions] == [(4, 4), (2, 2)]


@pytest.mark.parametrize(
    ("towers", "deepest", "finer"),
    [
        (1, 4, 3),  # the top at 1/16 and enc3 at 1/8
        (2, 5, 4),  # tower 2's top at 1/32 and tower 1's at 1/16
    ],
)
def test_bisenet_classifies_both_refined_context_maps(
    towers: int, deepest: int, finer: int
) -> None:
    spec = get_arch("bisenet_backbone_a").replace(towers=towers)
    model, output = train_forward(spec)
    assert aux_shapes(output) == [
        (2, NUM_CLASSES, *down(SIZE, deepest)),
        (2, NUM_CLASSES, *down(SIZE, finer)),
    ]
    assert [aux.weight for aux in output.aux] == [1.0, 1.0]
    loss = output.logits.mean() + sum(aux.weight * aux.logits.mean() for aux in output.aux)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("head", ["dfa", "aspp", "icnet", "bisenet"])
def test_eval_returns_only_logits(head: str) -> None:
    model = build(get_arch(f"{head}_backbone_a").replace(input_size=SIZE), NUM_CLASSES).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *SIZE))
    assert type(logits) is torch.Tensor
    assert logits.shape == (1, NUM_CLASSES, *SIZE)


@pytest.mark.parametrize("towers", [2, 3])
def test_aspp_runs_on_the_last_towers_top(towers: int) -> None:
    spec = get_arch("aspp_backbone_a").replace(towers=towers, aspp_separable=True)
    model, output = train_forward(spec)
    output.logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_separable_aspp_is_cheaper_and_keeps_its_branches() -> None:
    spec = get_arch("aspp_backbone_a")
    plain, separable = count_madds(spec), count_madds(spec.replace(aspp_separable=True))
    assert separable.madds < plain.madds and separable.params < plain.params
    model = build(spec.replace(aspp_rates=(2, 4, 8, 16)))
    assert len(model.head.branches) == 5  # the 1x1 and one per rate (image pooling aside)


def test_genes_of_other_heads_are_ignored() -> None:
    """Inactive genes stay in the spec (validated) but change nothing that is built."""
    spec = get_arch("dfa_backbone_a").replace(input_size=(128, 128))
    others = spec.replace(
        aspp_channels=16, aspp_rates=(1,), icnet_scales=(16, 1), bisenet_channels=8
    )
    assert others != spec
    assert others.head_genes() == spec.head_genes()
    shapes = {k: v.shape for k, v in build(spec).state_dict().items()}
    assert shapes == {k: v.shape for k, v in build(others).state_dict().items()}
    assert count_madds(others) == count_madds(spec)


def test_icnet_rejects_towers_and_inputs_too_small_for_its_coarsest_branch() -> None:
    icnet = get_arch("icnet_backbone_a")
    with pytest.raises(SpecError, match="gene 'towers'"):
        icnet.replace(towers=2)
    with pytest.raises(SpecError, match=r"gene 'input_size'.*at least 64"):
        icnet.replace(input_size=(48, 96))
    icnet.replace(input_size=(64, 64), icnet_scales=(4, 1))
