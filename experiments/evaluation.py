"""Evaluation with the paper's protocol, single- or multi-process.

The image is resized to the architecture's input size (the dataset's `EvalTransform`), the
network predicts, the logits are upsampled to the label's full resolution and scored there.
Under torchrun every rank scores a disjoint shard and the confusion matrices are summed, so the
mIoU equals the single-process one exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from experiments.metrics import ConfusionMatrix, SegmentationScores
from experiments.runtime import Runtime
from search_space.layers import resize_to


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: disjoint shards, no padding (DistributedSampler pads
    with repeated samples, which would count some images twice)."""

    def __init__(self, dataset: Sized, rank: int, world_size: int) -> None:
        self.indices = range(rank, len(dataset), world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def eval_loader(
    dataset: Dataset[tuple[Tensor, Tensor]], runtime: Runtime, batch_size: int, workers: int
) -> DataLoader[tuple[Tensor, Tensor]]:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(dataset, runtime.rank, runtime.world_size),  # type: ignore[arg-type]
        num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=workers > 0,
    )


def autocast_for(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 where the GPU has it, fp16 otherwise; a disabled context on CPUs."""
    enabled = amp and device.type == "cuda"
    dtype = torch.bfloat16 if enabled and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader[tuple[Tensor, Tensor]],
    *,
    num_classes: int,
    device: torch.device,
    amp: bool = False,
    on_batch: Callable[[Tensor, list[int]], None] | None = None,
) -> SegmentationScores:
    """Score `loader`'s shard on this rank, then reduce over ranks.

    `on_batch(predictions, dataset_indices)` sees every batch of train-id maps at full label
    resolution, for exporting predictions.
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=device)
    indices = iter(loader.sampler)
    for image, label in loader:
        image, label = image.to(device, non_blocking=True), label.to(device, non_blocking=True)
        with autocast_for(device, amp):
            logits = model(image)
        prediction = resize_to(logits.float(), label.shape[-2:]).argmax(1)
        matrix.update(prediction, label)
        if on_batch is not None:
            on_batch(prediction, [next(indices) for _ in range(len(image))])
    matrix.all_reduce()
    model.train(was_training)
    return matrix.result()
