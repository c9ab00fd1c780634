"""What the painter draws on: the scene's canvas, and sprites for single objects."""

from __future__ import annotations

import numpy as np

from experiments.data.labels import LABEL_IDS_WITH_INSTANCES
from experiments.data.synthetic.camera import Window
from experiments.data.synthetic.classes import SKY
from experiments.data.synthetic.palette import RGB


class Canvas:
    """Image, label ids, instance ids and a depth buffer, so drawing order does not matter."""

    def __init__(self, height: int, width: int) -> None:
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), SKY, np.uint8)
        self.instance = np.full((height, width), SKY, np.uint16)
        self.depth = np.full((height, width), np.inf, np.float32)
        self._counts: dict[int, int] = {}

    def instance_id(self, label_id: int) -> int:
        """Cityscapes' encoding: label id * 1000 + index for classes with instances."""
        if label_id not in LABEL_IDS_WITH_INSTANCES:
            return label_id
        index = self._counts.get(label_id, 0)
        self._counts[label_id] = index + 1
        return label_id * 1000 + index

    def paint(
        self,
        window: Window,
        mask: np.ndarray,
        depth: float | np.ndarray,
        label: int | np.ndarray,
        colour: RGB,
        instance: int | np.ndarray | None = None,
        colour_mask: np.ndarray | None = None,
    ) -> None:
        """Paint `mask` within `window` wherever it is nearer than what is there.

        `colour_mask` limits the colour to part of the labelled region: a fence is labelled as
        a whole, but what is behind it shows through between its bars.
        """
        depth_view = self.depth[window]
        visible = mask & (np.broadcast_to(depth, mask.shape) <= depth_view)
        depth_view[visible] = _pick(depth, visible)
        self.label[window][visible] = _pick(label, visible)
        self.instance[window][visible] = _pick(label if instance is None else instance, visible)
        coloured = visible if colour_mask is None else visible & colour_mask
        self.image[window][coloured] = colour if colour.ndim == 1 else colour[coloured]

    def relabel(self, mask: np.ndarray, label_id: int) -> None:
        """Label pixels void without changing what they show (unlabeled, out of roi)."""
        self.label[mask] = label_id
        self.instance[mask] = label_id


def _pick(value: float | int | np.ndarray, where: np.ndarray) -> float | int | np.ndarray:
    if np.ndim(value) == 0:
        return value
    return np.broadcast_to(value, where.shape)[where]


class Sprite:
    """An object in a pixel window, drawn in metres: u to the right of its anchor, v up.

    Parts drawn later cover earlier ones; the whole sprite is then painted at one depth.
    """

    def __init__(
        self, window: Window, u: np.ndarray, v: np.ndarray, depth: float, texture: np.ndarray
    ) -> None:
        self.window, self.u, self.v, self.depth, self.texture = window, u, v, depth, texture
        self.pixel = float(u[0, 1] - u[0, 0]) if u.shape[1] > 1 else 1.0
        shape = (v.shape[0], u.shape[1])
        self.mask = np.zeros(shape, bool)
        self.label = np.zeros(shape, np.uint8)
        self.instance = np.zeros(shape, np.uint16)
        self.colour = np.zeros((*shape, 3), np.float32)

    def add(self, part: np.ndarray, label: int, colour: RGB, instance: int) -> None:
        part = np.broadcast_to(part, self.mask.shape)
        self.mask |= part
        self.label[part] = label
        self.instance[part] = instance
        self.colour[part] = colour if colour.ndim == 1 else colour[part]

    def paint_on(self, canvas: Canvas) -> None:
        canvas.paint(self.window, self.mask, self.depth, self.label, self.colour, self.instance)

    def textured(self, colour: RGB, amount: float) -> RGB:
        return colour * (1 + amount * self.texture[..., None])

    def _thick(self, low: float, high: float) -> tuple[float, float]:
        # Thin parts keep at least ~0.7 px so that distant poles alias instead of vanishing.
        half = max(high - low, 0.7 * self.pixel) / 2
        middle = (low + high) / 2
        return middle - half, middle + half

    def rect(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        u0, u1 = self._thick(u0, u1)
        v0, v1 = self._thick(v0, v1)
        return (self.u >= u0) & (self.u < u1) & (self.v >= v0) & (self.v < v1)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
        return ((self.u - cu) / ru) ** 2 + ((self.v - cv) / rv) ** 2 <= 1

    def ring(self, cu: float, cv: float, radius: float, width: float) -> np.ndarray:
        distance = np.hypot(self.u - cu, self.v - cv)
        width = max(width, 0.7 * self.pixel)
        return (distance <= radius) & (distance >= radius - width)

    def segment(self, a: tuple[float, float], b: tuple[float, float], width: float) -> np.ndarray:
        du, dv = b[0] - a[0], b[1] - a[1]
        t = np.clip(((self.u - a[0]) * du + (self.v - a[1]) * dv) / (du * du + dv * dv), 0, 1)
        distance = np.hypot(self.u - a[0] - t * du, self.v - a[1] - t * dv)
        return distance <= max(width, 0.7 * self.pixel) / 2

    def polygon(self, points: list[tuple[float, float]]) -> np.ndarray:
        """A convex polygon with counter-clockwise corners."""
        inside = np.ones(self.mask.shape, bool)
        for (u0, v0), (u1, v1) in zip(points, points[1:] + points[:1], strict=True):
            inside &= (u1 - u0) * (self.v - v0) - (v1 - v0) * (self.u - u0) >= 0
        return inside
