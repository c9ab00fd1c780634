"""Build the train and validation sets a config names (`conf/dataset/*.yaml`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.data import (
    NUM_CLASSES,
    CityscapesDataset,
    EvalTransform,
    TrainTransform,
    ensure_synthetic_cityscapes,
)

DATASET_NAMES = ("synthetic", "cityscapes")


def dataset_root(config: Mapping[str, Any]) -> Path | None:
    """The folder in Cityscapes layout; the synthetic set is generated (once) if needed."""
    name = config.get("name")
    if name == "synthetic":
        return ensure_synthetic_cityscapes(
            config.get("root"),
            n_train=config["n_train"],
            n_val=config["n_val"],
            height=config["height"],
            width=config["width"],
            seed=config["seed"],
        )
    if name == "cityscapes":
        root = config.get("root")
        return Path(root) if root else None  # CityscapesDataset explains a missing root
    raise ValueError(f"dataset.name must be one of {list(DATASET_NAMES)}, got {name!r}")


def build_datasets(
    config: Mapping[str, Any],
    *,
    input_size: tuple[int, int],
    scale_range: tuple[float, float],
) -> tuple[CityscapesDataset, CityscapesDataset, int]:
    """(train set, validation set, number of classes). Indexing checks every file's header,
    so a broken dataset fails here, before any training."""
    root = dataset_root(config)
    cache = bool(config["cache"])  # decoded samples kept in memory (see the class)
    train = CityscapesDataset(
        root,
        config["train_split"],
        TrainTransform(crop_size=input_size, scale_range=scale_range, base_size=input_size),
        cache=cache,
    )
    val = CityscapesDataset(
        root, config["val_split"], EvalTransform(input_size=input_size), cache=cache
    )
    return train, val, NUM_CLASSES
