"""The training step's speed settings (`experiments.training.step`) train as the eager step does,
learning-rate schedule included; no timing asserted. The CUDA-graph and CUDA compile checks run
only where CUDA is."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch import nn

from experiments.data import NUM_CLASSES
from experiments.training.losses import LossConfig, SegmentationLoss
from experiments.training.step import (
    GRAPH_WARMUP_CALLS,
    StepSetting,
    make_optimizer,
    make_step,
)
from search_space.model import build
from tests.support import TINY

CPU = torch.device("cpu")
SIZE = (32, 64)
LOSS = LossConfig(ignore_index=255, ohem=False, ohem_threshold=0.7, ohem_min_kept=100)
OHEM = LossConfig(ignore_index=255, ohem=True, ohem_threshold=0.7, ohem_min_kept=100)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return build(TINY.replace(input_size=SIZE), NUM_CLASSES).train()


def batches(count: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(2, 3, *SIZE, generator=generator).to(device),
            torch.randint(0, NUM_CLASSES, (2, *SIZE), generator=generator).to(device),
        )
        for _ in range(count)
    ]


def halving(step: int) -> float:
    """An LR multiplier that changes every step, so a step that ignored the schedule shows."""
    return 0.5**step


def frozen_after(last: int, step: int) -> float:
    """Full rate until step `last`, then 0: from there on no parameter may move."""
    return 1.0 if step < last else 0.0


def train(
    model: nn.Module,
    setting: StepSetting,
    device: torch.device,
    steps: int,
    schedule: Callable[[int], float] = halving,
    loss: LossConfig = LOSS,
) -> tuple[list[float], list[list[torch.Tensor]]]:
    """`steps` steps of `make_step`'s step, the LR schedule stepped between them: the losses,
    and the parameters after each step."""
    model = model.to(device)
    optimizer = make_optimizer(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, device=device
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step = make_step(model, optimizer, SegmentationLoss(loss), setting, device)
    losses, parameters = [], []
    for image, label in batches(steps, device):
        losses.append(float(step(image, label)))
        scheduler.step()
        parameters.append([p.detach().clone() for p in model.parameters()])
    return losses, parameters


def moved(parameters: list[list[torch.Tensor]]) -> list[bool]:
    """Whether any parameter changed, from each step to the next."""
    return [
        any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        for before, after in itertools.pairwise(parameters)
    ]


# ------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("fp32", StepSetting()),
        ("bf16+cl", StepSetting("bf16", channels_last=True)),
        ("fp16+cl+bench+graph", StepSetting("fp16", True, True, "graph")),
        ("fp32+compile", StepSetting(step_mode="compile")),
    ],
)
def test_a_setting_is_spelt_and_read_back(name: str, setting: StepSetting) -> None:
    assert setting.name == name
    assert StepSetting.parse(name) == setting


def test_flags_read_in_any_order() -> None:
    assert StepSetting.parse("bf16+graph+bench+cl").name == "bf16+cl+bench+graph"


@pytest.mark.parametrize("name", ["fp64", "cl+fp32", "fp32+graph+compile", "fp32+cl+cl", "fp32+x"])
def test_a_wrong_setting_says_what_is_expected(name: str) -> None:
    with pytest.raises(ValueError, match=r"expected a precision \(fp32\|bf16\|fp16\)"):
        StepSetting.parse(name)


def test_cuda_only_settings_are_refused_on_a_cpu_with_the_reason() -> None:
    reasons = {
        name: StepSetting.parse(name).unsupported(CPU)
        for name in ("fp32+cl", "bf16+compile", "fp16", "fp32+bench", "fp32+graph")
    }
    assert reasons == {
        "fp32+cl": None,
        "bf16+compile": None,
        "fp16": "fp16 with loss scaling runs on CUDA only",
        "fp32+bench": "cudnn.benchmark is cuDNN's: CUDA only",
        "fp32+graph": "CUDA graphs need CUDA",
    }
    model = tiny_model()
    optimizer = make_optimizer(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0, device=CPU)
    with pytest.raises(ValueError, match="step setting fp32\\+graph on cpu: CUDA graphs need"):
        make_step(model, optimizer, SegmentationLoss(LOSS), StepSetting(step_mode="graph"), CPU)


def test_every_setting_runs_on_cuda() -> None:
    """OHEM included: its selection has a fixed size (tests/test_losses.py)."""
    names = ("fp16+cl+bench+graph", "bf16+compile", "fp32")
    assert all(StepSetting.parse(name).unsupported(torch.device("cuda")) is None for name in names)


# ----------------------------------------------------------------------- training equivalence
def test_the_tensor_lr_optimizer_trains_as_plain_sgd() -> None:
    """make_optimizer's SGD (fused, learning rate a tensor the scheduler fills) gives the
    parameters of torch's default SGD with a float learning rate, step for step."""
    model = tiny_model()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, halving)
    loss = SegmentationLoss(LOSS)
    expected = []
    for image, label in batches(4, CPU):
        optimizer.zero_grad()
        value = loss(reference(image), label)
        value.backward()
        optimizer.step()
        scheduler.step()
        expected.append(float(value.detach()))
    losses, parameters = train(model, StepSetting(), CPU, 4)
    assert losses == pytest.approx(expected, rel=1e-6)
    for got, want in zip(parameters[-1], reference.parameters(), strict=True):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)


