"""Write a tiny data set in the official Cityscapes layout, for tests.

Every sample gets all the files a real gtFine folder holds (`_labelIds`, `_color`,
`_instanceIds`, `_polygons.json`) beside its `_leftImg8bit` image, so a loader that picked the
wrong file would be caught. Label ids are drawn from the real table, void and ignored ids
included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.data.labels import LABEL_ID_COLORS

# Evaluated classes (road, sidewalk, building, car, person, bicycle) and ids that must map to
# ignore (unlabeled, ego vehicle, out of roi, parking, guard rail, caravan).
FIXTURE_LABEL_IDS = np.array([7, 8, 11, 26, 24, 33, 0, 1, 3, 9, 14, 29], np.uint8)


@dataclass(frozen=True)
class FixtureSample:
    split: str
    city: str
    id: str
    image_path: Path
    label_path: Path
    image: np.ndarray  # HxWx3 uint8, as written
    label_ids: np.ndarray  # HxW uint8 Cityscapes label ids, as written


def write_cityscapes(
    root: Path,
    *,
    splits: dict[str, int] | None = None,
    cities: tuple[str, ...] = ("aachen", "bochum"),
    size: tuple[int, int] = (24, 48),
    seed: int = 0,
) -> list[FixtureSample]:
    """Write `splits[split]` samples per split (default 3 train, 2 val) of `size` (H, W),
    spread over `cities`; return what was written, in the loader's (sorted) order."""
    rng = np.random.default_rng(seed)
    samples = []
    for split, count in (splits or {"train": 3, "val": 2}).items():
        for index in range(count):
            city = cities[index % len(cities)]
            sample_id = f"{city}_{index:06d}_000019"
            samples.append(_write_sample(root, split, city, sample_id, size, rng))
    return sorted(samples, key=lambda s: (s.split, str(s.image_path)))


def _write_sample(
    root: Path,
    split: str,
    city: str,
    sample_id: str,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> FixtureSample:
    height, width = size
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label_ids = FIXTURE_LABEL_IDS[rng.integers(0, len(FIXTURE_LABEL_IDS), (height, width))]
    image_path = image_dir / f"{sample_id}_leftImg8bit.png"
    label_path = label_dir / f"{sample_id}_gtFine_labelIds.png"
    Image.fromarray(image).save(image_path)
    Image.fromarray(label_ids).save(label_path)
    Image.fromarray(LABEL_ID_COLORS[label_ids]).save(label_dir / f"{sample_id}_gtFine_color.png")
    instance_ids = label_ids.astype(np.uint16) * 1000  # every pixel instance 0 of its class
    Image.fromarray(instance_ids).save(label_dir / f"{sample_id}_gtFine_instanceIds.png")
    polygons = {"imgHeight": height, "imgWidth": width, "objects": []}
    (label_dir / f"{sample_id}_gtFine_polygons.json").write_text(json.dumps(polygons))
    return FixtureSample(split, city, sample_id, image_path, label_path, image, label_ids)
