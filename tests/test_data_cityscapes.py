"""The Cityscapes loader and label mapping, on small real files in the official layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cityscapes_fixture import FixtureSample, write_cityscapes
from cityscapesscripts.helpers.labels import labels as official_labels
from PIL import Image
from torch.utils.data import DataLoader

from experiments.data import (
    CLASS_NAMES,
    ENV_VAR,
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    TRAIN_ID_TO_LABEL_ID,
    CityscapesDataset,
    DatasetError,
    EvalTransform,
    index_split,
    label_ids_to_train_ids,
    resolve_root,
    train_ids_to_label_ids,
)


@pytest.fixture
def written(tmp_path) -> list[FixtureSample]:
    return write_cityscapes(tmp_path)


@pytest.fixture(autouse=True)
def no_env_root(monkeypatch):
    """Tests must not see a Cityscapes root the machine happens to have."""
    monkeypatch.delenv(ENV_VAR, raising=False)


# ------------------------------------------------------------------ label mapping
@pytest.mark.parametrize(
    ("label_id", "train_id"),
    [(7, 0), (8, 1), (11, 2), (24, 11), (25, 12), (26, 13), (31, 16), (33, 18)],
)
def test_evaluated_label_ids_map_to_their_train_ids(label_id, train_id):
    assert LABEL_ID_TO_TRAIN_ID[label_id] == train_id


@pytest.mark.parametrize("label_id", [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255])
def test_void_and_ignored_label_ids_map_to_ignore(label_id):
    assert LABEL_ID_TO_TRAIN_ID[label_id] == IGNORE_INDEX


def test_mapping_matches_the_official_table_and_inverts():
    for label in official_labels:
        if 0 <= label.id < 256:
            expected = label.trainId if 0 <= label.trainId < 255 else IGNORE_INDEX
            assert LABEL_ID_TO_TRAIN_ID[label.id] == expected, label.name
    assert LABEL_ID_TO_TRAIN_ID.shape == (256,) and LABEL_ID_TO_TRAIN_ID.dtype == np.uint8
    train_ids = np.arange(NUM_CLASSES, dtype=np.uint8)
    np.testing.assert_array_equal(
        label_ids_to_train_ids(train_ids_to_label_ids(train_ids)), train_ids
    )
    assert TRAIN_ID_TO_LABEL_ID[IGNORE_INDEX] == 0  # ignored predictions export as unlabeled
    assert len(CLASS_NAMES) == NUM_CLASSES == 19
    assert (CLASS_NAMES[0], CLASS_NAMES[13], CLASS_NAMES[18]) == ("road", "car", "bicycle")


def test_tables_are_read_only():
    with pytest.raises(ValueError):
        LABEL_ID_TO_TRAIN_ID[7] = 3


# ------------------------------------------------------------------ index and items
def test_index_lists_images_with_their_label_ids_files(tmp_path, written):
    samples = index_split(tmp_path, "train")
    expected = [s for s in written if s.split == "train"]
    assert [s.id for s in samples] == [s.id for s in expected]
    assert [s.image for s in samples] == [s.image_path for s in expected]
    assert [s.label for s in samples] == [s.label_path for s in expected]
    assert all(s.label.name.endswith("_gtFine_labelIds.png") for s in samples)
    assert {s.city for s in samples} == {"aachen", "bochum"}


def test_items_are_normalised_images_and_train_id_labels(tmp_path, written):
    dataset = CityscapesDataset(tmp_path, "val")
    assert len(dataset) == 2
    for index, sample in enumerate(s for s in written if s.split == "val"):
        image, label = dataset[index]
        assert dataset.samples[index].id == sample.id
        assert image.dtype == torch.float32 and image.shape == (3, 24, 48)
        assert label.dtype == torch.int64 and label.shape == (24, 48)
        expected_label = LABEL_ID_TO_TRAIN_ID[sample.label_ids].astype(np.int64)
        np.testing.assert_array_equal(label.numpy(), expected_label)
        mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
        expected_image = ((sample.image / 255.0 - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(image.numpy(), expected_image, atol=1e-5)


def test_labels_hold_only_train_ids_and_ignore(tmp_path, written):
    _, label = CityscapesDataset(tmp_path, "train")[0]
    values = set(label.unique().tolist())
    assert IGNORE_INDEX in values
    assert values <= {*range(NUM_CLASSES), IGNORE_INDEX}


def test_cached_items_equal_decoded_items(tmp_path, written):
    plain = CityscapesDataset(tmp_path, "train")
    cached = CityscapesDataset(tmp_path, "train", cache=True)
    for _ in range(2):  # the second pass is served from memory
        for index in range(len(plain)):
            for got, expected in zip(cached[index], plain[index], strict=True):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_root_from_the_environment_variable(tmp_path, written, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_root(None) == tmp_path
    assert len(CityscapesDataset(split="train")) == 3


def test_explicit_root_wins_over_the_environment(tmp_path, written, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    assert resolve_root(tmp_path) == tmp_path


def test_eval_transform_keeps_the_label_at_full_resolution(tmp_path, written):
    image, label = CityscapesDataset(tmp_path, "val", EvalTransform((12, 24)))[0]
    assert image.shape == (3, 12, 24) and label.shape == (24, 48)


def _draw(image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
    """A transform that shows which random stream served the item (module level: picklable)."""
    return torch.tensor(rng.random()), torch.tensor(0)


def test_workers_draw_distinct_augmentations(tmp_path):
    """Each DataLoader worker reseeds: a generator made in the parent is never inherited."""
    write_cityscapes(tmp_path, splits={"train": 4}, size=(8, 8))
    dataset = CityscapesDataset(tmp_path, "train", _draw)
    dataset[0]  # creates the parent's generator, which the pickled copies carry along
    # spawn, not fork: fork warns (3.12+) once torch has started threads in this process.
    loader = DataLoader(dataset, batch_size=1, num_workers=2, multiprocessing_context="spawn")
    values = [float(value) for value, _ in loader]
    assert len(set(values)) == 4  # items 0, 2 come from worker 0; 1, 3 from worker 1


def test_same_torch_seed_same_augmentations(tmp_path):
    write_cityscapes(tmp_path, splits={"train": 2}, size=(8, 8))
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        dataset = CityscapesDataset(tmp_path, "train", _draw)
        draws.append([float(dataset[i][0]) for i in (0, 1, 0)])
    assert draws[0] == draws[1]
    assert len(set(draws[0])) == 3  # one stream per process, not one per item


# ------------------------------------------------------------------ errors
def test_missing_root_says_what_was_expected_and_how_to_run_the_demo(tmp_path):
    missing = tmp_path / "no-cityscapes-here"
    with pytest.raises(DatasetError) as error:
        index_split(missing, "train")
    message = str(error.value)
    assert str(missing) in message
    assert "leftImg8bit/train/<city>/<city>_<seq>_<frame>_leftImg8bit.png" in message
    assert "dataset.root=" in message and ENV_VAR in message
    assert "python -m experiments.search +study=demo" in message


def test_no_root_and_no_environment_variable():
    with pytest.raises(DatasetError, match=f"{ENV_VAR} is not set.*\\+study=demo"):
        resolve_root(None)


def test_missing_split_folder_is_named(tmp_path, written):
    with pytest.raises(DatasetError, match="leftImg8bit/test does not exist"):
        index_split(tmp_path, "test")


def test_unknown_split(tmp_path, written):
    with pytest.raises(DatasetError, match="Unknown split 'training'"):
        index_split(tmp_path, "training")


def test_empty_split(tmp_path):
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"No images in .*leftImg8bit/train"):
        index_split(tmp_path, "train")


def test_image_without_its_label(tmp_path, written):
    orphan = next(s for s in written if s.split == "train")
    orphan.label_path.unlink()
    with pytest.raises(DatasetError) as error:
        index_split(tmp_path, "train")
    assert "1 of 3 images" in str(error.value)
    assert str(orphan.label_path) in str(error.value)


def test_label_of_another_size(tmp_path, written):
    sample = written[0]
    Image.fromarray(np.zeros((20, 48), np.uint8)).save(sample.label_path)
    with pytest.raises(DatasetError) as error:
        index_split(tmp_path, sample.split)
    assert str(sample.label_path) in str(error.value) and str(sample.image_path) in str(error.value)
    assert "48x20" in str(error.value) and "48x24" in str(error.value)


def test_label_with_colours_instead_of_ids(tmp_path, written):
    sample = written[0]
    Image.fromarray(np.zeros((24, 48, 3), np.uint8)).save(sample.label_path)
    with pytest.raises(DatasetError, match="has mode RGB; expected 8-bit grey"):
        index_split(tmp_path, sample.split)


def test_unreadable_file_is_named_at_index_time(tmp_path, written):
    sample = written[0]
    sample.image_path.write_bytes(b"not a png at all")
    with pytest.raises(DatasetError) as error:
        index_split(tmp_path, sample.split)
    assert f"{sample.image_path} is truncated or not a PNG" in str(error.value)


@pytest.mark.parametrize("which", ["image_path", "label_path"])
def test_truncated_file_is_named_at_index_time(tmp_path, written, which):
    """A cut-off PNG has a readable header: its missing end chunk gives it away, before any
    training rather than when the loader first reaches it."""
    path = getattr(written[0], which)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    with Image.open(path) as image:  # what a header check alone sees: nothing wrong
        assert image.size == (48, 24)
    with pytest.raises(DatasetError, match=f"{path} is truncated or not a PNG"):
        index_split(tmp_path, written[0].split)


def test_a_truncated_file_that_escaped_indexing_is_named_when_decoded(tmp_path, written):
    sample = written[0]
    dataset = CityscapesDataset(tmp_path, sample.split)
    data = sample.image_path.read_bytes()
    sample.image_path.write_bytes(data[: len(data) // 2])
    index = [s.id for s in dataset.samples].index(sample.id)
    with pytest.raises(DatasetError, match=f"Cannot decode {sample.image_path}"):
        dataset[index]


@pytest.mark.parametrize(
    ("values", "unknown"),
    [((7, 250), [250]), ((0, 5, 18, 255), [255])],  # a stray id; a trainIds image (255 = void)
    ids=["stray-id", "train-ids-image"],
)
def test_label_values_outside_the_official_ids_are_named(tmp_path, written, values, unknown):
    sample = written[0]
    label = np.array(values, np.uint8)[np.arange(24 * 48).reshape(24, 48) % len(values)]
    Image.fromarray(label).save(sample.label_path)
    dataset = CityscapesDataset(tmp_path, sample.split)
    index = [s.id for s in dataset.samples].index(sample.id)
    with pytest.raises(DatasetError) as error:
        dataset[index]
    assert str(sample.label_path) in str(error.value) and f"values {unknown}" in str(error.value)
