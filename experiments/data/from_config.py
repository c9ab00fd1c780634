"""The dataset settings (`conf/dataset/*.yaml`) and the train and validation sets they name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from experiments.data import (
    NUM_CLASSES,
    CityscapesDataset,
    EvalTransform,
    TrainTransform,
    ensure_synthetic_cityscapes,
)
from experiments.data.cityscapes import check_one_size
from experiments.data.device_transforms import AugmentOn, DeviceTrainTransform
from workbench.cli import parse_size

# An input size as a user spells it (`512x1024`) or a YAML list holds it (`[512, 1024]`).
InputSize = Annotated[tuple[int, int], parse_size]


@dataclass(frozen=True)
class DatasetSection:
    """What every dataset's section holds (`dataset=NAME` chooses one of the classes below)."""

    root: str | None  # the folder in Cityscapes layout
    train_split: str
    val_split: str
    input_size: InputSize  # the resolution networks run at on this data
    cache: bool  # decoded samples kept in memory

    def record(self) -> dict[str, Any]:
        """The section as `conf/` spells it: recorded in checkpoints and metrics, so that a
        later evaluation scores a network on the data it was trained for."""
        height, width = self.input_size
        return {**asdict(self), "input_size": f"{height}x{width}"}


@dataclass(frozen=True)
class SyntheticData(DatasetSection):
    """The built-in synthetic Cityscapes: generated into `root` (None: the cache folder)."""

    name: Literal["synthetic"]
    n_train: int
    n_val: int
    height: int
    width: int
    seed: int


@dataclass(frozen=True)
class CityscapesData(DatasetSection):
    name: Literal["cityscapes"]


DatasetSettings = SyntheticData | CityscapesData


def dataset_root(settings: DatasetSettings) -> Path | None:
    """The folder in Cityscapes layout; the synthetic set is generated (once) if needed."""
    if isinstance(settings, SyntheticData):
        return ensure_synthetic_cityscapes(
            settings.root,
            n_train=settings.n_train,
            n_val=settings.n_val,
            height=settings.height,
            width=settings.width,
            seed=settings.seed,
        )
    return Path(settings.root) if settings.root else None  # CityscapesDataset explains None


def build_datasets(
    settings: DatasetSettings,
    *,
    input_size: tuple[int, int],
    scale_range: tuple[float, float],
    augment_on: AugmentOn,
) -> tuple[CityscapesDataset, CityscapesDataset, int]:
    """(train set, validation set, number of classes). Indexing checks every file's header,
    so a broken dataset fails here, before any training. `augment_on`: where the training
    crops are resampled, in the loader's workers or on the training device (the trainer's
    `augment_on`; the same crops either way, see `device_transforms`)."""
    root = dataset_root(settings)
    crops = TrainTransform(crop_size=input_size, scale_range=scale_range, base_size=input_size)
    train = CityscapesDataset(
        root,
        settings.train_split,
        DeviceTrainTransform(crops) if augment_on == "device" else crops,
        cache=settings.cache,
    )
    if augment_on == "device":
        check_one_size(
            train.samples,
            "trainer.augment_on=device batches whole decoded images, which needs one size "
            "across the split (Cityscapes has one); use trainer.augment_on=loader",
        )
    val = CityscapesDataset(
        root, settings.val_split, EvalTransform(input_size=input_size), cache=settings.cache
    )
    return train, val, NUM_CLASSES
