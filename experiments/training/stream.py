"""The training data as a function of (seed, step): which items each step sees and how each is
augmented. A run resumed at step s from its checkpoint therefore sees exactly the batches an
uninterrupted run sees from step s on: a promoted trial of a multi-fidelity study continues its
training as if it had never stopped, and a killed run resumed from its last checkpoint gives
the same network.

Epoch e is a permutation of the items drawn from `(seed, e)`; the global batch of step s is the
next `batch_size` positions of the epochs laid end to end (an epoch's last, incomplete batch is
dropped). Item p of epoch e is augmented with a generator seeded by `(seed, e, p)`. Under
torchrun each process takes its share of every global batch, so the global batches are the
same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

AugmentationKey = tuple[int, int, int]  # (seed, epoch, position): seeds one item's generator


class TrainingStream(Sampler[tuple[int, AugmentationKey]]):
    """Endless `(item index, augmentation key)` pairs of one process, from `start_step` on."""

    def __init__(
        self,
        n_items: int,
        *,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_one_batch(n_items, batch_size)
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[tuple[int, AugmentationKey]]:
        batches_per_epoch = self.n_items // self.batch_size
        epoch, batch = divmod(self.start_step, batches_per_epoch)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
            for first in range(batch * self.batch_size, batches_per_epoch * self.batch_size,
                               self.batch_size):  # fmt: skip
                for position in range(first + self.rank, first + self.batch_size, self.world_size):
                    yield int(order[position]), (self.seed, epoch, position)
            epoch, batch = epoch + 1, 0


def check_one_batch(n_items: int, batch_size: int) -> None:
    """An epoch must hold a whole (global) batch: its last incomplete one is dropped."""
    if n_items < batch_size:
        raise ValueError(
            f"the training set has {n_items} images, fewer than one batch ({batch_size})"
        )


BatchFinisher = Callable[[Any, torch.device], tuple[torch.Tensor, torch.Tensor]]


def batch_finisher(dataset: Dataset[Any]) -> BatchFinisher:
    """How a collated batch of `dataset` becomes (images, labels) on the training device: the
    transform's own `finish_batch` where it leaves the augmentation to the device
    (`trainer.augment_on=device`), else a copy of the loader's finished batch."""
    transform = getattr(dataset, "transform", None)
    finish: BatchFinisher = getattr(transform, "finish_batch", copy_to_device)
    return finish


def copy_to_device(
    batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    image, label = batch
    return image.to(device, non_blocking=True), label.to(device, non_blocking=True)


class SeededItems(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A dataset read through `TrainingStream`'s pairs: each item augmented by its own key."""

    def __init__(self, dataset: Dataset[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if not hasattr(dataset, "item"):
            raise TypeError(f"{type(dataset).__name__} has no item(index, rng) to augment with")
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, AugmentationKey]) -> tuple[torch.Tensor, torch.Tensor]:
        index, augmentation = key
        return self.dataset.item(index, np.random.default_rng(augmentation))  # type: ignore[attr-defined]
