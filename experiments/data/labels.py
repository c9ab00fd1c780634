"""The official Cityscapes label table as lookup arrays.

Everything is derived from `cityscapesscripts.helpers.labels`, so the mapping is the one the
official evaluator uses; nothing here is typed in by hand.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import Label
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

NUM_CLASSES = 19
IGNORE_INDEX = 255


def _train_labels() -> list[Label]:
    """The official labels that are evaluated, in train-id order."""
    evaluated = [label for label in _CITYSCAPES_LABELS if 0 <= label.trainId < IGNORE_INDEX]
    evaluated.sort(key=lambda label: label.trainId)
    if [label.trainId for label in evaluated] != list(range(NUM_CLASSES)):
        raise RuntimeError("cityscapesscripts' label table no longer has train ids 0..18")
    return evaluated


def _label_id_to_train_id() -> np.ndarray:
    # 256 entries so that any uint8 label image can be mapped with one fancy-index; ids absent
    # from the table (and -1, license plate, which never appears in a labelIds PNG) are ignored.
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id < 256 and 0 <= label.trainId < IGNORE_INDEX:
            table[label.id] = label.trainId
    return table


def _train_id_to_label_id() -> np.ndarray:
    # Ignored predictions are exported as 0 (unlabeled), which the evaluator never scores.
    table = np.zeros(256, dtype=np.uint8)
    for label in _train_labels():
        table[label.trainId] = label.id
    return table


def _label_id_colors() -> np.ndarray:
    table = np.zeros((256, 3), dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id < 256:
            table[label.id] = label.color
    return table


def _read_only(table: np.ndarray) -> np.ndarray:
    # Shared module-level tables: a caller writing into one would corrupt every later lookup.
    table.flags.writeable = False
    return table


LABEL_ID_TO_TRAIN_ID: np.ndarray = _read_only(_label_id_to_train_id())
MAX_LABEL_ID: int = max(label.id for label in _CITYSCAPES_LABELS)  # 33: ids run 0..33
TRAIN_ID_TO_LABEL_ID: np.ndarray = _read_only(_train_id_to_label_id())
LABEL_ID_COLORS: np.ndarray = _read_only(_label_id_colors())
TRAIN_ID_COLORS: np.ndarray = _read_only(LABEL_ID_COLORS[TRAIN_ID_TO_LABEL_ID[:NUM_CLASSES]])
CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in _train_labels())
LABEL_IDS_WITH_INSTANCES: frozenset[int] = frozenset(
    label.id for label in _CITYSCAPES_LABELS if label.hasInstances and label.id >= 0
)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an array of Cityscapes label ids (uint8) to train ids 0..18, 255 for ignore."""
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map predicted train ids back to label ids, the format the official evaluator reads."""
    return TRAIN_ID_TO_LABEL_ID[train_ids]
