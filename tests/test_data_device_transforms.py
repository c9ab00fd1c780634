"""The augmentation on the training device against the loader's (Pillow) one: the same crop
geometry, flips and labels exactly, image values within one uint8 unit, for the same generator;
and the real dataset, loader and Trainer running it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from experiments.config import compose_option, read_value
from experiments.data import (
    IGNORE_INDEX,
    IMAGENET_STD,
    CityscapesDataset,
    DatasetError,
    TrainTransform,
)
from experiments.data.cityscapes import check_one_size
from experiments.data.device_transforms import (
    DeviceTrainTransform,
    bilinear_weights,
    nearest_indices,
)
from experiments.data.from_config import DatasetSettings, build_datasets
from experiments.training.runtime import Runtime
from experiments.training.stream import SeededItems, TrainingStream, batch_finisher
from experiments.training.trainer import Trainer
from search_space.model import build
from search_space.registry import get_arch
from tests.support import INPUT_SIZE, SMALL, trainer_config

# One uint8 unit after normalisation, at the smallest standard deviation (the largest step).
ONE_UNIT = 1.0 / (255.0 * min(IMAGENET_STD)) + 1e-5
CPU = torch.device("cpu")


@pytest.fixture
def synthetic_settings(synthetic_root: Path) -> DatasetSettings:
    """The built-in dataset's section, on the session's small set, decoded afresh each read."""
    section = {**compose_option("dataset", "synthetic"), **SMALL, "root": str(synthetic_root)}
    return read_value(DatasetSettings, {**section, "cache": False}, "dataset")


def random_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, ...]:
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (height, width), dtype=np.uint8)
    label[rng.random((height, width)) < 0.1] = IGNORE_INDEX
    return image, label


def both_paths(geometry: TrainTransform, pairs, seeds, device: torch.device = CPU):
    """(the loader's images and labels, the device path's, brought back from `device`) for
    items seeded by `seeds`."""
    on_cpu = [
        geometry(image, label, np.random.default_rng(s))
        for (image, label), s in zip(pairs, seeds, strict=True)
    ]
    deferred = DeviceTrainTransform(geometry)
    batch = default_collate(
        [
            deferred(image, label, np.random.default_rng(s))
            for (image, label), s in zip(pairs, seeds, strict=True)
        ]
    )
    images, labels = (t.cpu() for t in deferred.finish_batch(batch, device))
    return torch.stack([i for i, _ in on_cpu]), torch.stack([c for _, c in on_cpu]), images, labels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_device_path_matches_the_loaders() -> None:
    """On the GPU, at a Cityscapes-like 512x1024 source and the recipe's scale range."""
    rng = np.random.default_rng(11)
    pairs = [random_pair(rng, 512, 1024) for _ in range(8)]
    geometry = TrainTransform(crop_size=(256, 512), scale_range=(0.5, 2.0))
    cuda = torch.device("cuda")
    cpu_images, cpu_labels, images, labels = both_paths(geometry, pairs, range(8), cuda)
    assert torch.equal(labels, cpu_labels)
    assert (images - cpu_images).abs().max().item() <= ONE_UNIT


@pytest.mark.parametrize(
    ("size", "crop", "scales", "base"),
    [
        ((64, 128), (32, 64), (0.5, 2.0), None),  # the recipe's range: shrink and enlarge
        ((64, 128), (48, 96), (0.2, 0.6), None),  # scaled smaller than the crop: padded
        ((50, 90), (31, 47), (0.75, 1.75), (40, 80)),  # odd sizes, a base size of its own
        ((64, 128), (64, 128), (1.0, 1.0), None),  # the identity crop
    ],
)
def test_the_device_path_matches_the_loaders_for_the_same_generator(size, crop, scales, base):
    rng = np.random.default_rng(7)
    pairs = [random_pair(rng, *size) for _ in range(12)]
    geometry = TrainTransform(crop_size=crop, scale_range=scales, base_size=base)
    cpu_images, cpu_labels, images, labels = both_paths(geometry, pairs, range(12))
    assert images.shape == cpu_images.shape and images.dtype == cpu_images.dtype
    assert labels.dtype == cpu_labels.dtype
    assert torch.equal(labels, cpu_labels)  # geometry, flips, padding and labels: exact
    assert (images - cpu_images).abs().max().item() <= ONE_UNIT


