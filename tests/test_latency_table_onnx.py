"""A latency table by way of ONNX files: a tiny space exported, its files timed by a stand-in
for a vendor's tool (onnxruntime, `time_manifest`), the times imported; bad CSVs are refused
with the line or file named. No timing asserted beyond positive times."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from search_space.latency import predict_latency
from search_space.latency_table import load_table
from search_space.latency_table.onnx_parts import (
    export_parts,
    import_times,
    onnxruntime_table,
    time_manifest,
)
from search_space.parts import network_parts, space_parts
from search_space.space import SearchSpace, load_space

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SIZE = (32, 48)
KEY_OF_THE_STEM = (
    "conv_bn_relu(dilation=1, in_channels=3, kernel_size=3, out_channels=4, relu=True, "
    "stride=2) <- 3x32x48"
)
NUM_CLASSES = 3
# One narrow tower with both decoder paths (the low-level path adds two maps: a part of two
# inputs); stem width, FC attention and decoder width vary: 8 members, 21 parts. 4 calibrate
# (with fewer, fit_correction fits the scale alone: the test checks all three terms), 2 validate.
CALIBRATION, VALIDATION = 4, 2
SPACE_YAML = f"""
name: tiny
base: xception_b
genes:
  head: {{choices: [dfa]}}
  towers: {{value: 1}}
  widths: {{value: [8, 16, 32]}}
  depths: {{value: [1, 1, 1]}}
  stem_channels: {{choices: [4, 8]}}
  fc_attention: {{choices: [true, false]}}
  fc_hidden: {{value: 8}}
  decoder_high_level: {{value: true}}
  decoder_low_level: {{value: true}}
  decoder_channels: {{choices: [8, 16]}}
  input_size: {{value: [{SIZE[0]}, {SIZE[1]}]}}
