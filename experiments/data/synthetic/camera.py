"""The camera: a level pinhole over the road, and the projections the planner and painter use."""

from __future__ import annotations

import numpy as np

Window = tuple[slice, slice]  # rows, columns of a rectangle of pixels


class Camera:
    """A level pinhole camera: x to the right, y (height) up, z (depth) forward, in metres."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.focal = width * rng.uniform(1.0, 1.25)
        self.horizon = height * rng.uniform(0.36, 0.48)
        self.centre = width * (0.5 + rng.uniform(-0.08, 0.08))
        self.elevation = rng.uniform(1.15, 1.35)
        self.rows = np.arange(height, dtype=np.float32) + 0.5
        self.cols = np.arange(width, dtype=np.float32) + 0.5
        # The first row whose centre is a pixel or more below the horizon: the ground it sees
        # is at most focal * elevation (~700 m at 512 px wide) away; rows above get none.
        self.ground_top = int(np.ceil(self.horizon + 0.5))

    def ground(self, lift: float) -> tuple[np.ndarray, np.ndarray]:
        """Depth (h, 1) and lateral position (h, W) of the plane `lift` metres up, for the rows
        from `ground_top` down."""
        below = self.rows[self.ground_top :, None] - self.horizon
        depth = self.focal * (self.elevation - lift) / below
        return depth, (self.cols[None, :] - self.centre) * depth / self.focal

    def side_plane(self, lateral: float) -> tuple[slice, np.ndarray, np.ndarray]:
        """A vertical plane along the street at x = `lateral`: the columns that see it, their
        depth (W',) and the height above the road (H, W') of every pixel on it."""
        offsets = self.cols - self.centre
        left_end = int(np.searchsorted(offsets, -0.5))
        right_start = int(np.searchsorted(offsets, 0.5))
        columns = slice(0, left_end) if lateral < 0 else slice(right_start, self.width)
        depth = self.focal * lateral / offsets[columns]
        heights = self.elevation + (self.horizon - self.rows[:, None]) * depth / self.focal
        return columns, depth, heights

    def row_at(self, height: float, depth: float) -> float:
        return self.horizon + self.focal * (self.elevation - height) / depth

    def column_at(self, lateral: float, depth: float) -> float:
        return self.centre + self.focal * lateral / depth

    def in_frame(self, x: float, depth: float, margin: float = 1.5) -> float:
        """`depth`, pushed back until whatever stands at `x` (+- `margin` metres) is in view."""
        room = self.centre if x < 0 else self.width - self.centre
        return max(depth, (abs(x) + margin) * self.focal / room)

    def window(
        self, x: float, z: float, left: float, right: float, bottom: float, top: float
    ) -> Window | None:
        """The pixels that see the upright box [left, right] x [bottom, top] metres around the
        point (x, z) on the road; None when it is out of the frame."""
        first_column = max(int(np.floor(self.column_at(x + left, z))), 0)
        end_column = min(int(np.ceil(self.column_at(x + right, z))), self.width)
        first_row = max(int(np.floor(self.row_at(top, z))), 0)
        end_row = min(int(np.ceil(self.row_at(bottom, z))), self.height)
        if end_column - first_column < 1 or end_row - first_row < 1:
            return None
        return slice(first_row, end_row), slice(first_column, end_column)

    def upright(self, window: Window, x: float, z: float) -> tuple[np.ndarray, np.ndarray]:
        """For the pixels of `window` on the upright plane at depth z: metres to the right of x
        (1, W') and up from the road (H', 1)."""
        rows, columns = window
        u = (self.cols[None, columns] - self.centre) * z / self.focal - x
        v = self.elevation - (self.rows[rows, None] - self.horizon) * z / self.focal
        return u, v
