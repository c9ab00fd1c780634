"""ONNX export: a registered architecture of each kind passes onnx's checker and computes, in
onnxruntime, the eager model's logits; failures say what went wrong. No timing asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from search_space.latency import Protocol
from search_space.model import build
from search_space.onnx_export import (
    INPUT_NAME,
    ONNX_TOLERANCE,
    OUTPUT_NAME,
    OnnxCheck,
    export_onnx,
    measure_onnx,
    missing_packages,
    onnxruntime_session,
)
from search_space.registry import arch_names, get_arch
from tests.support import TINY, run_process
from tests.test_deploy import randomise_batchnorms, smallest_input

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

QUICK = Protocol(warmup=1, min_repeats=4, max_repeats=12, budget_s=5.0, tolerance=0.05)


def declared_shape(value: onnx.ValueInfoProto) -> list[int]:
    return [dim.dim_value for dim in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> OnnxCheck:
    model = build(TINY, num_classes=3)
    return export_onnx(model, TINY.input_size, tmp_path_factory.mktemp("tiny") / "tiny.onnx")


# Every module and option of the space, each at least once: the paper's two networks (three
# towers, the full decoder), one tower without a decoder, the high-level decoder alone, four
# towers of backbone B, and every head. The other registered architectures wire these same
# modules otherwise (a torch.export each costs 10-40 s on two cores).
EXPORTED = (
    "dfanet_a", "dfanet_b", "xception_a", "backbone_a_x2_hl", "backbone_b_x4",
    "aspp_backbone_a", "icnet_backbone_a", "bisenet_backbone_a",
)  # fmt: skip


def test_the_exported_kinds_are_registered() -> None:
    assert set(EXPORTED) <= set(arch_names())
    assert {get_arch(name).head for name in EXPORTED} == {"dfa", "aspp", "icnet", "bisenet"}
    assert {get_arch(name).towers for name in EXPORTED} == {1, 2, 3, 4}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_onnx_equals_eager(name: str, tmp_path: Path) -> None:
    size = smallest_input(get_arch(name))
    model = build(get_arch(name).replace(input_size=size), num_classes=5).train()
    randomise_batchnorms(model)  # a fresh batch norm is the identity: nothing to get wrong
    path = tmp_path / "nested" / f"{name}.onnx"
    check = export_onnx(model, size, path)
    assert check.passed, check.describe()
    assert check.logits_shape == (1, 5, *size)
    assert model.training  # the caller's model is left as it came
    written = onnx.load(path)
    onnx.checker.check_model(written, full_check=True)
    ((image,), (logits,)) = written.graph.input, written.graph.output
    assert (image.name, declared_shape(image)) == (INPUT_NAME, [1, 3, *size])
    assert (logits.name, declared_shape(logits)) == (OUTPUT_NAME, [1, 5, *size])
    assert sorted(path.parent.iterdir()) == [path]  # no temporary or external-weights file


def test_check_rule_and_description() -> None:
    check = OnnxCheck(Path("/x.onnx"), (64, 128), (1, 19, 64, 128), 4.5e-8, 0.2)
    assert check.passed
    assert check.describe() == (
        "ONNX: /x.onnx, 1x3x64x128 -> 1x19x64x128 logits, largest logit difference 4.5e-08 "
        f"(tolerance {ONNX_TOLERANCE:.0e} of the largest logit, 0.20)"
    )
    over = OnnxCheck(Path("/x.onnx"), (64, 128), (1, 19, 64, 128), 3e-5, 0.2, tolerance=1e-4)
    assert not over.passed  # 3e-5 > 1e-4 of 0.2: the rule is relative
    assert over.describe().endswith(": OVER the tolerance")


def test_measure_onnx_is_sane(tiny_export: OnnxCheck) -> None:
    result = measure_onnx(tiny_export.path, threads=1, protocol=QUICK)
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert QUICK.min_repeats <= result.repeats <= QUICK.max_repeats
    assert (result.batch, result.input_size, result.device) == (1, TINY.input_size, "cpu")
    assert (result.dtype, result.threads, result.path) == ("fp32", 1, "onnxruntime")


def test_session_threads(tiny_export: OnnxCheck) -> None:
    session = onnxruntime_session(tiny_export.path, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="threads must be >= 1"):
        onnxruntime_session(tiny_export.path, threads=0)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no ONNX file at .*missing\.onnx"):
        onnxruntime_session(tmp_path / "missing.onnx")


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="onnxruntime-gpu"
)
def test_cuda_without_onnxruntime_gpu_is_refused(tiny_export: OnnxCheck) -> None:
    with pytest.raises(ValueError, match="CUDA needs onnxruntime-gpu"):
        onnxruntime_session(tiny_export.path, device="cuda")


def test_unwritable_path_is_named_before_exporting(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=r"cannot write the ONNX file .*blocker/tiny\.onnx"):
        export_onnx(build(TINY), TINY.input_size, blocker / "tiny.onnx")


def test_failed_export_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_export(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(RuntimeError, match="unsupported operator"):
        export_onnx(build(TINY), TINY.input_size, tmp_path / "tiny.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package", ["onnx", "onnxruntime", "onnxscript"])
def test_missing_package_says_how_to_install(
    package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what `import` sees when it is absent
    assert missing_packages() == (package,)
    with pytest.raises(
        ImportError, match=rf"{package} is not installed.*pip install -e '\.\[onnx\]'"
    ):
        export_onnx(build(TINY), TINY.input_size, tmp_path / "tiny.onnx")


@pytest.mark.slow
def test_search_space_imports_without_the_onnx_packages() -> None:
    blocked = "sys.modules.update(onnx=None, onnxruntime=None, onnxscript=None)"
    code = f"import sys; {blocked}; import search_space, search_space.onnx_export"
    result = run_process([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