"""


@dataclass(frozen=True)
class Exported:
    space: SearchSpace
    folder: Path
    manifest: dict[str, Any]
    times_file: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("onnx_parts")
    (root / "tiny.yaml").write_text(SPACE_YAML)
    space = load_space(root / "tiny.yaml")
    manifest = export_parts(
        space, [SIZE], root / "export", batch=1, dtype="fp32", num_classes=NUM_CLASSES,
        calibration_networks=CALIBRATION, validation_networks=VALIDATION, progress=None,
    )  # fmt: skip
    time_manifest(manifest.parent, root / "times.csv", threads=1, progress=None)
    return Exported(space, manifest.parent, json.loads(manifest.read_text()), root / "times.csv")


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_manifest_lists_every_part_and_network_as_a_valid_file(exported: Exported) -> None:
    parts = space_parts(exported.space.with_fixed({"input_size": SIZE}), NUM_CLASSES)
    assert [row["key"] for row in exported.manifest["parts"]] == [part.key for part in parts]
    roles = [row["role"] for row in exported.manifest["networks"]]
    assert roles == ["calibration"] * CALIBRATION + ["validation"] * VALIDATION
    for row in (*exported.manifest["parts"], *exported.manifest["networks"]):
        onnx.checker.check_model(str(exported.folder / row["file"]))
    add = next(row for row in exported.manifest["parts"] if row["kind"] == "add")
    graph = onnx.load(str(exported.folder / add["file"])).graph
    assert [value.name for value in graph.input] == ["input0", "input1"]


def test_imported_times_make_a_table_that_predicts(exported: Exported, tmp_path: Path) -> None:
    table = import_times(exported.folder, exported.times_file, device_name="Stand-in NPU")
    medians = {row["file"]: float(row["median_ms"]) for row in csv_rows(exported.times_file)}
    by_key = {part.key: entry for part, entry in table.entries.items()}
    assert len(by_key) == len(exported.manifest["parts"])
    for row in exported.manifest["parts"]:
        assert by_key[row["key"]].median_ms == medians[row["file"]] > 0

    weights = {row["key"]: row["weights"] for row in exported.manifest["parts"]}
    assert by_key[KEY_OF_THE_STEM].weights == 3 * 3 * 3 * 4 + 4  # folded: a conv with a bias

    correction = table.corrections[SIZE]
    assert len(correction.networks) == CALIBRATION
    assert table.validation[SIZE].networks == VALIDATION
    calibration = exported.manifest["networks"][:CALIBRATION]
    for network, row in zip(correction.networks, calibration, strict=True):
        assert network.measured_ms == medians[row["file"]]
        assert network.sums.parts_ms == pytest.approx(
            sum(by_key[key].median_ms * count for key, count in row["parts"].items())
        )
        assert network.sums.part_calls == sum(row["parts"].values())

    genes = {"stem_channels": 8, "fc_attention": False, "decoder_channels": 16}
    member = exported.space.spec_from_params(genes)
    parts = network_parts(member, NUM_CLASSES)
    parts_ms = sum(table.entries[part].median_ms * count for part, count in parts.items())
    weight_mb = sum(weights[part.key] * count for part, count in parts.items()) * 4 / 1e6  # fp32
    expected = (
        correction.scale * parts_ms
        + correction.per_call_ms * sum(parts.values())
        + correction.per_weight_mb_ms * weight_mb
    )
    assert predict_latency(member, table).median_ms == pytest.approx(expected)
    assert table.describe_device().startswith("Stand-in NPU (imported, fp32, onnx")

    table.save(tmp_path / "table.json")
    assert load_table(tmp_path / "table.json").digest == table.digest


def rewritten(rows: list[dict[str, str]], path: Path, columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_file_without_a_time_is_named(exported: Exported, tmp_path: Path) -> None:
    rows = csv_rows(exported.times_file)
    times = rewritten(rows[:3] + rows[4:], tmp_path / "times.csv")
    with pytest.raises(ValueError, match=f"no time for 1 file.*first {rows[3]['file']}"):
        import_times(exported.folder, times, device_name="x")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("median_ms", "-0.5", r"line 3 \(parts/part_00002.onnx\): median_ms '-0.5' is not a"),
        ("p90_ms", "fast", r"line 3 \(parts/part_00002.onnx\): p90_ms 'fast' is not a number"),
        ("file", "parts/part_99999.onnx", r"line 3: 'parts/part_99999.onnx' is not a file of"),
        ("file", "parts/part_00001.onnx", r"line 3: parts/part_00001.onnx is timed again"),
    ],
)
def test_a_bad_row_is_named_by_its_line(
    exported: Exported, tmp_path: Path, column: str, value: str, message: str
) -> None:
    rows = csv_rows(exported.times_file)
    rows[1][column] = value  # line 3: the header is line 1
    with pytest.raises(ValueError, match=message):
        import_times(exported.folder, rewritten(rows, tmp_path / "times.csv"), device_name="x")


def test_a_missing_column_is_named(exported: Exported, tmp_path: Path) -> None:
    times = rewritten(csv_rows(exported.times_file), tmp_path / "times.csv", ["file", "p10_ms"])
    with pytest.raises(ValueError, match=r"no column 'median_ms'.*got file,p10_ms"):
        import_times(exported.folder, times, device_name="x")


def test_only_the_times_a_tool_reports_are_needed(exported: Exported, tmp_path: Path) -> None:
    rows = csv_rows(exported.times_file)
    times = rewritten(rows, tmp_path / "times.csv", ["file", "median_ms"])
    entry = next(iter(import_times(exported.folder, times, device_name="x").entries.values()))
    assert entry.p10_ms == entry.p90_ms == entry.median_ms
    assert entry.repeats == 0


def test_export_refuses_a_used_folder_and_bf16(exported: Exported) -> None:
    options: dict[str, Any] = {
        "batch": 1,
        "num_classes": NUM_CLASSES,
        "calibration_networks": 1,
        "validation_networks": 0,
        "progress": None,
    }
    with pytest.raises(ValueError, match="is not empty"):
        export_parts(exported.space, [SIZE], exported.folder, dtype="fp32", **options)
    with pytest.raises(ValueError, match="not 'bf16'"):
        export_parts(exported.space, [SIZE], exported.folder / "new", dtype="bf16", **options)


def test_the_onnxruntime_table_says_what_ran_it(exported: Exported) -> None:
    table = onnxruntime_table(
        exported.space, [SIZE], threads=1, batch=1, dtype="fp32", num_classes=NUM_CLASSES,
        calibration_networks=1, validation_networks=1, progress=None,
    )  # fmt: skip
    assert len(table.entries) == len(exported.manifest["parts"])
    assert (table.device, table.threads, table.path) == ("cpu", 1, "onnxruntime")
    assert {"onnx", "onnxscript", "onnxruntime"} <= set(table.software)
    assert set(table.protocol) == {"parts", "networks"}
