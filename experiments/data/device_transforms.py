"""The training augmentation on the training device (`trainer.augment_on=device`).

At the Cityscapes recipe's shape a step consumes 48 images of 1024x2048; resampling each one
in the loader's CPU workers is the likely bottleneck once the step itself is fast. On this path
the workers only decode: each item ships its decoded uint8 image and label with its crop plan,
drawn from the item's own generator by `TrainTransform.draw` (the same draws, in the same
order, as on the CPU path), and `finish_batch` resamples the batch where the network trains.

What stays identical to `TrainTransform` for the same generator: the plan, hence the crop
geometry, the flip and the label (the nearest-neighbour indices are Pillow's, accumulated the
way Pillow accumulates them, so labels match exactly). Image values agree within one uint8
unit: the bilinear weights are Pillow's (a triangle filter widened by the reduction factor,
clipped at the image border), but Pillow rounds to 8 bits between its horizontal and vertical
passes and this path does not.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from experiments.data.labels import IGNORE_INDEX
from experiments.data.transforms import CropPlan, Normalize, TrainTransform, check_pair

AugmentOn = Literal["loader", "device"]  # where the training crops are resampled
DeferredItem = tuple[Tensor, Tensor, Tensor]  # decoded image HxWx3, label HxW, the plan


@dataclass(frozen=True)
class DeviceTrainTransform:
    """`TrainTransform`'s augmentation, planned in the loader and applied by `finish_batch`."""

    geometry: TrainTransform

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> DeferredItem:
        check_pair(image, label)
        plan = self.geometry.draw(rng, *label.shape)
        # Cached samples are read-only and torch cannot wrap those: copy only then.
        pixels = np.require(image, requirements=("C", "W"))
        classes = np.require(label, requirements=("C", "W"))
        return torch.from_numpy(pixels), torch.from_numpy(classes), plan.as_tensor()

    def finish_batch(self, batch: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
        """A collated batch of deferred items -> (normalised images Bx3xHxW, labels BxHxW) on
        `device`, the crop size of `geometry`, padded as `TrainTransform` pads.

        Nothing in the per-item loop copies from the host: a copy from pageable memory waits
        for the device's queued work, which would make every step wait for the one before.
        The nearest-neighbour indices (accumulated on the host, as Pillow does) go over in one
        pinned buffer; the bilinear weights are computed on the device."""
        images, labels, plans = batch
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected a batch of HxWx3 images, got shape {tuple(images.shape)}")
        crop_h, crop_w = self.geometry.crop_size
        count, height, width = labels.shape
        items = [CropPlan.from_row(row) for row in plans.tolist()]
        indices = torch.zeros((count, crop_h + crop_w), dtype=torch.int64)
        for index, plan in enumerate(items):
            left, top, right, bottom = plan.box
            indices[index, : plan.height] = torch.from_numpy(
                nearest_indices(top, bottom, plan.height)
            )
            indices[index, crop_h : crop_h + plan.width] = torch.from_numpy(
                nearest_indices(left, right, plan.width)
            )
        on_cuda = device.type == "cuda"
        indices = (indices.pin_memory() if on_cuda else indices).to(device, non_blocking=True)
        images = images.to(device, non_blocking=True)  # pinned by the loader on CUDA
        labels = labels.to(device, non_blocking=True)
        shift, scale = normalisation_on(self.geometry.normalize, device)
        out_images = torch.zeros((count, 3, crop_h, crop_w), dtype=torch.float32, device=device)
        out_labels = torch.full(
            (count, crop_h, crop_w), IGNORE_INDEX, dtype=torch.int64, device=device
        )
        for index, plan in enumerate(items):
            left, top, right, bottom = plan.box
            first_y, rows_weights = bilinear_weights(height, top, bottom, plan.height, device)
            first_x, cols_weights = bilinear_weights(width, left, right, plan.width, device)
            window = images[
                index,
                first_y : first_y + rows_weights.shape[1],
                first_x : first_x + cols_weights.shape[1],
            ]
            pixels = rows_weights @ window.permute(2, 0, 1).float() @ cols_weights.T
            rows = indices[index, : plan.height]
            cols = indices[index, crop_h : crop_h + plan.width]
            classes = labels[index].index_select(0, rows).index_select(1, cols)
            if plan.flip:
                pixels, classes = pixels.flip(-1), classes.flip(-1)
            out_images[index, :, : plan.height, : plan.width] = (pixels - shift) * scale
            out_labels[index, : plan.height, : plan.width] = classes
        return out_images, out_labels


@functools.cache
def normalisation_on(normalize: Normalize, device: torch.device) -> tuple[Tensor, Tensor]:
    """`normalize`'s (shift, scale) on `device`, copied there once per process."""
    shift, scale = normalize.constants()
    return shift.to(device), scale.to(device)


def bilinear_weights(
    size: int, start: float, end: float, out_size: int, device: torch.device
) -> tuple[int, Tensor]:
    """Pillow's bilinear resampling of the span [start, end) of an axis of `size` pixels to
    `out_size`, as (first source index, out_size x span weight matrix), computed on `device`
    from scalars (no copy from the host). The filter is widened by the reduction factor when
    shrinking (Pillow's antialiasing) and clipped at the border."""
    start, step = pillow_span(start, end, out_size)
    support = max(step, 1.0)  # the triangle filter's radius, in source pixels
    # The span's ends from its first and last output pixels (the centres increase).
    first = max(int(np.trunc(start + 0.5 * step - support + 0.5)), 0)
    last = min(int(np.trunc(start + (out_size - 0.5) * step + support + 0.5)), size)
    float64 = {"dtype": torch.float64, "device": device}
    centers = (start + (torch.arange(out_size, **float64) + 0.5) * step)[:, None]
    lows = (centers - support + 0.5).trunc_().clamp_(min=0)
    highs = (centers + support + 0.5).trunc_().clamp_(max=size)
    sources = torch.arange(first, last, **float64)
    weights = (1 - ((sources - centers + 0.5) / support).abs()).clamp_(min=0)
    weights = torch.where((sources >= lows) & (sources < highs), weights, 0.0)
    # Never zero: the source pixel under each output's centre is inside and weighs > 0.
    return first, (weights / weights.sum(dim=1, keepdim=True)).float()


def nearest_indices(start: float, end: float, out_size: int) -> np.ndarray:
    """The source index of each output pixel of Pillow's nearest-neighbour resize of the span
    [start, end): positions accumulated by repeated addition in double precision, as Pillow
    does, so that a position on a pixel edge falls on the same side."""
    start, step = pillow_span(start, end, out_size)
    increments = np.full(out_size, step)
    increments[0] = start + step * 0.5
    return np.trunc(np.add.accumulate(increments)).astype(np.int64)


def pillow_span(start: float, end: float, out_size: int) -> tuple[float, float]:
    """(start, step per output pixel) as Pillow computes them: its resize reads the box as
    single-precision floats and subtracts them in single precision. Crop windows often start
    on a pixel edge, where the double-precision values would round the other way."""
    start32, end32 = np.float32(start), np.float32(end)
    return float(start32), float(np.float32(end32 - start32)) / out_size
