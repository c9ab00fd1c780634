"""The training step's speed settings (`experiments.training.step`) train as the eager step does,
and `python -m experiments.benchmarks.training_speed` runs end to end on a CPU; no timing
asserted. The CUDA-graph and CUDA compile checks run only where CUDA is."""

from __future__ import annotations

import copy
import csv
import itertools
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from experiments.benchmarks.training_speed import all_settings, main, parse_args
from experiments.data import NUM_CLASSES
from experiments.training.losses import LossConfig, SegmentationLoss
from experiments.training.step import (
    GRAPH_WARMUP_CALLS,
    StepSetting,
    make_optimizer,
    make_step,
)
from search_space.model import build
from tests.support import SMALL, TINY, exit_code

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
) -> tuple[list[float], list[list[torch.Tensor]]]:
    """`steps` steps of `make_step`'s step, the LR schedule stepped between them: the losses,
    and the parameters after each step."""
    model = model.to(device)
    optimizer = make_optimizer(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, device=device
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step = make_step(model, optimizer, SegmentationLoss(LOSS), setting, device)
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
        ("fp32+compile", StepSetting(mode="compile")),
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
        name: StepSetting.parse(name).unsupported(CPU, LOSS)
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
        make_step(model, optimizer, SegmentationLoss(LOSS), StepSetting(mode="graph"), CPU)


def test_ohem_cannot_be_captured() -> None:
    graph = StepSetting(cudnn_benchmark=True, mode="graph")
    assert "not capturable" in graph.unsupported(torch.device("cuda"), OHEM)
    assert graph.unsupported(torch.device("cuda"), LOSS) is None
    assert StepSetting().unsupported(torch.device("cuda"), OHEM) is None


def test_all_settings_on_each_device() -> None:
    cpu = [s.name for s in all_settings(CPU) if s.unsupported(CPU, LOSS) is None]
    eager = ["fp32", "fp32+cl", "bf16", "bf16+cl"]
    assert cpu == eager + [f"{name}+compile" for name in eager]
    cuda = [s.name for s in all_settings(torch.device("cuda"))]
    assert len(cuda) == len(set(cuda)) == 24
    assert {"fp16+cl", "fp32+bench", "bf16+cl+bench+graph", "fp16+bench+compile"} <= set(cuda)


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


@pytest.mark.slow
@pytest.mark.parametrize(
    "device", [CPU, pytest.param(torch.device("cuda"), marks=needs_cuda)], ids=str
)
def test_the_compiled_step_trains_as_the_eager_one(device: torch.device) -> None:
    """Four steps under a changing learning rate: the compiled step's losses and parameters are
    the eager step's within fp32 rounding (the CPU compilation takes about a minute)."""
    eager, eager_parameters = train(tiny_model(), StepSetting(), device, 4)
    compiled, compiled_parameters = train(tiny_model(), StepSetting(mode="compile"), device, 4)
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
def test_a_graph_replay_reads_the_schedule() -> None:
    """The learning rate drops to 0 after the capture: replays must stop moving the weights (a
    rate baked into the graph would not)."""
    last = GRAPH_WARMUP_CALLS + 2
    setting = StepSetting(cudnn_benchmark=True, mode="graph")
    _, parameters = train(tiny_model(), setting, torch.device("cuda"), last + 3,
                          partial(frozen_after, last))  # fmt: skip
    assert moved(parameters) == [True] * (last - 1) + [False] * 3


# ---------------------------------------------------------------------------------- command
def test_defaults() -> None:
    args = parse_args([])
    assert (args.arch, args.recipe, args.device, args.settings) == ("dfanet_a", "demo", "auto",
                                                                    "all")  # fmt: skip
    assert (args.batch_size, args.input_size, args.loader_workers) == (None, None, None)
    assert args.processes == (1, 2, 4, 8)


def test_arguments() -> None:
    args = parse_args(["trainer=cityscapes", "--settings", "fp32,bf16+cl+bench+graph",
                       "processes=4,1", "input_size=512x1024", "trainer.lr=0.05"])  # fmt: skip
    assert args.recipe == "cityscapes"
    assert [s.name for s in args.settings] == ["fp32", "bf16+cl+bench+graph"]
    assert args.processes == (1, 4)
    assert args.input_size == (512, 1024)
    assert args.overrides == ["trainer.lr=0.05"]
    assert parse_args(["settings=none"]).settings == "none"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("settings=fp32+turbo", "cannot read the step setting 'fp32+turbo'"),
        ("processes=0", "expected a positive integer, got '0'"),
        ("recipe=fast", "--recipe/--trainer: invalid choice: 'fast'"),
        ("arch=dfanet_c", "--arch: invalid choice: 'dfanet_c'"),
        ("study.name=x", "expected trainer.KEY=VALUE or dataset.KEY=VALUE"),
    ],
)
def test_bad_arguments(argument: str, message: str, capsys: pytest.CaptureFixture) -> None:
    assert exit_code(main, [argument]) == 2
    assert message in capsys.readouterr().err


def test_a_wrong_override_fails_before_any_work(capsys: pytest.CaptureFixture) -> None:
    assert exit_code(main, ["device=cpu", "trainer.batch_size=0", "settings=none"]) == 2
    assert "trainer.batch_size must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_run_on_a_cpu(
    synthetic_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The real command at 32x64, batch 2, 3 timed steps: a line per measurement as it goes
    (the measuring processes' too), then the table, saved as CSV and Markdown."""
    dataset = [f"dataset.root={synthetic_root}", *(f"dataset.{k}={v}" for k, v in SMALL.items())]
    code = main(["arch=xception_b", "device=cpu", "input_size=32x64", "batch_size=2", "steps=3",
                 "settings=fp32,bf16+cl,fp16,fp32+graph", "processes=1,2", "loader_workers=0",
                 f"out={tmp_path}", "trainer.eval_batch_size=2", *dataset])  # fmt: skip
    assert code == 0
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert "skipped fp16: fp16 with loss scaling runs on CUDA only" in lines
    assert "skipped fp32+graph: CUDA graphs need CUDA" in lines
    done = [line.split(":")[0] for line in lines if ": first step " in line]
    assert done == ["step fp32", "step bf16+cl", "Trainer", "loader, PNG, 0 workers",
                    "loader, cached, 0 workers", "Trainer x2"]  # fmt: skip
    assert "| measurement | processes | first step s |" in out
    (csv_path,) = tmp_path.glob("training_speed_cpu1t_xception_b_32x64_b2_*.csv")
    with csv_path.open() as handle:
        records = list(csv.DictReader(handle))
    assert [(r["what"], r["processes"]) for r in records] == [
        ("step fp32", "1"), ("step bf16+cl", "1"), ("Trainer", "1"),
        ("loader, PNG, 0 workers", "1"), ("loader, cached, 0 workers", "1"), ("Trainer x2", "2"),
    ]  # fmt: skip
    assert all(float(r["images_per_s"]) > 0 and r["note"] == "" for r in records)
    assert float(records[0]["of_best_bare_step"]) <= 1 and records[-1]["of_one_process"]
    assert all(float(r["final_loss"]) > 0 for r in records if r["what"].startswith(("step", "T")))
    assert "| Trainer x2 | 2 |" in csv_path.with_suffix(".md").read_text()
