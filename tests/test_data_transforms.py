"""Training and evaluation transforms: shapes, padding, flips, determinism, resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.data import (
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def pair(height: int = 32, width: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (height, width), dtype=np.uint8)
    return image, label


def coded_pair(height: int = 32, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An image whose red channel is 10x its label, so any misalignment shows."""
    rng = np.random.default_rng(1)
    label = rng.integers(0, 19, (height, width), dtype=np.uint8)
    image = np.stack([label * 10, label, np.full_like(label, 7)], axis=2).astype(np.uint8)
    return image, label


def pixels(image: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: back to 0..255 values."""
    return (image * STD + MEAN) * 255


@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0, 2.0])
def test_train_output_has_the_crop_size(scale):
    image, label = pair()
    transform = TrainTransform(crop_size=(16, 40), scale_range=(scale, scale))
    out_image, out_label = transform(image, label, np.random.default_rng(0))
    assert out_image.shape == (3, 16, 40) and out_image.dtype == torch.float32
    assert out_label.shape == (16, 40) and out_label.dtype == torch.int64
    assert out_image.is_contiguous()


def test_small_scaled_images_are_padded_with_ignore_and_zero():
    image, label = pair(32, 64)
    transform = TrainTransform(crop_size=(32, 64), scale_range=(0.25, 0.25), flip_prob=0)
    out_image, out_label = transform(image, label, np.random.default_rng(0))
    # 32x64 at scale 0.25 is 8x16: the rest is padding, at the bottom and on the right.
    assert (out_label[8:, :] == IGNORE_INDEX).all() and (out_label[:, 16:] == IGNORE_INDEX).all()
    assert (out_label[:8, :16] != IGNORE_INDEX).all()
    assert (out_image[:, 8:, :] == 0).all() and (out_image[:, :, 16:] == 0).all()


def test_base_size_sets_what_the_scale_is_relative_to():
    image, label = pair(32, 64)
    transform = TrainTransform(crop_size=(16, 32), scale_range=(1, 1), base_size=(8, 16))
    _, out_label = transform(image, label, np.random.default_rng(0))
    assert (out_label[:8, :16] != IGNORE_INDEX).all()
    assert (out_label[8:] == IGNORE_INDEX).all() and (out_label[:, 16:] == IGNORE_INDEX).all()


@pytest.mark.parametrize("seed", range(5))
def test_image_and_label_are_cropped_and_flipped_together(seed):
    image, label = coded_pair()
    transform = TrainTransform(crop_size=(16, 24), scale_range=(1, 1), flip_prob=0.5)
    out_image, out_label = transform(image, label, np.random.default_rng(seed))
    torch.testing.assert_close(pixels(out_image)[0], out_label.float() * 10, atol=1e-3, rtol=0)


def test_flip_mirrors_the_whole_pair():
    image, label = coded_pair(8, 12)
    transform = TrainTransform(crop_size=(8, 12), scale_range=(1, 1), flip_prob=1)
    out_image, out_label = transform(image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label.numpy(), label[:, ::-1])
    torch.testing.assert_close(
        pixels(out_image), torch.from_numpy(image[:, ::-1].transpose(2, 0, 1).copy()).float()
    )


def test_scale_then_crop_equals_resizing_the_whole_image():
    """The fast path resizes only the crop window; it must match resize-then-crop."""
    image, label = pair(32, 64)
    full_image = np.asarray(Image.fromarray(image).resize((128, 64), Image.Resampling.BILINEAR))
    full_label = np.asarray(Image.fromarray(label).resize((128, 64), Image.Resampling.NEAREST))
    transform = TrainTransform(crop_size=(24, 40), scale_range=(2, 2), flip_prob=0)
    out_image, out_label = transform(image, label, np.random.default_rng(4))
    crop = out_label.numpy()
    offsets = [
        (top, left)
        for top in range(64 - 24 + 1)
        for left in range(128 - 40 + 1)
        if np.array_equal(full_label[top : top + 24, left : left + 40], crop)
    ]
    assert offsets, "the label crop is no window of the resized label"
    top, left = offsets[0]
    window = full_image[top : top + 24, left : left + 40].transpose(2, 0, 1)
    assert np.abs(pixels(out_image).numpy() - window).max() <= 1.01  # rounding only


def test_same_seed_same_output_and_other_seeds_differ():
    image, label = pair()
    transform = TrainTransform(crop_size=(16, 32))
    first = transform(image, label, np.random.default_rng(42))
    again = transform(image, label, np.random.default_rng(42))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    others = [transform(image, label, np.random.default_rng(seed))[1] for seed in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in others}) > 1


def test_normalisation_of_a_known_colour():
    image = np.full((2, 2, 3), (255, 128, 0), np.uint8)
    label = np.zeros((2, 2), np.uint8)
    out, _ = EvalTransform()(image, label)
    expected = (torch.tensor([1.0, 128 / 255, 0.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    torch.testing.assert_close(out[:, 0, 0], expected)


def test_eval_resizes_the_image_and_keeps_the_label_at_full_resolution():
    image, label = pair(32, 64)
    out_image, out_label = EvalTransform(input_size=(16, 24))(image, label)
    assert out_image.shape == (3, 16, 24)
    np.testing.assert_array_equal(out_label.numpy(), label)
    assert out_label.dtype == torch.int64


def test_eval_at_the_image_size_leaves_the_image_alone():
    image, label = pair(16, 32)
    out_image, _ = EvalTransform(input_size=[16, 32])(image, label)  # a config list works too
    torch.testing.assert_close(pixels(out_image), torch.from_numpy(image).permute(2, 0, 1).float())


def test_read_only_inputs_are_accepted_without_warnings():
    """Decoded PIL images are read-only arrays; torch warns on those if wrapped directly."""
    image, label = pair()
    image.flags.writeable = label.flags.writeable = False
    TrainTransform(crop_size=(16, 32))(image, label, np.random.default_rng(0))
    EvalTransform()(image, label)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"crop_size": (0, 8)}, "crop_size"),
        ({"crop_size": (8, 8), "scale_range": (2.0, 1.0)}, "scale_range"),
        ({"crop_size": (8, 8), "scale_range": (0.0, 1.0)}, "scale_range"),
        ({"crop_size": (8, 8), "flip_prob": 1.5}, "flip_prob"),
        ({"crop_size": (8, 8), "base_size": (8,)}, "base_size"),
    ],
)
def test_invalid_settings_name_the_setting(arguments, message):
    with pytest.raises(ValueError, match=message):
        TrainTransform(**arguments)


def test_mismatched_image_and_label_are_rejected():
    image, _ = pair(32, 64)
    with pytest.raises(ValueError, match="label must be uint8 of the image's size"):
        EvalTransform()(image, np.zeros((32, 63), np.uint8))
