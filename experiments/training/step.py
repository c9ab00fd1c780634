"""One training step (forward, loss, backward, optimiser step), built once per run from its speed
settings, so that the Trainer and the training-speed benchmark run the same code.

A setting is a precision (fp32; bf16 autocast; fp16 autocast with loss scaling), a memory format
(NCHW or channels-last), `cudnn.benchmark` off or on, and a step mode:
- eager: the step as written;
- graph (CUDA): the whole step captured once in a CUDA graph and replayed, so the CPU launches
  one graph instead of hundreds of kernels a step. Shapes must stay fixed, and nothing in the
  step may need a value on the host: the learning rate is therefore a tensor on the device
  (`make_optimizer`), which the LR scheduler fills in place between steps and the fused SGD
  kernel reads inside the graph, and fp16's GradScaler hands its scale and inf-check to that
  fused kernel rather than reading them on the host;
- compile: the model compiled by `torch.compile` (its backward with it); the first call pays
  the compilation.

`make_step(model, optimizer, loss, setting, device)` returns a callable `step(image, label)`
that trains one step and returns the loss as a detached tensor on the device (read it when you
need it: reading syncs). The caller steps its LR scheduler between calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from experiments.training.losses import SegmentationLoss
from search_space.outputs import TrainOutput

Precision = Literal["fp32", "bf16", "fp16"]
Mode = Literal["eager", "graph", "compile"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
MODES: tuple[Mode, ...] = ("eager", "graph", "compile")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Spelling of the flags in a setting's name: `bf16+cl+bench+graph`.
CHANNELS_LAST, BENCHMARK = "cl", "bench"
# Eager steps a graphed step runs before capturing: the optimiser's momentum buffers, the
# GradScaler's scale and cuDNN's algorithm choices must exist before capture (PyTorch's
# whole-network capture recipe warms up 3 iterations on a side stream).
GRAPH_WARMUP_CALLS = 3


@dataclass(frozen=True)
class StepSetting:
    precision: Precision = "fp32"
    channels_last: bool = False
    cudnn_benchmark: bool = False
    step_mode: Mode = "eager"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.step_mode not in MODES:
            raise ValueError(f"step_mode must be one of {MODES}, got {self.step_mode!r}")

    @property
    def name(self) -> str:
        flags = [CHANNELS_LAST] * self.channels_last + [BENCHMARK] * self.cudnn_benchmark
        mode = [] if self.step_mode == "eager" else [self.step_mode]
        return "+".join([self.precision, *flags, *mode])

    @classmethod
    def parse(cls, name: str) -> StepSetting:
        """`fp32`, `bf16+cl`, `fp16+cl+bench+graph`: a precision, then any of `cl` (channels-
        last), `bench` (cudnn.benchmark) and one mode (`graph` or `compile`), in any order."""
        precision, *flags = name.strip().split("+")
        modes = [flag for flag in flags if flag in MODES]
        unknown = [flag for flag in flags if flag not in (CHANNELS_LAST, BENCHMARK, *MODES)]
        if precision not in PRECISIONS or unknown or len(modes) > 1 or len(set(flags)) < len(flags):
            raise ValueError(
                f"cannot read the step setting {name!r}: expected a precision "
                f"({'|'.join(PRECISIONS)}), then any of +{CHANNELS_LAST} (channels-last), "
                f"+{BENCHMARK} (cudnn.benchmark) and one of +graph, +compile"
            )
        return cls(
            precision=precision,  # type: ignore[arg-type]
            channels_last=CHANNELS_LAST in flags,
            cudnn_benchmark=BENCHMARK in flags,
            step_mode=modes[0] if modes else "eager",
        )

    def unsupported(self, device: torch.device) -> str | None:
        """Why this setting cannot run on `device` (None: it can). Every loss can be captured:
        OHEM's selection has a fixed size (`losses.SegmentationLoss.ohem_loss`)."""
        if device.type != "cuda":
            if self.precision == "fp16":
                return "fp16 with loss scaling runs on CUDA only"
            if self.cudnn_benchmark:
                return "cudnn.benchmark is cuDNN's: CUDA only"
            if self.step_mode == "graph":
                return "CUDA graphs need CUDA"
        return None


def precision_of_amp(amp: bool) -> Precision:
    """What the former `trainer.amp` switch meant on CUDA: bf16 autocast where the GPU has bf16,
    else fp16 with loss scaling; fp32 when off."""
    if not amp:
        return "fp32"
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"


def make_optimizer(
    parameters: Iterable[nn.Parameter],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    device: torch.device,
) -> torch.optim.SGD:
    """SGD whose learning rate is a tensor on `device`, updated by the fused kernel.

    An LR scheduler fills a tensor learning rate in place, so the value a step reads is always
    the schedule's, captured step or not. Only the fused implementation takes the rate as a
    tensor without reading it on the host (the foreach and for-loop ones pass it as a scalar,
    which is a device-to-host copy), and only it applies GradScaler's scale on the device.
    """
    return torch.optim.SGD(
        parameters,
        lr=torch.tensor(lr, device=device),
        momentum=momentum,
        weight_decay=weight_decay,
        fused=True,
    )


