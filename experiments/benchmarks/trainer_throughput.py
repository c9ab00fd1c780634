"""Trainer throughput against a bare loop, and the data pipeline's own throughput.

    python -m experiments.benchmarks.trainer_throughput [--arch dfanet_b] [--steps 120]

1. A bare forward-backward-step loop on one batch held in memory (no data loading, no
   scheduler, no checks): the ceiling for this model, batch and input.
2. The real `Trainer` on the built-in synthetic data, same model, batch and input.
   Target: at least 0.9 of the bare loop.
3. The training data loader alone, with the demo trainer's workers, after one untimed epoch
   (the steady state of a run of many epochs, the in-memory cache filled): images/s it can
   supply. Target: above what the training step consumes, so the step never waits for data.
"""

from __future__ import annotations

import time

import torch

from experiments.config import compose_option
from experiments.data import NUM_CLASSES
from experiments.data.from_config import build_datasets
from experiments.training.losses import SegmentationLoss
from experiments.training.runtime import Runtime, resolve_device
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.model import build
from search_space.registry import get_arch
from workbench.cli import CommandParser, parse_size, size

SYNTHETIC = compose_option("dataset", "synthetic")


def bare_loop(arch: str, config: TrainerConfig, size: tuple[int, int], device: torch.device,
              steps: int) -> float:  # fmt: skip
    torch.manual_seed(0)
    model = build(get_arch(arch).replace(input_size=size), NUM_CLASSES).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    loss_fn = SegmentationLoss(config.loss)
    image = torch.randn(config.batch_size, 3, *size, device=device)
    label = torch.randint(0, NUM_CLASSES, (config.batch_size, *size), device=device)
    for index in range(steps + 3):
        if index == 3:  # the first steps pay for allocation
            _synchronize(device)
            started = time.perf_counter()
        loss = loss_fn(model(image), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - started)


def trainer_rate(arch: str, config: TrainerConfig, size: tuple[int, int],
                 device: torch.device) -> float:  # fmt: skip
    train, val, num_classes = build_datasets(
        SYNTHETIC, input_size=size, scale_range=config.scale_range
    )
    val.samples = val.samples[: config.eval_batch_size]  # the final evaluation is not timed
    torch.manual_seed(0)
    model = build(get_arch(arch).replace(input_size=size), num_classes)
    trainer = Trainer(model, train, val, config, Runtime(device), num_classes=num_classes)
    return trainer.fit().images_per_second


def loader_rate(config: TrainerConfig, size: tuple[int, int], batches: int) -> float:
    train, _, _ = build_datasets(SYNTHETIC, input_size=size, scale_range=config.scale_range)
    loader = torch.utils.data.DataLoader(
        train, batch_size=config.batch_size, shuffle=True, num_workers=config.num_workers,
        drop_last=True, persistent_workers=config.num_workers > 0,
    )  # fmt: skip
    for _ in loader:  # one untimed epoch: worker start-up, and the cache filled if there is one
        pass
    iterator = iter(loader)
    next(iterator)
    batches = min(batches, len(loader) - 1)  # within one epoch: no restart in the timing
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * config.batch_size / (time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    demo = compose_option("trainer", "demo")
    parser = CommandParser(
        prog="python -m experiments.benchmarks.trainer_throughput", description=__doc__
    )
    parser.add_argument("--arch", default="dfanet_b")
    parser.add_argument("--input-size", type=size, default=parse_size(SYNTHETIC["input_size"]))
    parser.add_argument("--batch-size", type=int, default=demo["batch_size"])
    parser.add_argument("--steps", type=int, default=120)  # three epochs: past the cache filling
    parser.add_argument("--workers", type=int, default=demo["num_workers"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    input_size = args.input_size
    device = resolve_device(args.device)
    config = TrainerConfig.from_dict(
        {
            **demo,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "eval_batch_size": 4,
            "num_workers": args.workers,
            "progress": False,
            "warmup_steps": 1,
            "eval_every": 0,
        }
    )
    bare = bare_loop(args.arch, config, input_size, device, args.steps)
    trained = trainer_rate(args.arch, config, input_size, device)
    supplied = loader_rate(config, input_size, args.steps)
    print(
        f"{args.arch}, batch {args.batch_size}, input {input_size[0]}x{input_size[1]}, {device}, "
        f"{torch.get_num_threads()} threads, {args.workers} loader workers"
    )
    print(f"bare forward-backward-step loop  {bare:8.1f} images/s")
    print(
        f"Trainer                          {trained:8.1f} images/s  "
        f"ratio {trained / bare:.2f} (target >= 0.90)"
    )
    print(
        f"data pipeline alone              {supplied:8.1f} images/s  "
        f"{supplied / bare:.1f}x what the step consumes (target > 1)"
    )


if __name__ == "__main__":
    main()
