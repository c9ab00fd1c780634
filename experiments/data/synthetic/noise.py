"""Per-scene noise fields: the planner draws them, the painter cuts every texture from them."""

from __future__ import annotations

import numpy as np
from PIL import Image


class Noise:
    """Noise fields at three scales, all (H, W) float32 with std ~1."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.coarse = _smooth_noise(rng, height, width, cell=40)
        self.medium = _smooth_noise(rng, height, width, cell=6)
        self.fine = rng.standard_normal((height, width), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """White noise on a grid of `cell`-pixel squares, bicubically interpolated to full size."""
    grid = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    field = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(field) / max(float(np.std(field)), 1e-6)