class EagerStep:
    """The step as written: autocast forward, loss, (scaled) backward, optimiser step."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: SegmentationLoss,
        setting: StepSetting,
        device: torch.device,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.memory_format = (
            torch.channels_last if setting.channels_last else torch.contiguous_format
        )
        self.autocast = torch.autocast(
            device.type,
            dtype=AUTOCAST_DTYPES.get(setting.precision, torch.float32),
            enabled=setting.precision != "fp32",
            # PyTorch's CUDA-graph notes: autocast in a captured region without its cache of
            # cast weights, which would outlive the capture.
            cache_enabled=setting.step_mode != "graph",
        )
        # bf16 keeps fp32's exponent range: only fp16 needs its loss scaled.
        self.scaler = torch.amp.GradScaler(device.type, enabled=setting.precision == "fp16")

    def forward_loss(self, image: Tensor, label: Tensor) -> Tensor:
        with self.autocast:
            output = self.model(image.contiguous(memory_format=self.memory_format))
        if not isinstance(output, TrainOutput):
            raise TypeError("a model in train mode must return a TrainOutput")
        return self.loss(output, label)

    def __call__(self, image: Tensor, label: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_loss(image, label)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


class Captured(NamedTuple):
    """A captured step: its graph, the input tensors it reads and the loss tensor it writes."""

    graph: torch.cuda.CUDAGraph
    image: Tensor
    label: Tensor
    loss: Tensor


class GraphedStep:
    """An eager step captured whole in a CUDA graph after `GRAPH_WARMUP_CALLS` eager calls, then
    replayed on copies of each batch into the graph's own input tensors. Every call is a real
    training step: the warm-up calls train as the eager step does."""

    def __init__(self, eager: EagerStep) -> None:
        self.eager = eager
        self.scaler = eager.scaler
        self.calls = 0
        self.captured: Captured | None = None

    def __call__(self, image: Tensor, label: Tensor) -> Tensor:
        if self.captured is None:
            if self.calls < GRAPH_WARMUP_CALLS:
                self.calls += 1
                return self._on_side_stream(image, label)
            self.captured = self._capture(image, label)
        self.captured.image.copy_(image)
        self.captured.label.copy_(label)
        self.captured.graph.replay()
        return self.captured.loss.clone()  # the next replay overwrites it

    def _on_side_stream(self, image: Tensor, label: Tensor) -> Tensor:
        # PyTorch's CUDA-graph notes: the warm-up before a capture must run on a side stream.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss = self.eager(image, label)
        torch.cuda.current_stream().wait_stream(side)
        return loss

    def _capture(self, image: Tensor, label: Tensor) -> Captured:
        static_image, static_label = image.clone(), label.clone()
        graph = torch.cuda.CUDAGraph()
        # thread_local: a DataLoader's pin-memory thread may allocate while this thread captures.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            loss = self.eager(static_image, static_label)
        return Captured(graph, static_image, static_label, loss)


TrainStep = EagerStep | GraphedStep


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: SegmentationLoss,
    setting: StepSetting,
    device: torch.device,
) -> TrainStep:
    """The step for `setting`; the model is moved to its memory format (in place: the
    optimiser's parameters stay the same objects), and `cudnn.benchmark`, a process-wide flag,
    is set to the setting's. Build the optimiser with `make_optimizer` for the graph mode."""
    reason = setting.unsupported(device)
    if reason:
        raise ValueError(f"step setting {setting.name} on {device.type}: {reason}")
    if setting.step_mode == "graph" and not _tensor_lr_fused(optimizer):
        raise ValueError("a graphed step needs make_optimizer's SGD (fused, tensor lr)")
    if setting.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = setting.cudnn_benchmark
    if setting.step_mode == "compile":
        # The model alone, its backward with it: the loss and the optimiser stay eager. On
        # torch 2.13's CPU backend, model and loss compiled together gave some parameters zero
        # gradients (tests/test_benchmarks_training_speed.py checks what is here).
        compiled = torch.compile(model, dynamic=False)
        return EagerStep(compiled, optimizer, loss, setting, device)
    eager = EagerStep(model, optimizer, loss, setting, device)
    return GraphedStep(eager) if setting.step_mode == "graph" else eager


def restore_tensor_lr(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """After `optimizer.load_state_dict`: a checkpoint written by a float-rate SGD (before
    `make_optimizer`) sets its float rate and unfused kernel; back to `make_optimizer`'s."""
    for group in optimizer.param_groups:
        group["lr"] = torch.as_tensor(group["lr"], device=device).clone()
        group["fused"] = True


def _tensor_lr_fused(optimizer: torch.optim.Optimizer) -> bool:
    return all(
        group.get("fused") and isinstance(group["lr"], Tensor) for group in optimizer.param_groups
    )