def test_an_image_coded_by_its_label_stays_aligned_and_flips_are_drawn_alike():
    """Red = 10 x label: a misaligned image or a flip on one side only would show."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 19, (40, 80), dtype=np.uint8)
    image = np.stack([label * 10, label, np.full_like(label, 7)], axis=2).astype(np.uint8)
    geometry = TrainTransform(crop_size=(40, 80), scale_range=(1.0, 1.0), flip_prob=0.5)
    cpu_images, cpu_labels, images, labels = both_paths(geometry, [(image, label)] * 16, range(16))
    flipped = [
        bool((labels[i] != torch.from_numpy(label.astype(np.int64))).any()) for i in range(16)
    ]
    assert 0 < sum(flipped) < 16  # both outcomes drawn, and drawn as the loader draws them
    assert torch.equal(labels, cpu_labels)
    assert torch.allclose(images, cpu_images, atol=ONE_UNIT)


def test_pillow_weights_and_indices_on_arbitrary_windows():
    """The two resampling primitives against Pillow's own resize of a box, on random boxes and
    on boxes that start and end on pixel edges, as crop windows often do."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(8, 80, 2))
        out_h, out_w = (int(v) for v in rng.integers(3, 60, 2))
        left, top = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
        box = (left, top, rng.uniform(left + 0.5, width), rng.uniform(top + 0.5, height))
        if rng.random() < 0.5:  # on the pixel edges of a scaled image, as crop windows are
            scaled_h, scaled_w = (int(v) for v in rng.integers(4, 200, 2))
            out_h, out_w = min(out_h, scaled_h), min(out_w, scaled_w)
            top_at = int(rng.integers(0, scaled_h - out_h + 1))
            left_at = int(rng.integers(0, scaled_w - out_w + 1))
            step_y, step_x = height / scaled_h, width / scaled_w
            box = (left_at * step_x, top_at * step_y,
                   (left_at + out_w) * step_x, (top_at + out_h) * step_y)  # fmt: skip
        image, label = random_pair(rng, height, width)
        expected = Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BILINEAR, box=box)
        first_y, rows = bilinear_weights(height, box[1], box[3], out_h, CPU)
        first_x, cols = bilinear_weights(width, box[0], box[2], out_w, CPU)
        window = torch.from_numpy(
            image[first_y : first_y + rows.shape[1], first_x : first_x + cols.shape[1]]
        )
        mine = rows @ window.permute(2, 0, 1).float() @ cols.T
        reference = torch.from_numpy(np.asarray(expected).astype(np.float32)).permute(2, 0, 1)
        assert (mine - reference).abs().max().item() <= 1.0 + 1e-4
        nearest = Image.fromarray(label).resize((out_w, out_h), Image.Resampling.NEAREST, box=box)
        picked = label[nearest_indices(box[1], box[3], out_h)][
            :, nearest_indices(box[0], box[2], out_w)
        ]
        assert np.array_equal(picked, np.asarray(nearest))


def test_read_only_cached_samples_are_copied_not_refused():
    image, label = random_pair(np.random.default_rng(1), 32, 64)
    image.flags.writeable = label.flags.writeable = False
    deferred = DeviceTrainTransform(TrainTransform(crop_size=(16, 32)))
    pixels, classes, plan = deferred(image, label, np.random.default_rng(0))
    assert pixels.shape == (32, 64, 3) and pixels.dtype == torch.uint8
    assert classes.shape == (32, 64) and plan.dtype == torch.float64


def test_a_batch_without_its_images_is_refused_with_its_shape():
    deferred = DeviceTrainTransform(TrainTransform(crop_size=(16, 32)))
    with pytest.raises(ValueError, match=r"HxWx3 images, got shape \(2, 3, 16, 32\)"):
        deferred.finish_batch(
            [torch.zeros(2, 3, 16, 32), torch.zeros(2, 16, 32), torch.zeros(2, 7)], CPU
        )


def test_the_dataset_and_loader_yield_the_same_batches_on_either_path(synthetic_settings):
    """`trainer.augment_on=device` through build_datasets, the stream and a DataLoader with a
    worker: the batch of each step is the loader path's (labels exact)."""
    batches = {}
    for where in ("loader", "device"):
        train, _, _ = build_datasets(
            synthetic_settings, input_size=INPUT_SIZE, scale_range=(0.5, 2.0), augment_on=where
        )
        loader = torch.utils.data.DataLoader(
            SeededItems(train),
            batch_size=4,
            sampler=TrainingStream(len(train), batch_size=4, seed=3),
            num_workers=1,
        )
        finish = batch_finisher(train)
        batches[where] = [finish(batch, CPU) for batch, _ in zip(loader, range(2), strict=False)]
    for (cpu_images, cpu_labels), (images, labels) in zip(
        batches["loader"], batches["device"], strict=True
    ):
        assert torch.equal(labels, cpu_labels)
        assert (images - cpu_images).abs().max().item() <= ONE_UNIT


def test_images_of_two_sizes_are_refused_naming_both(synthetic_root: Path, tmp_path: Path):
    """Whole decoded images are batched: a split of mixed sizes is refused before training."""
    samples = CityscapesDataset(synthetic_root, "train").samples[:3]
    odd = tmp_path / "odd_leftImg8bit.png"
    Image.open(samples[1].image).resize((40, 20)).save(odd)
    mixed = [samples[0], replace(samples[1], image=odd), samples[2]]
    with pytest.raises(DatasetError, match=rf"{odd} is 40x20 but .* is 128x64: .*augment_on"):
        check_one_size(mixed, "trainer.augment_on=device needs one size")
    check_one_size(samples, "never raised: one size")


def test_the_trainer_trains_with_the_augmentation_on_its_device(synthetic_settings, tmp_path: Path):
    train, val, classes = build_datasets(
        synthetic_settings, input_size=INPUT_SIZE, scale_range=(0.5, 2.0), augment_on="device"
    )
    model = build(get_arch("dfanet_b"), classes)
    config = trainer_config(
        steps=3, batch_size=2, eval_every=0, checkpoint_every=0, augment_on="device", progress=False
    )
    result = Trainer(
        model, train, val, config, Runtime(CPU), num_classes=classes, run_dir=tmp_path
    ).fit()
    assert result.steps == 3 and np.isfinite(result.final_loss)
    assert isinstance(train, CityscapesDataset) and isinstance(
        train.transform, DeviceTrainTransform
    )
