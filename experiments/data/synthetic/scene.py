"""One scene, from its seed to its arrays: plan it, paint it, check its guarantees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.data.labels import LABEL_ID_TO_TRAIN_ID
from experiments.data.synthetic.classes import featured_classes, guaranteed_train_ids
from experiments.data.synthetic.painter import paint_scene
from experiments.data.synthetic.planner import plan_scene

_ATTEMPTS = 6


@dataclass(frozen=True)
class SyntheticScene:
    """One rendered scene: 8-bit RGB image, label ids, and Cityscapes-encoded instance ids."""

    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray


def render_scene(seed: int, split: str, index: int, height: int, width: int) -> SyntheticScene:
    """Render scene `index` of `split`; a pure function of its arguments.

    A layout can hide a guaranteed class behind something nearer; the scene is then planned
    again from the same stream, so the result stays deterministic.
    """
    rng = np.random.default_rng([seed, ("train", "val").index(split), index])
    featured = featured_classes(index)
    wanted = guaranteed_train_ids(featured)
    for _ in range(_ATTEMPTS):
        canvas = paint_scene(plan_scene(rng, height, width, featured))
        if wanted <= set(np.unique(LABEL_ID_TO_TRAIN_ID[canvas.label]).tolist()):
            break
    image = np.round(np.clip(canvas.image, 0, 1) * 255).astype(np.uint8)
    return SyntheticScene(image, canvas.label, canvas.instance)
