"""`python -m experiments.benchmarks.inference_speed` and the GPU check script on tiny inputs; no
timing asserted."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

from experiments.benchmarks.inference_speed import (
    DEFAULT_ARCHS,
    Row,
    main,
    markdown_table,
    onnx_unavailable,
    paper_fps,
    parse_args,
)
from search_space.latency import LatencyResult
from search_space.registry import HEAD_COMPARISON

ROOT = Path(__file__).resolve().parents[1]


def test_defaults() -> None:
    config = parse_args([])
    assert config.archs == DEFAULT_ARCHS
    assert (config.input_size, config.batch, config.dtype) == ((512, 1024), 1, "fp32")
    assert (config.compile, config.threads, config.protocol) == (False, None, "full")
    assert config.onnx is None  # on when the ONNX packages are installed
    assert DEFAULT_ARCHS[:2] == ("dfanet_a", "dfanet_b")
    assert set(HEAD_COMPARISON) <= set(DEFAULT_ARCHS)
    assert len(set(DEFAULT_ARCHS)) == len(DEFAULT_ARCHS)


def test_arguments() -> None:
    config = parse_args(
        [
            *("arch=dfanet_a", "--arch", "xception_b,backbone_b", "input_size=256x512"),
            "batch=4",
            *("dtype=fp16", "compile=true", "threads=1", "protocol=cheap", "device=cpu"),
            "retain_memory=false",
            "onnx=false",
        ]
    )
    assert config.archs == ("dfanet_a", "xception_b", "backbone_b")
    assert (config.input_size, config.batch, config.dtype) == ((256, 512), 4, "fp16")
    assert (config.compile, config.threads, config.protocol) == (True, 1, "cheap")
    assert not config.retain_memory
    assert config.onnx is False


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("arch=dfanet_c", "unknown architecture 'dfanet_c'"),
        ("batch=0", "--batch: expected a positive integer, got '0'"),
        ("compile=yes", "--compile: expected true or false, got 'yes'"),
        ("retain_memory=1", "--retain-memory: expected true or false"),
        ("onnx=yes", "--onnx: expected true or false, got 'yes'"),
        ("dtype=fp64", "--dtype: invalid choice: 'fp64'"),
        ("protocol=slow", "--protocol: invalid choice: 'slow'"),
        ("input_size=512", "HxW"),
        ("speed=1", "unrecognized arguments: speed=1"),
        ("dfanet_a", "unrecognized arguments: dfanet_a"),
    ],
)
def test_bad_arguments(argument: str, message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([argument])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_single_valued_option_given_twice_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_args(["batch=2", "--batch", "4"])
    assert "--batch is given twice" in capsys.readouterr().err


def test_paper_fps_only_at_the_paper_input_size() -> None:
    dfanet_a = paper_fps("dfanet_a", (1024, 1024))
    assert dfanet_a is not None
    assert (dfanet_a.fps, dfanet_a.gpu) == (100, "Titan X")
    assert paper_fps("dfanet_a", (512, 1024)).fps == 160  # DFANet A'
    assert paper_fps("dfanet_b", (1024, 1024)).fps == 120
    assert paper_fps("dfanet_b", (512, 1024)) is None
    assert paper_fps("dfanet_a", (1024, 2048)) is None
    assert paper_fps("backbone_a", (1024, 1024)) is None  # Table 2 has no timings


def _latency(median_ms: float, path: str) -> LatencyResult:
    return LatencyResult(
        median_ms=median_ms,
        p10_ms=median_ms * 0.9,
        p90_ms=median_ms * 1.2,
        repeats=10,
        batch=1,
        input_size=(1024, 1024),
        device="cuda",
        dtype="fp32",
        threads=1,
        path=path,
    )


def test_markdown_table() -> None:
    latency = {"eager": _latency(20.0, "eager"), "fast": _latency(10.0, "folded")}
    paper = paper_fps("dfanet_a", (1024, 1024))
    rows = [
        Row("dfanet_a", 1, 2_000_000, 3.4, latency, {"fast": 1e-6}, paper),
        Row("xception_b", 1, 80_000, 0.8, latency, {"fast": 2e-6}),
    ]
    lines = markdown_table(rows).splitlines()
    assert lines[0].startswith("| arch | batch | params M | GMAdds | eager ms (p10-p90) |")
    cells = "| 20.0 (18.0-24.0) | 50.0 | 10.0 (9.0-12.0) | 100.0 | 2.00x | 1e-06 | 100 (Titan X) |"
    assert lines[2].endswith(cells)
    assert lines[3].endswith("| 2e-06 |  |")  # no paper figure for xception_b


def test_markdown_table_without_onnx_at_batch_n() -> None:
    batch_1 = {"eager": _latency(20.0, "eager"), "onnx": _latency(8.0, "onnxruntime")}
    rows = [
        Row("xception_b", 1, 80_000, 0.8, batch_1, {"onnx": 3e-7}),
        Row("xception_b", 4, 80_000, 0.8, {"eager": _latency(60.0, "eager")}, {"onnx": 3e-7}),
    ]
    lines = markdown_table(rows).splitlines()
    assert "| onnx ms (p10-p90) | onnx FPS | onnx/eager | onnx Δ |" in lines[0]
    assert lines[2].endswith("| 8.0 (7.2-9.6) | 125.0 | 2.50x | 3e-07 |  |")
    assert lines[3].endswith("| n/a | n/a | n/a | 3e-07 |  |")


def test_onnx_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert onnx_unavailable(False, cpu) == "onnx=false"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as `import` sees it when absent
    assert onnx_unavailable(None, cpu) == "onnxruntime not installed (pip install -e '.[onnx]')"
    with pytest.raises(ValueError, match=r"onnx=true, but onnxruntime not installed"):
        onnx_unavailable(True, cpu)


def run_tiny(tmp_path: Path, onnx: bool) -> tuple[list[dict[str, str]], str]:
    """The command on xception_b at 32x48, batch 1 and 2: the CSV records and the markdown."""
    arguments = ["arch=xception_b", "input_size=32x48", "batch=2", "threads=1", "protocol=cheap"]
    # retain_memory=false: malloc's settings would outlive the test, in pytest's process.
    code = main(
        [
            *arguments,
            "device=cpu",
            "retain_memory=false",
            f"onnx={str(onnx).lower()}",
            f"out={tmp_path}",
        ]
    )
    assert code == 0
    (csv_path,) = tmp_path.glob("cpu1t-*_32x48_fp32_b2_*.csv")
    with csv_path.open() as handle:
        records = list(csv.DictReader(handle))
    return records, csv_path.with_suffix(".md").read_text()


def test_command_writes_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records, markdown = run_tiny(tmp_path, onnx=False)
    assert [(r["arch"], r["batch"]) for r in records] == [("xception_b", "1"), ("xception_b", "2")]
    for record in records:
        assert float(record["eager_median_ms"]) > 0
        assert float(record["fast_speedup"]) > 0
        assert float(record["fast_max_rel_diff"]) < 1e-4
        assert record["fast_path"] == "folded+channels_last"
        assert not any(column.startswith("onnx_") for column in record)
    assert "load average" in markdown
    assert "- malloc: default" in markdown
    assert "- onnxruntime: not run" in markdown
    assert "xception_b" in capsys.readouterr().out


@pytest.mark.slow
def test_onnx_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    (batch_1, batch_2), markdown = run_tiny(tmp_path, onnx=True)
    assert batch_1["onnx_path"] == "onnxruntime"
    assert float(batch_1["onnx_median_ms"]) > 0
    assert float(batch_1["onnx_speedup"]) > 0
    assert float(batch_1["onnx_max_rel_diff"]) < 1e-4
    assert batch_2["onnx_median_ms"] == ""  # the file is exported at batch 1
    assert f"- onnxruntime: {onnxruntime.__version__}" in markdown
    assert "| onnx ms (p10-p90) | onnx FPS | onnx/eager | onnx Δ |" in markdown
    assert "xception_b: ONNX: " in capsys.readouterr().out
