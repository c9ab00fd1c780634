"""The trainer: SGD + poly schedule with warm-up, CE (+ OHEM, + auxiliaries), evaluation every K
steps, checkpoint and resume, DDP under torchrun.

Training is counted in steps (iterations), as the paper's recipe is; the data loader is cycled.
A step is `experiments.training.step`'s, built from the speed settings of the device's kind
(`trainer.cuda` or `trainer.cpu`): the step the training-speed benchmark measures. The per-step
losses stay on the device and are read every `trainer.loss_fetch_every` steps, so that the CPU
does not wait for the device after every step.
The validation curve it records at every evaluation is what a study reads to stop a trial early:
`on_evaluation(step, miou)` is called after each evaluation and may raise to stop the run.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from experiments.config import check_at_least, checked_section
from experiments.data.device_transforms import AugmentOn
from experiments.training.evaluation import eval_loader, evaluate
from experiments.training.losses import LossConfig, SegmentationLoss
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import Runtime
from experiments.training.step import (
    StepSetting,
    make_optimizer,
    make_step,
    precision_of_amp,
    restore_tensor_lr,
)
from experiments.training.stream import (
    SeededItems,
    TrainingStream,
    batch_finisher,
    check_one_batch,
)
from search_space.model import SegmentationNet


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the run cannot recover, so it stops here."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(
            f"loss is {value} at step {step}: training diverged (lower trainer.lr, raise "
            "trainer.warmup_steps, or train in fp32: trainer.cuda.precision=fp32)"
        )
        self.step = step


@dataclass(frozen=True)
class TrainerConfig:
    """A training recipe: the `trainer:` section of the config (`conf/trainer/base.yaml` lists
    every field with its meaning and default)."""

    steps: int
    batch_size: int  # global: split over the processes of a distributed run
    lr: float
    momentum: float
    weight_decay: float
    warmup_steps: int
    poly_power: float
    eval_every: int  # 0: evaluate once, at the end
    eval_batch_size: int
    num_workers: int
    scale_range: tuple[float, float]  # relative to the architecture's input size
    augment_on: AugmentOn  # where the scale, crop and flip run (the loader or the device)
    cuda: StepSetting  # the step's speed settings on a CUDA device
    cpu: StepSetting  # ... and on a CPU
    amp: bool | None  # deprecated alias of cuda.precision (None: not set)
    channels_last: bool | None  # deprecated alias of cuda.channels_last (None: not set)
    loss_fetch_every: int  # steps between reads of the losses from the device
    sync_bn: bool  # distributed CUDA runs only
    checkpoint_every: int  # 0: only at the end (when a run directory is given)
    progress: bool
    loss: LossConfig

    def __post_init__(self) -> None:
        check_at_least(self, "trainer", ("steps", "batch_size", "eval_batch_size"), 1)
        check_at_least(self, "trainer", ("loss_fetch_every",), 1)
        non_negative = ("warmup_steps", "eval_every", "num_workers", "checkpoint_every")
        check_at_least(self, "trainer", non_negative, 0)
        if self.lr <= 0:
            raise ValueError(f"trainer.lr must be > 0, got {self.lr}")
        reason = self.cpu.unsupported(torch.device("cpu"))
        if reason:
            raise ValueError(f"trainer.cpu cannot hold {self.cpu.name}: {reason}")
        if self.cpu.channels_last:
            raise ValueError(
                "trainer.cpu.channels_last must be false: channels-last training crashes "
                "torch's CPU backend (a segmentation fault on torch 2.13)"
            )
        if self.amp is not None or self.channels_last is not None:
            warnings.warn(
                "trainer.amp and trainer.channels_last are deprecated: set "
                "trainer.cuda.precision (amp=true: bf16, or fp16 where the GPU lacks bf16) and "
                "trainer.cuda.channels_last",
                FutureWarning,
                stacklevel=2,
            )

    def step_setting(self, device: torch.device) -> StepSetting:
        """The speed settings of `device`'s kind, the deprecated aliases applied on CUDA."""
        if device.type != "cuda":
            return self.cpu
        setting = self.cuda
        if self.amp is not None:
            setting = replace(setting, precision=precision_of_amp(self.amp))
        if self.channels_last is not None:
            setting = replace(setting, channels_last=self.channels_last)
        return setting

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainerConfig:
        return cls(**checked_section(values, "trainer", cls))


