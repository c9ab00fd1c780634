"""Latency tables: the parts of a space, the file, the predictor and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search_space.latency import MissingPartError, Protocol, predict_latency
from search_space.latency_table.__main__ import main as table_main
from search_space.latency_table.build import build_table, draw_members
from search_space.latency_table.table import LatencyTable, TableError, load_table
from search_space.parts import network_parts, part_calls, space_parts
from search_space.registry import get_arch
from search_space.space import load_space
from tests.support import TINY_SPACE, run_main

QUICK = Protocol(warmup=1, min_repeats=2, max_repeats=3, budget_s=0.05)


@pytest.fixture(scope="module")
def tiny_table() -> LatencyTable:
    return build_table(
        load_space(TINY_SPACE),
        [(64, 64)],
        device=torch.device("cpu"),
        threads=1,
        calibration_networks=5,
        part_protocol=QUICK,
        network_protocol=QUICK,
        progress=None,
    )


def test_the_two_walks_find_every_part_of_the_whole_product() -> None:
    space = load_space(TINY_SPACE)
    every_member = {
        part
        for params in space.assignments()
        for part in network_parts(space.spec_from_params(params))
    }
    # Depth 1 runs no second block: a walk that held depth at 1 would miss it.
    assert any(
        p.kind == "xception_block" and dict(p.arguments)["stride"] == 1 for p in every_member
    )
    assert set(space_parts(space)) == every_member


def test_a_table_is_written_and_read_back_whole(tiny_table: LatencyTable, tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    tiny_table.save(path)
    loaded = load_table(path)
    assert loaded.digest == tiny_table.digest
    assert loaded.content() == tiny_table.content()  # times as written: to the nanosecond
    assert set(loaded.entries) == set(tiny_table.entries)
    assert loaded.threads == 1 and loaded.device == "cpu" and loaded.path == "folded+channels_last"
    # One part per line: two tables diff row by row.
    lines = path.read_text().splitlines()
    assert sum('"key": ' in line for line in lines) == len(tiny_table.entries)
    assert len(tiny_table.corrections[(64, 64)].networks) == 5
    assert "plain sum of the parts" in tiny_table.notes[0]


def test_the_prediction_is_the_corrected_sum_of_the_entries(tiny_table: LatencyTable) -> None:
    space = load_space(TINY_SPACE)
    correction = tiny_table.corrections[(64, 64)]
    for spec in draw_members(space, 4, seed=7):
        parts = network_parts(spec)
        entries = [(tiny_table.entries[p], n) for p, n in parts.items()]
        parts_ms = sum(entry.median_ms * n for entry, n in entries)
        weight_mb = sum(entry.weights * n for entry, n in entries) * 4 / 1e6  # fp32
        predicted = predict_latency(spec, tiny_table)
        assert predicted.parts_ms == pytest.approx(parts_ms)
        assert predicted.part_calls == part_calls(parts)
        assert predicted.weight_mb == pytest.approx(weight_mb)
        expected = (
            correction.scale * parts_ms
            + correction.per_call_ms * part_calls(parts)
            + correction.per_weight_mb_ms * weight_mb
        )
        assert predicted.median_ms == pytest.approx(expected)
        assert predicted.table_digest == tiny_table.digest


def test_a_part_the_table_lacks_is_named(tiny_table: LatencyTable) -> None:
    wider = get_arch("dfa_backbone_a").replace(input_size=(64, 64))
    with pytest.raises(MissingPartError, match=r"13 part\(s\) .*, first conv_bn_relu\(") as raised:
        predict_latency(wider, tiny_table, table_file="t.json")
    assert "t.json" in str(raised.value) and "python -m search_space.latency_table" in str(
        raised.value
    )
    with pytest.raises(MissingPartError, match="built for input sizes 64x64, not 96x96"):
        predict_latency(wider.replace(input_size=(96, 96)), tiny_table)


def test_a_damaged_table_names_its_file_and_field(tiny_table: LatencyTable, tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    tiny_table.save(path)
    content = json.loads(path.read_text())
    content["parts"][3]["median_ms"] = "fast"
    path.write_text(json.dumps(content))
    with pytest.raises(TableError, match=r"table.json: field 'parts\[3\].median_ms'"):
        load_table(path)
    content["parts"][3]["median_ms"] = 0.5
    del content["dtype"]
    path.write_text(json.dumps(content))
    with pytest.raises(TableError, match="missing field 'dtype'"):
        load_table(path)
    with pytest.raises(TableError, match="no such latency table"):
        load_table(tmp_path / "absent.json")


def test_the_command_builds_a_table(tmp_path: Path) -> None:
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(json.dumps(TINY_SPACE))  # JSON is YAML
    out = tmp_path / "tiny-table.json"
    arguments = ["--space", str(space_file), "--input", "64x64", "--threads", "1"]
    result = run_main(table_main, [*arguments, "--calibration", "2", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 84 parts of space 'tiny' at 64x64" in result.stdout
    assert "latency table: 84 distinct parts" in result.stdout
    assert load_table(out).threads == 1
    refused = run_main(table_main, ["--space", "nowhere", "--out", str(out)])
    assert refused.returncode == 2 and "--space 'nowhere': expected one of" in refused.stderr
