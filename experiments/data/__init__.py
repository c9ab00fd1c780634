"""The data layer: Cityscapes in its official layout, the built-in synthetic set in the same
layout, the label mapping, and the training/evaluation transforms."""

from experiments.data.cityscapes import (
    ENV_VAR,
    CityscapesDataset,
    DatasetError,
    Sample,
    check_sample,
    index_split,
    load_sample,
    resolve_root,
)
from experiments.data.labels import (
    CLASS_NAMES,
    IGNORE_INDEX,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    TRAIN_ID_COLORS,
    TRAIN_ID_TO_LABEL_ID,
    label_ids_to_train_ids,
    train_ids_to_label_ids,
)
from experiments.data.synthetic import (
    SyntheticScene,
    default_cache_dir,
    ensure_synthetic_cityscapes,
    render_scene,
)
from experiments.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    Normalize,
    TrainTransform,
    Transform,
)

__all__ = [
    "CLASS_NAMES",
    "ENV_VAR",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LABEL_ID_TO_TRAIN_ID",
    "NUM_CLASSES",
    "TRAIN_ID_COLORS",
    "TRAIN_ID_TO_LABEL_ID",
    "CityscapesDataset",
    "DatasetError",
    "EvalTransform",
    "Normalize",
    "Sample",
    "SyntheticScene",
    "TrainTransform",
    "Transform",
    "check_sample",
    "default_cache_dir",
    "ensure_synthetic_cityscapes",
    "index_split",
    "label_ids_to_train_ids",
    "load_sample",
    "render_scene",
    "resolve_root",
    "train_ids_to_label_ids",
]
