"""Colour tables shared by several classes, so that colour alone never gives the class."""

from __future__ import annotations

import numpy as np

RGB = np.ndarray  # float32 colour in 0..1, shape (3,) or (..., 3)

# One paint palette for every vehicle class: body colour never tells car from bus.
PAINT = np.array(
    [
        (0.90, 0.90, 0.90),
        (0.70, 0.72, 0.75),
        (0.45, 0.46, 0.48),
        (0.08, 0.08, 0.10),
        (0.10, 0.15, 0.35),
        (0.70, 0.10, 0.10),
        (0.20, 0.35, 0.70),
        (0.15, 0.40, 0.25),
        (0.85, 0.70, 0.15),
        (0.75, 0.68, 0.55),
    ],
    dtype=np.float32,
)
# Facade palette; also used by walls, and its light entries overlap an overcast sky.
FACADE = np.array(
    [
        (0.55, 0.55, 0.55),
        (0.75, 0.72, 0.66),
        (0.62, 0.35, 0.28),
        (0.85, 0.83, 0.78),
        (0.45, 0.45, 0.48),
        (0.70, 0.62, 0.50),
        (0.60, 0.65, 0.70),
        (0.80, 0.78, 0.80),
    ],
    dtype=np.float32,
)
# One wardrobe for people and riders.
CLOTHES = np.array(
    [
        (0.08, 0.08, 0.09),
        (0.30, 0.30, 0.32),
        (0.12, 0.15, 0.30),
        (0.25, 0.35, 0.55),
        (0.65, 0.12, 0.12),
        (0.72, 0.65, 0.52),
        (0.88, 0.88, 0.86),
        (0.40, 0.26, 0.16),
        (0.20, 0.35, 0.22),
    ],
    dtype=np.float32,
)
SKIN = np.array([(0.87, 0.70, 0.58), (0.70, 0.52, 0.40), (0.45, 0.32, 0.24)], np.float32)
METAL = np.array([(0.50, 0.50, 0.52), (0.22, 0.23, 0.23), (0.30, 0.38, 0.32)], np.float32)
GLASS = np.array((0.12, 0.15, 0.18), np.float32)
TYRE = np.array((0.06, 0.06, 0.06), np.float32)
WHITE = np.array((0.88, 0.88, 0.86), np.float32)


def hsv(hue: float, saturation: float, value: float) -> RGB:
    """One HSV colour (all in 0..1) as RGB."""
    sector = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = (
        value * (1 - saturation),
        value * (1 - f * saturation),
        value * (1 - (1 - f) * saturation),
    )
    rgb = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    return np.array(rgb[sector], np.float32)


def foliage(leaves: RGB, medium: np.ndarray, fine: np.ndarray) -> RGB:
    """Light and dark leaf clumps around the scene's leaf colour, from two noise fields."""
    clumps = np.clip(0.75 + 0.35 * medium + 0.25 * fine, 0.3, 1.5)
    return leaves * clumps[..., None]
