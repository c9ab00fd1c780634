"""Cityscapes in its official layout, as a torch Dataset.

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Only `_gtFine_labelIds.png` is read as the label; the `_color`, `_instanceIds` and `_polygons`
files beside it are never used. `index_split` validates a split cheaply (directory listing and
PNG headers, no pixel decoding) so that a wrong root fails before any training starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from experiments.data.labels import LABEL_ID_TO_TRAIN_ID, MAX_LABEL_ID
from experiments.data.transforms import EvalTransform, Transform

ENV_VAR = "CITYSCAPES_DATASET"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
IMAGE_MODE = "RGB"
LABEL_MODE = "L"

_HINT = (
    f"Point at a Cityscapes root with `dataset.root=/path/to/cityscapes` or the {ENV_VAR} "
    "environment variable; `python -m experiments.search +study=demo` runs on the built-in "
    "synthetic data instead."
)


class DatasetError(ValueError):
    """The dataset on disk is missing or not in the layout this loader expects."""


@dataclass(frozen=True)
class Sample:
    """One image and its label; `id` is `<city>_<seq>_<frame>`, the key results are named by."""

    id: str
    image: Path
    label: Path

    @property
    def city(self) -> str:
        return self.image.parent.name


def _layout(root: Path, split: str) -> str:
    return (
        f"{root}/leftImg8bit/{split}/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX} and "
        f"{root}/gtFine/{split}/<city>/<city>_<seq>_<frame>{LABEL_SUFFIX}"
    )


def resolve_root(root: str | os.PathLike[str] | None = None, split: str = "<split>") -> Path:
    """The dataset root: the explicit argument, else the CITYSCAPES_DATASET variable.

    `split` only makes the error message show the exact paths that were expected."""
    if root is None or str(root) == "":
        from_env = os.environ.get(ENV_VAR, "")
        if not from_env:
            raise DatasetError(f"No Cityscapes root given and {ENV_VAR} is not set. {_HINT}")
        root = from_env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(
            f"Cityscapes root {path} does not exist or is not a directory; expected "
            f"{_layout(path, split)}. {_HINT}"
        )
    return path


def index_split(
    root: str | os.PathLike[str] | None, split: str, *, check_files: bool = True
) -> list[Sample]:
    """List a split's samples, sorted by id; raise `DatasetError` on any layout problem.

    With `check_files`, every image and label header is opened (no pixels decoded) to check it
    is readable, has the expected mode, and that the label has the image's size.
    """
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; Cityscapes has {', '.join(SPLITS)}")
    root_path = resolve_root(root, split)
    image_dir = root_path / "leftImg8bit" / split
    label_dir = root_path / "gtFine" / split
    for directory in (image_dir, label_dir):
        if not directory.is_dir():
            raise DatasetError(
                f"{directory} does not exist; expected {_layout(root_path, split)}. {_HINT}"
            )

    image_paths = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not image_paths:
        raise DatasetError(
            f"No images in {image_dir}; expected {_layout(root_path, split)}. {_HINT}"
        )
    samples = [_sample(path, label_dir) for path in image_paths]
    missing = [sample.label for sample in samples if not sample.label.is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(samples)} images in {image_dir} have no label, "
            f"for example {missing[0]} is missing; every image needs its "
            f"<city>_<seq>_<frame>{LABEL_SUFFIX}."
        )
    if check_files:
        for sample in samples:
            check_sample(sample)
    return samples


def check_one_size(samples: list[Sample], why: str) -> None:
    """Every image of `samples` has the first one's size (headers only), else a `DatasetError`
    naming a pair that differs and `why` one size is needed."""
    sizes = {sample.image: _header(sample.image)[0] for sample in samples}
    first, (width, height) = next(iter(sizes.items()))
    for path, size in sizes.items():
        if size != (width, height):
            raise DatasetError(
                f"{path} is {size[0]}x{size[1]} but {first} is {width}x{height}: {why}"
            )


def _sample(image_path: Path, label_dir: Path) -> Sample:
    sample_id = image_path.name.removesuffix(IMAGE_SUFFIX)
    label_path = label_dir / image_path.parent.name / f"{sample_id}{LABEL_SUFFIX}"
    return Sample(id=sample_id, image=image_path, label=label_path)


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from a file's header, without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (OSError, SyntaxError) as error:  # Pillow reports some broken PNG chunks as SyntaxError
        raise DatasetError(f"Cannot read {path}: {error}") from error


# Every PNG ends with its IEND chunk (length 0, type, CRC): a download or copy cut short does
# not, and its header alone reads fine. Reading 12 bytes per file catches it before training.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _check_complete(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - len(_PNG_END)))
            end = handle.read()
    except OSError as error:
        raise DatasetError(f"Cannot read {path}: {error.strerror}") from error
    if end != _PNG_END:
        raise DatasetError(
            f"{path} is truncated or not a PNG ({size} bytes, no IEND chunk at the end): "
            "download or copy it again"
        )


def check_sample(sample: Sample) -> None:
    """Check both files are whole PNGs (their last chunk) with the right headers: an 8-bit RGB
    image and an 8-bit label ids image of the same size."""
    _check_complete(sample.image)
    _check_complete(sample.label)
    image_size, image_mode = _header(sample.image)
    label_size, label_mode = _header(sample.label)
    if image_mode != IMAGE_MODE:
        raise DatasetError(f"{sample.image} has mode {image_mode}; expected 8-bit {IMAGE_MODE}")
    if label_mode != LABEL_MODE:
        raise DatasetError(
            f"{sample.label} has mode {label_mode}; expected 8-bit grey ({LABEL_MODE}) label ids"
        )
    if label_size != image_size:
        raise DatasetError(
            f"{sample.label} is {label_size[0]}x{label_size[1]} but its image {sample.image} "
            f"is {image_size[0]}x{image_size[1]} (width x height); they must match"
        )


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode != mode:
                raise DatasetError(f"{path} has mode {image.mode}; expected {mode}")
            return np.asarray(image)
    except (OSError, SyntaxError) as error:  # Pillow reports some broken PNG chunks as SyntaxError
        raise DatasetError(f"Cannot decode {path}: {error}") from error


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: HxWx3 uint8 image, HxW uint8 train ids (255 = ignore)."""
    image = _decode(sample.image, IMAGE_MODE)
    label = _decode(sample.label, LABEL_MODE)
    if label.shape != image.shape[:2]:
        raise DatasetError(
            f"{sample.label} has shape {label.shape} but {sample.image} has {image.shape[:2]}"
        )
    check_label_ids(label, sample.label)
    return image, LABEL_ID_TO_TRAIN_ID[label]


