from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from search_space.cost import count_cost, count_madds
from search_space.cost.__main__ import main as cost_main
from search_space.model import build
from search_space.published import find_published
from search_space.registry import HEAD_COMPARISON, get_arch
from search_space.spec import HEAD_GENES, HEADS
from tests.support import Outcome, run_command, run_main

# (architecture, input size, paper table, paper model, relative tolerance): the targets.
PAPER_TARGETS = [
    ("dfanet_a", (1024, 1024), "Table 4", "DFANet A", 0.03),
    ("dfanet_b", (1024, 1024), "Table 4", "DFANet B", 0.03),
    ("dfanet_a", (512, 1024), "Table 5", "DFANet A'", 0.03),
    ("backbone_a", (1024, 1024), "Table 2", "Backbone A", 0.05),
    ("backbone_b", (1024, 1024), "Table 2", "Backbone B", 0.05),
]


@pytest.mark.parametrize(("name", "size", "table", "model", "tolerance"), PAPER_TARGETS)
def test_madds_reproduce_the_paper(
    name: str, size: tuple[int, int], table: str, model: str, tolerance: float
) -> None:
    ours = count_madds(get_arch(name).replace(input_size=size)).gmadds
    paper = find_published(table, model).gmadds
    assert paper is not None
    assert abs(ours / paper - 1) <= tolerance, f"{name}: {ours:.3f} G vs paper {paper} G"


def test_madds_equal_fvcore_traced_conv_and_linear() -> None:
    """The hook count is fvcore's own conv + linear count of a traced forward pass."""
    from fvcore.nn import FlopCountAnalysis

    spec = get_arch("dfanet_b").replace(input_size=(160, 224))
    analysis = FlopCountAnalysis(build(spec).eval(), torch.zeros(1, 3, 160, 224))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        by_operator = analysis.by_operator()
    assert count_madds(spec).madds == by_operator["conv"] + by_operator["linear"]


def test_fvcore_total_counts_more_than_the_paper_convention() -> None:
    spec = get_arch("dfanet_b").replace(input_size=(128, 256))
    cost = count_cost(spec)
    assert cost.fvcore_total is not None
    assert cost.fvcore_total > cost.madds
    assert cost.params == sum(p.numel() for p in build(spec).parameters())


def run_cost(*args: str) -> Outcome:
    return run_main(cost_main, list(args))


@pytest.mark.slow
def test_the_command_as_typed_json_with_input_and_set() -> None:
    result = run_command(
        "search_space.cost",
        *("dfanet_b", "--input-size", "256x512", "--set", "towers=2", "widths=[32,64,96]"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["arch"] == "dfanet_b"
    assert payload["input"] == [256, 512]
    spec = get_arch("dfanet_b").replace(towers=2, widths=(32, 64, 96), input_size=(256, 512))
    expected = count_cost(spec)
    assert payload["madds"] == expected.madds
    assert payload["params"] == expected.params
    assert payload["fvcore_total"] == expected.fvcore_total
    assert payload["gmadds"] == pytest.approx(expected.madds / 1e9, abs=1e-4)


@pytest.mark.slow
def test_cli_repeated_set_applies_every_gene() -> None:
    genes = ("expansion=2", "towers=2", "subnetwork_link=false")
    once = run_cost("dfanet_a", "--set", *genes, "--json")
    repeated = run_cost(
        "dfanet_a", "--set", "expansion=2", "--set", "towers=2", "--set", "subnetwork_link=false",
        "--json",
    )  # fmt: skip
    spec = get_arch("dfanet_a").replace(expansion=2, towers=2, subnetwork_link=False)
    assert json.loads(once.stdout)["madds"] == json.loads(repeated.stdout)["madds"]
    assert json.loads(repeated.stdout)["madds"] == count_madds(spec).madds


def test_cli_refuses_an_option_given_twice() -> None:
    result = run_cost("dfanet_a", "--input-size", "64x64", "input_size=128x128")
    assert result.returncode == 2
    assert "--input-size is given twice" in result.stderr


@pytest.mark.slow
def test_cli_reads_a_spec_yaml(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("base: dfanet_a\ntowers: 2\ninput_size: [256, 256]\n")
    payload = json.loads(run_cost(str(path), "--json").stdout)
    assert (
        payload["madds"]
        == count_madds(get_arch("dfanet_a").replace(towers=2, input_size=(256, 256))).madds
    )


def test_cli_bad_gene_names_it(tmp_path: Path) -> None:
    result = run_cost("dfanet_a", "--set", "towers=9")
    assert result.returncode == 2
    assert "gene 'towers'" in result.stderr
    path = tmp_path / "bad.yaml"
    path.write_text("decoder_chanels: 16\n")
    result = run_cost(str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and "decoder_chanels" in result.stderr


def test_cli_malformed_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("towers: [2\nbase: dfanet_a\n")
    result = run_cost(str(path))
    assert result.returncode == 2
    assert f"{path}: not valid YAML (line 2)" in result.stderr


@pytest.mark.slow
def test_cli_paper_table_lists_every_row() -> None:
    result = run_cost("--paper")
    assert result.returncode == 0, result.stderr
    for model in ["DFANet A", "DFANet A'", "DFANet B", "Backbone B x4", "Backbone A x3 + HL"]:
        assert f": {model} " in result.stdout
    line = next(ln for ln in result.stdout.splitlines() if ": DFANet A " in ln)
    assert line.split()[-3] == "1.01"  # the ratio column of DFANet A at 1024x1024
    # The ASPP rows sit beside the paper's 6.9 G and 4.4 G, with the configuration we chose.
    for name, model, paper in [("xception_a_aspp", "A", "6.90"), ("xception_b_aspp", "B", "4.40")]:
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(f"{name} "))
        assert f"Table 2: Xception {model} + ASPP" in line and paper in line.split()
        ours = f"{count_madds(get_arch(name)).gmadds:.2f}"
        assert ours in line.split()
        assert f"ours: {name}: head aspp, aspp_channels=128" in result.stdout


@pytest.mark.slow
def test_cli_heads_table_prices_every_head_on_backbone_a() -> None:
    result = run_cost("--heads")
    assert result.returncode == 0, result.stderr
    assert "Heads on Backbone A at 1024x1024" in result.stdout
    lines = {ln.split()[0]: ln for ln in result.stdout.splitlines()[3:-1]}
    rows = {name: line.split() for name, line in lines.items()}
    assert set(HEAD_COMPARISON) == set(rows)
    heads_shown = {row[1] for row in rows.values()}
    assert heads_shown == set(HEADS)
    backbone = count_madds(get_arch("backbone_a")).gmadds
    for name, row in rows.items():
        cost = count_madds(get_arch(name))
        assert row[3:6] == [
            f"{cost.gmadds:.2f}",
            f"{cost.gmadds - backbone:+.2f}",
            f"{cost.params / 1e6:.2f}",
        ]
        assert " ".join(row[6:]).startswith(f"{HEAD_GENES[row[1]][0]}=")
    assert "icnet_scales=[4, 2, 1]" in lines["icnet_backbone_a"]
