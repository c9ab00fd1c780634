from __future__ import annotations

from typing import Any

import pytest

from search_space.spec import HEAD_GENES, HEADS, ArchSpec, SpecError, deepest_stride, gene_names

# One or more bad values for every gene: each must be rejected with the gene's name.
BAD_VALUES: dict[str, list[Any]] = {
    "widths": [[48, 96], [48, 96, 0], [48, 96, "192"], 48, [48, 96, 190]],
    "depths": [[4, 6], [4, 0, 4], [4, 6, 4.5]],
    "expansion": [0, 3.0, True, 17],
    "stem_channels": [0, "8"],
    "towers": [0, 5, 2.0],
    "fc_attention": ["yes", 1],
    "fc_hidden": [0, None],
    "fc_attention_gate": ["softmax", None],
    "subnetwork_link": ["true"],
    "substage_links": [[True, True], [True, 1, True]],
    "head": ["pspnet", None],
    "decoder_channels": [0, -32],
    "decoder_high_level": [None],
    "decoder_low_level": [0],
    "decoder_fuse_kernel": [2, 0, 9],
    "aspp_channels": [0, 2048, "128"],
    "aspp_rates": [[], [6, 12, 18, 24, 30], [12, 6], [6, 6], [0, 6], [6, 12.0], 6, [6, 100]],
    "aspp_separable": ["false", None],
    "icnet_scales": [[4], [2, 4], [4, 4, 1], [4, 2, 1, 1], [4, 2, 0], [32, 2], [4.0, 1], 4],
    "icnet_channels": [0, True],
    "icnet_branch_channels": [0, 1025],
    "icnet_branch_depth": [0, 6, "3"],
    "bisenet_spatial_channels": [0, 64.0],
    "bisenet_channels": [-1, None],
    "input_size": [[1024], [1024, 0], [1024, 1024, 3], [32, 32], [10000, 1024]],
}


def test_every_gene_has_bad_value_cases() -> None:
    assert set(BAD_VALUES) == set(gene_names())


@pytest.mark.parametrize(
    ("gene", "value"),
    [(gene, value) for gene, values in BAD_VALUES.items() for value in values],
)
def test_bad_value_is_rejected_naming_the_gene(gene: str, value: Any) -> None:
    with pytest.raises(SpecError, match=f"gene '{gene}'") as caught:
        ArchSpec().replace(**{gene: value})
    assert caught.value.gene == gene


def test_defaults_are_dfanet_a() -> None:
    spec = ArchSpec()
    assert spec.widths == (48, 96, 192)
    assert spec.depths == (4, 6, 4)
    assert spec.towers == 3
    assert spec.input_size == (1024, 1024)


def test_lists_become_tuples_and_round_trip() -> None:
    spec = ArchSpec(widths=[32, 64, 128], input_size=[512, 1024])
    assert spec.widths == (32, 64, 128)
    assert hash(spec) == hash(ArchSpec.from_dict(spec.to_dict()))
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["widths"] == [32, 64, 128]


def test_unknown_gene_is_named() -> None:
    with pytest.raises(SpecError, match=r"gene 'width'.*unknown gene"):
        ArchSpec().replace(width=3)


def test_tower_without_any_input_is_rejected() -> None:
    with pytest.raises(SpecError, match="subnetwork_link"):
        ArchSpec(subnetwork_link=False, substage_links=(False, True, True))
    # A single tower needs no link at all.
    ArchSpec(towers=1, subnetwork_link=False, substage_links=(False, False, False))


def test_width_must_divide_by_expansion_message() -> None:
    with pytest.raises(SpecError, match="enc3 width 90 must be divisible by expansion 4"):
        ArchSpec(widths=(48, 90, 192))


@pytest.mark.parametrize("towers", [1, 2, 3, 4])
def test_smallest_accepted_input_per_tower_count(towers: int) -> None:
    side = deepest_stride(towers)
    ArchSpec(towers=towers, input_size=(side, side))
    with pytest.raises(SpecError, match=f"at least {side}"):
        ArchSpec(towers=towers, input_size=(side - 1, side * 2))


def test_every_head_lists_its_genes() -> None:
    assert set(HEADS) == set(HEAD_GENES)
    head_genes = [gene for genes in HEAD_GENES.values() for gene in genes]
    assert len(head_genes) == len(set(head_genes)) and set(head_genes) <= set(gene_names())
    spec = ArchSpec(towers=1, head="aspp", aspp_rates=[3, 6])
    assert spec.head_genes() == {
        "aspp_channels": 128,
        "aspp_rates": [3, 6],
        "aspp_separable": False,
    }


def test_list_genes_of_variable_length_name_the_range() -> None:
    with pytest.raises(SpecError, match="gene 'aspp_rates': expected a list of 1 to 4 values"):
        ArchSpec(aspp_rates=())
    with pytest.raises(SpecError, match="strictly decreasing values"):
        ArchSpec(icnet_scales=(1, 2))
    assert ArchSpec(aspp_rates=[2], icnet_scales=[8, 4, 2, 1]).aspp_rates == (2,)


def test_icnet_takes_one_tower() -> None:
    ArchSpec(head="icnet", towers=1)
    with pytest.raises(SpecError, match="gene 'towers': head 'icnet' takes one tower") as caught:
        ArchSpec(head="icnet", towers=2)
    assert caught.value.gene == "towers"
    # The rule belongs to the head: the same genes with another head are fine.
    ArchSpec(head="dfa", towers=2, icnet_scales=(8, 1))


@pytest.mark.parametrize("coarsest", [2, 4, 8])
def test_icnet_smallest_input_fits_its_coarsest_branch(coarsest: int) -> None:
    side = coarsest * deepest_stride(1)
    spec = ArchSpec(head="icnet", towers=1, icnet_scales=(coarsest, 1), input_size=(side, side))
    with pytest.raises(SpecError, match=f"gene 'input_size'.*at least {side}"):
        spec.replace(input_size=(side - 1, side * 2))