def check_label_ids(label_ids: np.ndarray, path: Path) -> None:
    """Every value must be an official Cityscapes label id (0..33). A stray value, or a
    trainIds image saved under the labelIds name (255 for void, ids 0..18 meaning other
    classes), would otherwise be read silently as the wrong classes or ignored."""
    present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256))
    unknown = [int(value) for value in present if value > MAX_LABEL_ID]
    if unknown:
        raise DatasetError(
            f"{path} holds values {unknown[:10]} that are not Cityscapes label ids (0.."
            f"{MAX_LABEL_ID}); is it a trainIds or color image saved under the labelIds name?"
        )


class CityscapesDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Items are `transform(image, train_ids, rng)`; `samples[i]` names item i's files and id.

    The trainer reads items through `item(index, rng)` with a generator of each item's own
    (`experiments.training.stream`), so that its runs resume exactly. Indexing (`dataset[i]`)
    uses this process's generator, created lazily in each process from
    `torch.initial_seed()`. A DataLoader worker's torch seed is `base_seed + worker_id`, with
    `base_seed` drawn from the main process's torch generator every time an iterator starts, so
    workers get distinct streams, each epoch gets fresh augmentations, and `torch.manual_seed`
    makes the whole pipeline repeatable for a fixed `num_workers`. The process id is checked
    so that a generator inherited through fork is never shared by two workers.

    `cache=True` keeps every decoded sample in memory after its first use (about 0.5 MB per
    256x512 sample; 2.5 ms of PNG decoding saved per item on later epochs). Each DataLoader
    worker fills its own copy, so it pays off with `num_workers=0`, the usual setting on a
    small CPU, and on data sets that fit in memory, like the synthetic one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Transform | None = None,
        *,
        check_files: bool = True,
        cache: bool = False,
    ) -> None:
        self.split = split
        self.samples: list[Sample] = index_split(root, split, check_files=check_files)
        self.transform: Transform = transform or EvalTransform()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item(index, self.generator())

    def item(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `index` augmented with `rng` (the trainer's stream seeds one per item)."""
        image, label = self._load(index)
        return self.transform(image, label, rng)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            return load_sample(self.samples[index])
        if index not in self._cache:
            image, label = load_sample(self.samples[index])
            # Shared by every later epoch: a transform writing into them would corrupt the set.
            image.flags.writeable = label.flags.writeable = False
            self._cache[index] = image, label
        return self._cache[index]

    def generator(self) -> np.random.Generator:
        """This process's augmentation generator (see the class docstring for the seeding)."""
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            self._rng = np.random.default_rng(torch.initial_seed())
            self._rng_pid = pid
        return self._rng
