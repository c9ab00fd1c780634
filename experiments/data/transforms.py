"""Training and evaluation transforms: numpy arrays in, normalised tensors out.

A transform is called as `transform(image, label, rng)` with an HxWx3 uint8 image, an HxW uint8
label of train ids (255 = ignore) and a `numpy.random.Generator`; it returns a float32 3xHxW
image tensor and an int64 HxW label tensor. All randomness comes from `rng`, so the same
generator state gives the same output. `CityscapesDataset` owns the generator and seeds it per
worker process (see `CityscapesDataset.generator`).

Resampling uses Pillow's `resize(box=...)`: the random scale and the random crop are folded into
one resize of only the cropped window, which is ~5x faster than interpolating the whole image
with torch and then cropping (measured at 256x512 -> 128x256 on one core). Pillow clips its
filter support at the image border, not at the box, so the result equals "scale, then crop".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from experiments.data.labels import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Size = tuple[int, int]  # (height, width), the order tensors use


class Transform(Protocol):
    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def _as_size(name: str, size: Size) -> Size:
    """Validate a (height, width) pair; also turns a config list into a tuple of ints."""
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be (height, width) with positive entries, got {size}")
    return int(size[0]), int(size[1])


def check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    if label.shape != image.shape[:2] or label.dtype != np.uint8:
        raise ValueError(
            f"label must be uint8 of the image's size {image.shape[:2]}, "
            f"got {label.shape} {label.dtype}"
        )


@dataclass(frozen=True)
class Normalize:
    """uint8 HxWx3 array -> float32 3xHxW tensor, (x / 255 - mean) / std per channel."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def constants(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale), 3x1x1 each: normalised = (pixel - shift) * scale, in 0..255 units,
        one fused pass instead of a divide by 255 and then a second pass."""
        shift = torch.tensor([255.0 * m for m in self.mean]).view(3, 1, 1)
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(3, 1, 1)
        return shift, scale

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        shift, scale = self.constants()
        # astype makes the float copy we need anyway, and a writable, positively strided one
        # (decoded and flipped arrays are neither, and torch cannot wrap them).
        pixels = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
        return pixels.sub_(shift).mul_(scale).contiguous()


@dataclass(frozen=True)
class CropPlan:
    """One item's augmentation: the crop window in source pixels (left, top, right, bottom;
    resampling it is "scale, then crop"), the window's size in output pixels (smaller than the
    crop where the scaled image is), and whether it is flipped."""

    box: tuple[float, float, float, float]
    height: int
    width: int
    flip: bool

    def as_tensor(self) -> torch.Tensor:
        """One row of float64s, which a DataLoader collates (indices are exact in float64)."""
        return torch.tensor([*self.box, self.height, self.width, self.flip], dtype=torch.float64)

    @classmethod
    def from_row(cls, row: list[float]) -> CropPlan:
        left, top, right, bottom, height, width, flip = row
        return cls((left, top, right, bottom), int(height), int(width), bool(flip))


@dataclass(frozen=True)
class TrainTransform:
    """Random scale, random crop (padded when the scaled image is smaller), horizontal flip.

    The scale is relative to `base_size` (height, width), the resolution the network sees at
    evaluation; `None` means the image's own size. A scaled image smaller than `crop_size` is
    padded at the bottom/right: label with 255 (ignored by the loss), image with 0 after
    normalisation (the mean colour, which leaves batch-norm statistics least disturbed).
    """

    crop_size: Size
    scale_range: tuple[float, float] = (0.5, 2.0)
    base_size: Size | None = None
    flip_prob: float = 0.5
    normalize: Normalize = Normalize()

    def __post_init__(self) -> None:
        # Frozen dataclass: object.__setattr__ is the documented way to normalise a field.
        object.__setattr__(self, "crop_size", _as_size("crop_size", self.crop_size))
        if self.base_size is not None:
            object.__setattr__(self, "base_size", _as_size("base_size", self.base_size))
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must lie in [0, 1], got {self.flip_prob}")

    def draw(self, rng: np.random.Generator, height: int, width: int) -> CropPlan:
        """The plan of one item of `height` x `width` pixels: scale, window, flip, drawn from
        `rng` in that order (the loader's and the device's paths both draw here)."""
        base_h, base_w = self.base_size or (height, width)
        scale = rng.uniform(*self.scale_range)
        scaled_h, scaled_w = max(1, round(base_h * scale)), max(1, round(base_w * scale))
        crop_h, crop_w = self.crop_size
        out_h, out_w = min(crop_h, scaled_h), min(crop_w, scaled_w)
        top = int(rng.integers(0, scaled_h - out_h + 1))
        left = int(rng.integers(0, scaled_w - out_w + 1))
        flip = bool(rng.random() < self.flip_prob)
        # The crop window in source pixels: one resize of this window is "scale, then crop".
        step_y, step_x = height / scaled_h, width / scaled_w
        box = (left * step_x, top * step_y, (left + out_w) * step_x, (top + out_h) * step_y)
        return CropPlan(box, out_h, out_w, flip)

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_pair(image, label)
        plan = self.draw(rng, *label.shape)
        size = (plan.width, plan.height)
        window = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, box=plan.box)
        window_label = Image.fromarray(label).resize(size, Image.Resampling.NEAREST, box=plan.box)
        pixels, classes = np.asarray(window), np.asarray(window_label)
        if plan.flip:
            pixels, classes = pixels[:, ::-1], classes[:, ::-1]

        crop_h, crop_w = self.crop_size
        image_out = torch.zeros((3, crop_h, crop_w), dtype=torch.float32)
        label_out = torch.full((crop_h, crop_w), IGNORE_INDEX, dtype=torch.int64)
        image_out[:, : plan.height, : plan.width] = self.normalize(pixels)
        label_out[: plan.height, : plan.width] = torch.from_numpy(classes.astype(np.int64))
        return image_out, label_out


@dataclass(frozen=True)
class EvalTransform:
    """Resize the image to the network's input size; keep the label at full resolution.

    The evaluator upsamples logits to the label, so the score is computed at full label
    resolution as the official evaluator does. `input_size=None` keeps the image as it is.
    """

    input_size: Size | None = None
    normalize: Normalize = Normalize()

    def __post_init__(self) -> None:
        if self.input_size is not None:
            object.__setattr__(self, "input_size", _as_size("input_size", self.input_size))

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_pair(image, label)
        if self.input_size is not None and self.input_size != label.shape:
            height, width = self.input_size
            image = np.asarray(
                Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
            )
        return self.normalize(image), torch.from_numpy(label.astype(np.int64))
