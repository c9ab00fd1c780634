"""The data set on disk: scenes written in the Cityscapes layout, in a cache folder keyed by
the parameters and by the generator's source code."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX, DatasetError
from experiments.data.labels import LABEL_ID_COLORS
from experiments.data.synthetic.scene import SyntheticScene, render_scene


def source_digest(package: Path) -> str:
    """A digest of every module in `package`, taken in name order so that it is stable."""
    digest = hashlib.sha256()
    for module in sorted(package.glob("*.py")):
        digest.update(module.name.encode() + b"\0")
        digest.update(hashlib.sha256(module.read_bytes()).digest())
    return digest.hexdigest()[:12]


# Part of the cache folder's name, for people; the cache key also holds a digest of the
# package's code, so any edit to the drawing (while tuning it, say) renders a fresh set
# instead of reusing one.
GENERATOR_VERSION = 1
SOURCE_DIGEST = source_digest(Path(__file__).parent)
MANIFEST_NAME = "synthetic.json"
COLOR_SUFFIX = "_gtFine_color.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
TRAIN_CITIES = (
    "aachen",
    "bochum",
    "bremen",
    "cologne",
    "darmstadt",
    "dusseldorf",
    "erfurt",
    "hamburg",
    "hanover",
    "jena",
    "krefeld",
    "monchengladbach",
    "strasbourg",
    "stuttgart",
    "tubingen",
    "ulm",
    "weimar",
    "zurich",
)
VAL_CITIES = ("frankfurt", "lindau", "munster")
_PARALLEL_FROM = 64  # scenes; below this, starting worker processes costs more than it saves


def _scene_ids(split: str, count: int) -> list[tuple[str, str]]:
    """(city, sample id) for each scene: cities in contiguous runs, Cityscapes-style names."""
    cities = TRAIN_CITIES if split == "train" else VAL_CITIES
    ids = []
    for index in range(count):
        city_index = index * len(cities) // count
        first = -(-city_index * count // len(cities))  # first scene index of this city
        ids.append((cities[city_index], f"{cities[city_index]}_{index - first:06d}_000019"))
    return ids


def _write_scene(root: Path, split: str, city: str, sample_id: str, scene: SyntheticScene) -> None:
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    # compress_level=1: a third of the default's time, and decoding speed does not change.
    options = {"compress_level": 1}
    Image.fromarray(scene.image).save(image_dir / f"{sample_id}{IMAGE_SUFFIX}", **options)
    Image.fromarray(scene.label_ids).save(label_dir / f"{sample_id}{LABEL_SUFFIX}", **options)
    colour = np.concatenate(
        [LABEL_ID_COLORS[scene.label_ids], np.full((*scene.label_ids.shape, 1), 255, np.uint8)],
        axis=2,
    )  # Cityscapes' colour images are RGBA
    Image.fromarray(colour).save(label_dir / f"{sample_id}{COLOR_SUFFIX}", **options)
    Image.fromarray(scene.instance_ids).save(label_dir / f"{sample_id}{INSTANCE_SUFFIX}", **options)


@dataclass(frozen=True)
class _Params:
    n_train: int
    n_val: int
    height: int
    width: int
    seed: int
    version: int = GENERATOR_VERSION
    source: str = SOURCE_DIGEST

    def manifest(self) -> dict[str, int | str]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.manifest(), sort_keys=True).encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfanet-workbench"


@dataclass(frozen=True)
class _Job:
    """One scene to render and write; small and picklable, for worker processes."""

    staging: Path
    params: _Params
    split: str
    index: int
    city: str
    sample_id: str

    def __call__(self) -> None:
        p = self.params
        scene = render_scene(p.seed, self.split, self.index, p.height, p.width)
        _write_scene(self.staging, self.split, self.city, self.sample_id, scene)


def _run(job: _Job) -> None:
    job()


def _build(params: _Params, target: Path, workers: int) -> None:
    """Render into a fresh folder beside `target`, then move it into place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would otherwise become the cache's mode
    jobs = [
        _Job(staging, params, split, index, city, sample_id)
        for split, count in (("train", params.n_train), ("val", params.n_val))
        for index, (city, sample_id) in enumerate(_scene_ids(split, count))
    ]
    try:
        if workers > 1:
            # spawn, not fork: the caller has usually started torch's threads already.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                list(pool.map(_run, jobs, chunksize=8))
        else:
            for job in jobs:
                job()
        (staging / MANIFEST_NAME).write_text(json.dumps(params.manifest(), indent=2) + "\n")
        try:
            # Atomic on POSIX; replaces only a missing or empty target, never someone's data.
            os.replace(staging, target)
        except OSError:
            if _manifest(target) != params.manifest():
                raise
            # Another process finished the same set first: theirs is identical, keep it.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _manifest(root: Path) -> dict[str, int | str] | None:
    try:
        return json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def ensure_synthetic_cityscapes(
    root: str | os.PathLike[str] | None = None,
    *,
    n_train: int = 300,
    n_val: int = 100,
    height: int = 256,
    width: int = 512,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """The root of the synthetic set with these parameters, rendered on first use.

    Rendering takes ~70 ms a scene on one core; `workers` processes share it (default: one
    per CPU, at most 8, and none for sets too small to repay starting them). The files do not
    depend on `workers`.

    `root=None` uses `$XDG_CACHE_HOME` (or `~/.cache`) `/dfanet-workbench/
    synthetic-cityscapes-v<version>-<hash of the parameters>`. An existing root is reused when
    its manifest matches; a non-empty folder with another manifest (or none) is an error,
    rather than something to overwrite.
    """
    if min(n_train, n_val) < 1 or min(height, width) < 32:
        raise ValueError(
            f"need n_train, n_val >= 1 and a size of at least 32x32, got n_train={n_train}, "
            f"n_val={n_val}, {height}x{width}"
        )
    params = _Params(n_train, n_val, height, width, seed)
    target = (
        Path(root)
        if root is not None
        else (default_cache_dir() / f"synthetic-cityscapes-v{GENERATOR_VERSION}-{params.digest()}")
    )
    found = _manifest(target)
    if found == params.manifest():
        return target
    if target.exists() and any(target.iterdir()):
        raise DatasetError(
            f"{target} is not empty and is not a synthetic set with {params.manifest()} "
            f"(its {MANIFEST_NAME}: {found}); choose another root or remove it"
        )
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if n_train + n_val >= _PARALLEL_FROM else 1
    _build(params, target, workers)
    return target
