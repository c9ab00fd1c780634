"""The synthetic data set: official layout, real label ids, determinism, caching."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.csHelpers import getCsFileInfo
from PIL import Image

from experiments.data import (
    CityscapesDataset,
    DatasetError,
    EvalTransform,
    ensure_synthetic_cityscapes,
    index_split,
    label_ids_to_train_ids,
    synthetic,
)
from experiments.data.labels import LABEL_ID_COLORS, LABEL_IDS_WITH_INSTANCES
from experiments.data.synthetic import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TRAIN_CITIES,
    VAL_CITIES,
)
from experiments.data.synthetic.cache import source_digest

SMALL = {"n_train": 6, "n_val": 2, "height": 64, "width": 128}
VOID_IDS = {0, 1, 3, 4, 5}  # unlabeled, ego vehicle, out of roi, static, dynamic
IGNORED_IDS = {9, 10, 14, 15, 29, 30}  # parking, rail track, guard rail, bridge, caravan, trailer


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return ensure_synthetic_cityscapes(tmp_path_factory.mktemp("synthetic") / "set", **SMALL)


def label_ids(root: Path, split: str = "train") -> list[np.ndarray]:
    return [np.asarray(Image.open(s.label)) for s in index_split(root, split)]


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_layout_is_the_official_one(small_set):
    for split, count, cities in (("train", 6, TRAIN_CITIES), ("val", 2, VAL_CITIES)):
        images = sorted((small_set / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(images) == count
        for image in images:
            info = getCsFileInfo(str(image))  # the official scripts' own name parser
            assert info.city in cities and image.parent.name == info.city
            assert re.fullmatch(r"[a-z]+_\d{6}_\d{6}_leftImg8bit\.png", image.name)
            stem = f"{info.city}_{info.sequenceNb}_{info.frameNb}"
            folder = small_set / "gtFine" / split / info.city
            for suffix in ("labelIds", "color", "instanceIds"):
                assert (folder / f"{stem}_gtFine_{suffix}.png").is_file()
            with Image.open(image) as opened:
                assert opened.mode == "RGB" and opened.size == (128, 64)
    assert not (small_set / "leftImg8bit" / "test").exists()


def test_the_loader_reads_it(small_set):
    dataset = CityscapesDataset(small_set, "val", EvalTransform())
    image, label = dataset[0]
    assert image.shape == (3, 64, 128) and label.shape == (64, 128)


def test_every_train_class_occurs_in_a_few_scenes(small_set):
    present = set()
    for ids in label_ids(small_set):
        present |= set(np.unique(label_ids_to_train_ids(ids)).tolist())
    assert set(range(19)) <= present


def test_void_and_ignored_label_ids_occur(small_set):
    present = set()
    for ids in label_ids(small_set) + label_ids(small_set, "val"):
        present |= set(np.unique(ids).tolist())
    assert present & VOID_IDS and present & IGNORED_IDS
    assert present <= set(range(34))


def test_colour_and_instance_files_agree_with_the_labels(small_set):
    for sample in index_split(small_set, "train")[:2]:
        folder, stem = sample.label.parent, sample.id
        ids = np.asarray(Image.open(sample.label))
        colour = np.asarray(Image.open(folder / f"{stem}_gtFine_color.png"))
        instances = np.asarray(Image.open(folder / f"{stem}_gtFine_instanceIds.png")).astype(int)
        np.testing.assert_array_equal(colour[..., :3], LABEL_ID_COLORS[ids])
        with_instances = np.isin(ids, list(LABEL_IDS_WITH_INSTANCES))
        assert with_instances.any()
        np.testing.assert_array_equal(instances[with_instances] // 1000, ids[with_instances])
        np.testing.assert_array_equal(instances[~with_instances], ids[~with_instances])


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path, small_set):
    again = ensure_synthetic_cityscapes(tmp_path / "again", **SMALL)
    assert all_files(again) == all_files(small_set)
    other = ensure_synthetic_cityscapes(tmp_path / "other", **SMALL, seed=1)
    first = sorted(small_set.glob("leftImg8bit/train/*/*.png"))[0]
    assert (other / first.relative_to(small_set)).read_bytes() != first.read_bytes()


def test_the_same_files_from_several_worker_processes(tmp_path, small_set):
    parallel = ensure_synthetic_cityscapes(tmp_path / "parallel", **SMALL, workers=2)
    assert all_files(parallel) == all_files(small_set)


def test_an_existing_set_is_reused_not_regenerated(small_set):
    stamps = {p: p.stat().st_mtime_ns for p in small_set.rglob("*.png")}
    assert ensure_synthetic_cityscapes(small_set, **SMALL) == small_set
    assert {p: p.stat().st_mtime_ns for p in small_set.rglob("*.png")} == stamps


def test_default_root_is_a_per_parameters_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tiny = {"n_train": 1, "n_val": 1, "height": 32, "width": 64}
    root = ensure_synthetic_cityscapes(**tiny)
    assert root.parent == tmp_path / "dfanet-workbench"
    assert re.fullmatch(rf"synthetic-cityscapes-v{GENERATOR_VERSION}-[0-9a-f]{{12}}", root.name)
    assert (root / MANIFEST_NAME).is_file()
    assert ensure_synthetic_cityscapes(**tiny, seed=5) != root
    assert sorted(p.name for p in root.parent.iterdir()) == sorted(
        [root.name, ensure_synthetic_cityscapes(**tiny, seed=5).name]
    )  # no staging folders left behind


def test_an_edit_to_any_module_of_the_generator_changes_the_cache_key(tmp_path, small_set):
    package = Path(synthetic.__file__).parent
    manifest = json.loads((small_set / MANIFEST_NAME).read_text())
    assert manifest["source"] == source_digest(package)  # the key holds the package's digest
    copy = tmp_path / "synthetic"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == source_digest(package)
    modules = sorted(copy.glob("*.py"))
    assert len(modules) > 1
    digests = set()
    for module in modules:
        original = module.read_bytes()
        module.write_bytes(original + b"# edited\n")
        digests.add(source_digest(copy))
        module.write_bytes(original)
    assert len(digests) == len(modules) and source_digest(package) not in digests


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        ensure_synthetic_cityscapes(tmp_path, n_train=1, n_val=1, height=32, width=64)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_another_size_in_the_same_root_is_refused(small_set):
    with pytest.raises(DatasetError, match="is not a synthetic set with"):
        ensure_synthetic_cityscapes(small_set, **{**SMALL, "height": 32})


def test_concurrent_generation_never_exposes_a_partial_set(tmp_path):
    """Both callers finish; whichever moved its copy in first wins, and the set is whole."""
    tiny = {"n_train": 3, "n_val": 1, "height": 32, "width": 64}
    root = tmp_path / "shared"
    results, errors = [], []

    def generate() -> None:
        try:
            results.append(ensure_synthetic_cityscapes(root, **tiny))
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=generate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [root, root]
    assert len(index_split(root, "train")) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]


def test_invalid_parameters():
    with pytest.raises(ValueError, match="n_train"):
        ensure_synthetic_cityscapes(n_train=0)
