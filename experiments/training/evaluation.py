"""Evaluation with the paper's protocol, single- or multi-process.

The image is resized to the architecture's input size (the dataset's `EvalTransform`), the
network predicts, the logits are upsampled to the label's full resolution and scored there.
Under torchrun every rank scores a disjoint shard and the confusion matrices are summed, so the
mIoU equals the single-process one exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from experiments.data import CityscapesDataset, train_ids_to_label_ids
from experiments.training.metrics import ConfusionMatrix, SegmentationScores
from experiments.training.runtime import Runtime
from search_space.deploy import deploy
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
    between_batches: Callable[[], None] | None = None,
) -> SegmentationScores:
    """Score `loader`'s shard on this rank, then reduce over ranks.

    `on_batch(predictions, dataset_indices)` sees every batch of train-id maps at full label
    resolution, for exporting predictions; `between_batches()` is called before each batch (a
    caller's safe point to stop by raising).
    """
    was_training = model.training
    model.eval()
    # On a CPU the network scored is the one a user ships: batch norms folded, channels-last
    # (search_space.deploy; a copy, the model is untouched). It gives the same predictions to
    # fp32 rounding in 0.55-0.75 of the time (DFANet A, 128x256 on one core), where the
    # evaluation was a third of a demo trial. On CUDA the eager model runs, under `amp`.
    network = deploy(model) if device.type == "cpu" else model
    matrix = ConfusionMatrix(num_classes, device=device)
    indices = iter(loader.sampler)
    for image, label in loader:
        if between_batches is not None:
            between_batches()
        image, label = image.to(device, non_blocking=True), label.to(device, non_blocking=True)
        with autocast_for(device, amp):
            logits = network(image)
        # Channels-last, then max(1).indices, not argmax(1): the class axis contiguous and
        # the same first-maximum index; on a CPU the upsampling and the max together take 0.7
        # of the time they take over the strided class axis (argmax: 4x as long again).
        logits = logits.float().contiguous(memory_format=torch.channels_last)
        prediction = resize_to(logits, label.shape[-2:]).max(1).indices
        matrix.update(prediction, label)
        if on_batch is not None:
            on_batch(prediction, [next(indices) for _ in range(len(image))])
    matrix.all_reduce()
    model.train(was_training)
    return matrix.result()


def prediction_writer(
    dataset: CityscapesDataset, export_dir: Path
) -> Callable[[Tensor, list[int]], None]:
    """`on_batch` for `evaluate`: each train-id map -> a labelId PNG in the results layout."""

    def write(predictions: Tensor, indices: list[int]) -> None:
        for prediction, index in zip(predictions.cpu().numpy(), indices, strict=True):
            sample = dataset.samples[index]
            folder = export_dir / sample.city
            folder.mkdir(parents=True, exist_ok=True)
            label_ids = train_ids_to_label_ids(prediction.astype(np.uint8))
            Image.fromarray(label_ids).save(folder / f"{sample.id}_pred_labelIds.png")

    return write