def test_the_schedule_reaches_the_step() -> None:
    _, parameters = train(tiny_model(), StepSetting(), CPU, 5, partial(frozen_after, 3))
    assert moved(parameters) == [True, True, False, False]  # steps 0-2 at full rate, then lr 0


def test_bf16_channels_last_step_trains_near_fp32() -> None:
    fp32, _ = train(tiny_model(), StepSetting(), CPU, 3)
    bf16, _ = train(tiny_model(), StepSetting("bf16", channels_last=True), CPU, 3)
    assert bf16 == pytest.approx(fp32, rel=2e-2)  # bf16 keeps 8 bits of mantissa


# Compiled kernels sum in another order than eager ones: fp32 rounding, nothing more.
COMPILED_RTOL = 1e-5
COMPARED_STEPS = 6


@pytest.mark.slow
@pytest.mark.parametrize(
    "device", [CPU, pytest.param(torch.device("cuda"), marks=needs_cuda)], ids=str
)
def test_the_compiled_step_trains_as_the_eager_one(device: torch.device) -> None:
    """Six steps under a learning rate the scheduler halves every step: the compiled step's
    losses and parameters are the eager step's within fp32 rounding (slow: 147 s on a busy
    2-core CPU, nearly all of it compiling the forward and backward)."""
    steps, compile_mode = COMPARED_STEPS, StepSetting(step_mode="compile")
    eager, eager_parameters = train(tiny_model(), StepSetting(), device, steps)
    compiled, compiled_parameters = train(tiny_model(), compile_mode, device, steps)
    assert compiled == pytest.approx(eager, rel=COMPILED_RTOL)
    for got, want in zip(compiled_parameters[-1], eager_parameters[-1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize(
    ("name", "rtol"),
    [("fp32", 1e-4), ("fp32+cl+bench", 1e-4), ("bf16+cl+bench", 1e-2), ("fp16+bench", 1e-2)],
)
def test_the_graphed_step_trains_as_the_eager_one(name: str, rtol: float) -> None:
    """Eight steps, the first `GRAPH_WARMUP_CALLS` eager, one captured, the rest replayed, under
    a learning rate that halves every step: the graphed losses are the eager ones within the
    precision's rounding (cuDNN's and upsampling's backward add atomically: the order varies
    from run to run, so not bit for bit)."""
    cuda = torch.device("cuda")
    setting = StepSetting.parse(name)
    eager, eager_parameters = train(tiny_model(), setting, cuda, 8)
    graphed_setting = StepSetting.parse(f"{name}+graph")
    graphed, graphed_parameters = train(tiny_model(), graphed_setting, cuda, 8)
    assert graphed == pytest.approx(eager, rel=rtol)
    for got, want in zip(graphed_parameters[-1], eager_parameters[-1], strict=True):
        torch.testing.assert_close(got, want, rtol=10 * rtol, atol=1e-4)


@needs_cuda
def test_the_graphed_step_captures_ohem() -> None:
    """OHEM's fixed-size selection inside a CUDA graph: the captured step trains as the eager
    one (nothing read on the host, so the capture does not fail either)."""
    cuda = torch.device("cuda")
    setting = StepSetting(cudnn_benchmark=True)
    eager, _ = train(tiny_model(), setting, cuda, 8, loss=OHEM)
    graphed_setting = StepSetting(cudnn_benchmark=True, step_mode="graph")
    graphed, _ = train(tiny_model(), graphed_setting, cuda, 8, loss=OHEM)
    assert graphed == pytest.approx(eager, rel=1e-4)


@needs_cuda
def test_a_graph_replay_reads_the_schedule() -> None:
    """The learning rate drops to 0 after the capture: replays must stop moving the weights (a
    rate baked into the graph would not)."""
    last = GRAPH_WARMUP_CALLS + 2
    setting = StepSetting(cudnn_benchmark=True, step_mode="graph")
    _, parameters = train(tiny_model(), setting, torch.device("cuda"), last + 3,
                          partial(frozen_after, last))  # fmt: skip
    assert moved(parameters) == [True] * (last - 1) + [False] * 3