@dataclass
class TrainResult:
    steps: int
    scores: SegmentationScores
    curve: list[tuple[int, float]]  # (step, validation mIoU)
    final_loss: float
    losses: list[float]  # the training loss of every step, for the record and for plots
    train_seconds: float  # training steps only, evaluation excluded
    images_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def poly_with_warmup(step: int, *, total: int, warmup: int, power: float) -> float:
    """LR multiplier: linear warm-up to 1, then (1 - progress) ** power down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return (1.0 - min(progress, 1.0)) ** power


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset[tuple[Tensor, Tensor]],
        val_set: Dataset[tuple[Tensor, Tensor]],
        config: TrainerConfig,
        runtime: Runtime,
        *,
        num_classes: int,
        run_dir: Path | None = None,
        on_evaluation: Callable[[int, float], None] | None = None,
        between_steps: Callable[[], None] | None = None,
        seed: int = 0,
        dataset: Mapping[str, Any] | None = None,
    ) -> None:
        """`dataset`: the dataset's config, recorded in the checkpoint so that evaluating it
        later scores it on the data it was trained for. `between_steps()` is called before
        every training step and every evaluation batch: where a caller may stop the run by
        raising, with no step, write or checkpoint cut in half."""
        self.config = config
        self.runtime = runtime
        self.num_classes = num_classes
        self.run_dir = run_dir
        self.on_evaluation = on_evaluation
        self.between_steps = between_steps
        self.seed = seed
        self.dataset = dict(dataset) if dataset is not None else None
        device = runtime.device
        cuda = device.type == "cuda"
        self.setting = config.step_setting(device)
        if runtime.distributed and cuda and config.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if runtime.distributed and self.setting.step_mode == "graph":
            raise ValueError(
                "trainer.cuda.step_mode=graph runs in one process only: DDP's gradient "
                "all-reduce is not captured; use eager or compile under torchrun"
            )
        self.model = model.to(device)
        if self.setting.channels_last:
            # Before DDP wraps it (make_step would do it after): DDP's gradient buckets take
            # the parameters' layout when it is built.
            self.model = self.model.to(memory_format=torch.channels_last)
        self.module = self.model  # the unwrapped network, for checkpoints and evaluation
        if runtime.distributed:
            self.model = DistributedDataParallel(
                self.model, device_ids=[device.index] if cuda else None
            )
        self.optimizer = make_optimizer(
            self.module.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            device=device,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: poly_with_warmup(
                step, total=config.steps, warmup=config.warmup_steps, power=config.poly_power
            ),
        )
        self.loss = SegmentationLoss(config.loss)
        self.train_step = make_step(self.model, self.optimizer, self.loss, self.setting, device)
        if config.batch_size % runtime.world_size:
            raise ValueError(
                f"trainer.batch_size={config.batch_size} must be divisible by the number of "
                f"processes ({runtime.world_size})"
            )
        check_one_batch(len(train_set), config.batch_size)  # type: ignore[arg-type]
        self.train_set = train_set
        self.finish_batch = batch_finisher(train_set)
        self.val_loader = eval_loader(
            val_set, runtime, config.eval_batch_size, min(config.num_workers, 2)
        )
        self.step = 0
        self.curve: list[tuple[int, float]] = []
        self.train_seconds = 0.0
        self.images_seen = 0
        self.losses: list[float] = []
        self.unread_losses: list[Tensor] = []  # on the device, of the steps since the last read

    # ------------------------------------------------------------------------------ data
    def _train_loader(self, dataset: Dataset[tuple[Tensor, Tensor]]) -> DataLoader:
        """Batches from the current step on (`stream.TrainingStream`): after `resume` the
        loader continues where the checkpointed run was."""
        config, runtime = self.config, self.runtime
        stream = TrainingStream(
            len(dataset),  # type: ignore[arg-type]
            batch_size=config.batch_size,
            seed=self.seed,
            start_step=self.step,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )
        return DataLoader(
            SeededItems(dataset),
            batch_size=config.batch_size // runtime.world_size,
            sampler=stream,
            num_workers=config.num_workers,
            pin_memory=runtime.device.type == "cuda",
            persistent_workers=False,
        )

    # ----------------------------------------------------------------------------- training
    def fit(self, until: int | None = None) -> TrainResult:
        """Train to step `until` (default: `config.steps`, which the learning-rate schedule
        always spans, so that a run stopped at a rung and resumed later is the run that never
        stopped), evaluate, checkpoint."""
        config, device = self.config, self.runtime.device
        until = config.steps if until is None else until
        if not self.step <= until <= config.steps:
            raise ValueError(
                f"cannot train to step {until}: the run is at step {self.step} of {config.steps}"
            )
        batches = iter(self._train_loader(self.train_set))
        bar = tqdm(
            total=until,
            initial=self.step,
            unit="step",
            disable=not (config.progress and self.runtime.is_main),
            dynamic_ncols=True,
        )
        self.model.train()
        try:
            while self.step < until:
                if self.between_steps is not None:
                    self.between_steps()
                started = time.perf_counter()
                image, label = self.finish_batch(next(batches), device)
                loss = self.train_step(image, label)
                self.scheduler.step()
                self.unread_losses.append(loss)
                self.step += 1
                evaluate_now = self._every(config.eval_every) and self.step < until
                checkpoint_now = self._every(config.checkpoint_every)
                # Inside the timed span: a read waits for the device to finish the steps since
                # the last one. Evaluations and checkpoints read too, so they read here first.
                read_now = len(self.unread_losses) >= config.loss_fetch_every
                if read_now or evaluate_now or checkpoint_now:
                    self.read_losses()
                self.train_seconds += time.perf_counter() - started
                self.images_seen += len(image) * self.runtime.world_size
                rate = self.images_seen / max(self.train_seconds, 1e-9)
                last = f"{self.losses[-1]:.3f}" if self.losses else "-"
                bar.set_postfix(loss=last, img_s=f"{rate:.1f}", refresh=False)
                bar.update()
                if evaluate_now:
                    self._evaluate_and_report()
                if checkpoint_now:
                    self.save_checkpoint()
            started = time.perf_counter()
            self.read_losses()
            self.train_seconds += time.perf_counter() - started
        finally:
            # A run stopped between steps (a signal, an early stop) still keeps every loss of
            # the steps it trained; a non-finite one is not news to a run that is ending.
            self.read_losses(check=False)
            bar.close()
        self.save_checkpoint()  # before evaluating: a bad validation file must not cost the run
        scores = self._evaluate_and_report()
        self.save_checkpoint()  # again, with the final point of the curve
        return TrainResult(
            steps=self.step,
            scores=scores,
            curve=list(self.curve),
            final_loss=self.losses[-1] if self.losses else math.nan,
            losses=list(self.losses),
            train_seconds=self.train_seconds,
            images_per_second=self.images_seen / max(self.train_seconds, 1e-9),
        )

    def _every(self, steps: int) -> bool:
        """Whether this step is a multiple of `steps` (0: never)."""
        return steps > 0 and self.step % steps == 0

    def read_losses(self, *, check: bool = True) -> None:
        """Move the unread losses to `losses` in one read from the device. `check`: stop at the
        first non-finite one, naming its step, which is therefore found at most
        `loss_fetch_every` steps after it happened (the steps after it are lost anyway)."""
        if not self.unread_losses:
            return
        values = torch.stack(self.unread_losses).tolist()
        first_step = self.step - len(values)
        self.unread_losses.clear()
        for offset, value in enumerate(values):
            if check and not math.isfinite(value):
                raise NonFiniteLossError(first_step + offset, value)
            self.losses.append(value)

    def _evaluate_and_report(self) -> SegmentationScores:
        self.read_losses()  # a diverged run is not worth evaluating
        if self.runtime.distributed:
            # DDP keeps weights equal but each rank's BN running statistics drift after the
            # last forward; rank 0's are the ones the checkpoint keeps, so every rank uses them.
            for buffer in self.module.buffers():
                torch.distributed.broadcast(buffer, src=0)
        scores = evaluate(
            self.module,
            self.val_loader,
            num_classes=self.num_classes,
            device=self.runtime.device,
            amp=self.setting.precision != "fp32",
            between_batches=self.between_steps,
        )
        self.curve.append((self.step, scores.miou))
        if self.on_evaluation is not None:
            self.on_evaluation(self.step, scores.miou)
        return scores

    # -------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir else None

    def save_checkpoint(self) -> None:
        self.read_losses()  # every loss of its steps, and never a diverged network
        path = self.checkpoint_path
        if path is None or not self.runtime.is_main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.train_step.scaler.state_dict(),
            "step": self.step,
            "curve": self.curve,
            "train_seconds": self.train_seconds,
            "images_seen": self.images_seen,
            "losses": self.losses,
            "spec": self.module.spec.to_dict()
            if isinstance(self.module, SegmentationNet)
            else None,
            "num_classes": self.num_classes,
            "dataset": self.dataset,
        }
        # Write then rename: a run killed mid-save never leaves a truncated checkpoint.
        partial = path.with_suffix(".partial")
        torch.save(state, partial)
        partial.replace(path)

    def resume(self, path: Path | None = None) -> bool:
        """Continue from a checkpoint (default: the run directory's) if there is one: weights,
        optimiser and schedule, step, curve and losses; the data stream follows the step."""
        path = path or self.checkpoint_path
        if path is None or not path.is_file():
            return False
        state = torch.load(path, map_location=self.runtime.device, weights_only=False)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_tensor_lr(self.optimizer, self.runtime.device)
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_step.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.curve = [tuple(point) for point in state["curve"]]
        self.train_seconds = float(state["train_seconds"])
        self.images_seen = int(state["images_seen"])
        self.losses = list(state["losses"])
        return True
