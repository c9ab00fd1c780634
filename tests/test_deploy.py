"""The deployed path computes what the eager model computes, for every registered architecture."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from search_space.deploy import FP32_TOLERANCE, DeployedModel, deploy, fold_batchnorms
from search_space.latency import pinned_threads
from search_space.layers import ConvBNReLU, SeparableConv
from search_space.model import build
from search_space.registry import arch_names, get_arch
from search_space.spec import ArchSpec, SpecError
from tests.support import TINY as SHARED_TINY
from tests.support import run_process

NAMES = arch_names()
TINY = SHARED_TINY.replace(input_size=(32, 32))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The suite often shares two cores with other jobs; two OpenMP threads then stall on each
    # other's barriers (seen: 175 s instead of 3 s for this file). One thread never waits.
    with pinned_threads(1):
        yield


def smallest_input(spec: ArchSpec) -> tuple[int, int]:
    """The smallest square side the spec accepts, made odd-sized so that every resize runs."""
    side = next(s for s in range(16, 4097, 16) if _accepts(spec, s))
    return side + 8, 2 * side + 24


def _accepts(spec: ArchSpec, side: int) -> bool:
    try:
        spec.replace(input_size=(side, side))
    except SpecError:
        return False
    return True


def randomise_batchnorms(model: nn.Module, seed: int = 1) -> None:
    """Statistics and affine parameters away from the identity that a fresh BN computes."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.BatchNorm2d):
                continue
            n = module.num_features
            module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            if module.track_running_stats:
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def assert_close_to_eager(fast: torch.Tensor, eager: torch.Tensor, tolerance: float) -> None:
    assert fast.shape == eager.shape
    assert torch.isfinite(fast).all()
    deviation = (fast.float() - eager).abs().max() / eager.abs().max()
    assert deviation <= tolerance, f"max |fast - eager| / max |eager| = {deviation:.2e}"


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_equals_eager(name: str) -> None:
    size = smallest_input(get_arch(name))
    model = build(get_arch(name).replace(input_size=size), num_classes=5).eval()
    randomise_batchnorms(model)
    fast = deploy(model)
    image = torch.randn(2, 3, *size)
    with torch.no_grad():
        eager = model(image)
    assert eager.std() > 1e-3  # random statistics keep the logits far from constant
    assert_close_to_eager(fast(image), eager, FP32_TOLERANCE)
    assert fast.fold_report.left == ()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.fold_report.folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_model_left_untouched() -> None:
    model = build(TINY, num_classes=3).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    deploy(model)
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_batch_norm_not_after_a_conv_is_left_in_place() -> None:
    model = nn.Sequential(
        ConvBNReLU(3, 4),
        nn.Conv2d(4, 4, 1),
        nn.ReLU(),
        nn.BatchNorm2d(4),  # after a ReLU: folding it into the conv would change the result
        SeparableConv(4, 6),
        nn.Conv2d(6, 6, 1),
        nn.BatchNorm2d(6, track_running_stats=False),  # normalises by the batch: no fold
    ).eval()
    randomise_batchnorms(model)
    fast = deploy(model, channels_last=False)
    assert fast.fold_report.folded == 2
    assert fast.fold_report.left == ("3", "6")  # names in the given model
    image = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        eager = model(image)
    assert_close_to_eager(fast(image), eager, FP32_TOLERANCE)


def test_folding_needs_eval_mode() -> None:
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorms(ConvBNReLU(3, 4).train())


@pytest.mark.parametrize(("dtype", "tolerance"), [("bf16", 3e-2), ("fp16", 5e-3)])
def test_half_precision_weights(dtype: str, tolerance: float) -> None:
    model = build(TINY, num_classes=3).eval()
    randomise_batchnorms(model)
    fast = deploy(model, dtype=dtype)
    image = torch.randn(1, 3, 32, 32)
    logits = fast(image)
    assert logits.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    with torch.no_grad():
        assert_close_to_eager(logits, model(image), tolerance)
    assert fast.path == f"folded+channels_last+{dtype}"


def test_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="fp32"):
        deploy(nn.Conv2d(3, 3, 1), dtype="int8")


@pytest.mark.slow
def test_compiled_path_equals_eager() -> None:
    """torch.compile with freezing, on the tiniest network (compiling takes seconds on a CPU)."""
    model = build(TINY, num_classes=3).eval()
    randomise_batchnorms(model)
    fast = deploy(model, compile=True)
    assert isinstance(fast, DeployedModel)
    assert fast.path == "folded+channels_last+compiled"
    assert not fast.cuda_graphs
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        eager = model(image)
    assert_close_to_eager(fast(image), eager, FP32_TOLERANCE)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_retain_freed_memory() -> None:
    # In a child process: malloc's settings cannot be undone, and would outlive this test.
    code = "from search_space.deploy import retain_freed_memory as r; assert r()"
    assert run_process([sys.executable, "-c", code]).returncode == 0


def test_sigmoid_gate_folds_too() -> None:
    """The SE-style FC-attention gate (conv with bias, sigmoid, no BN) beside folded blocks."""
    spec = TINY.replace(fc_attention_gate="sigmoid")  # TINY has FC attention
    model = build(spec, num_classes=3).eval()
    randomise_batchnorms(model)
    fast = deploy(model)
    assert fast.fold_report.left == ()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager = model(image)
    assert_close_to_eager(fast(image), eager, FP32_TOLERANCE)
