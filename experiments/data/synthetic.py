"""The built-in data set: synthetic street scenes written in the exact Cityscapes layout.

Each scene is rendered with a pinhole camera over a street: a road with lanes, raised and tiled
sidewalks, facades with windows, terrain strips, walls, fences, poles carrying signs and lights,
trees, vehicles, people and riders, then lit, colour-cast and noised. Labels are real
Cityscapes label ids, void and ignored classes included, so the official tools and our loader
read it exactly as they read Cityscapes.

It is meant to separate architectures, not to be solved by any of them. Colour alone does not
give the class: road, sidewalk and parking share one grey (sidewalks differ by tiles, a kerb and
their position); cars, trucks, buses, caravans, trailers and trams share one paint palette and
differ by shape and size (and trams by their rails); people and riders share clothes and differ
by the bicycle or motorcycle under the rider; sky, facades, walls, distant skylines, trees and
grass have overlapping colours and differ by texture and position. Poles, signs and lights are a
few pixels wide at the demo's 128x256 input (posts of 0.35-0.5 m, signs of about a metre:
sized for that resolution rather than true to life), so a stride-4 decoder can resolve them and
a stride-16 backbone output cannot. All of that rewards resolution, receptive field and
capacity; the pixel noise and lighting changes are there so that nothing is solved by a colour
lookup.

`ensure_synthetic_cityscapes` renders the set once into a cache folder and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from experiments.data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX
from experiments.data.labels import LABEL_ID_COLORS, LABEL_ID_TO_TRAIN_ID, LABEL_IDS_WITH_INSTANCES

# Part of the cache folder's name, for people; the cache key also holds a digest of this file,
# so any edit to the drawing (while tuning it, say) renders a fresh set instead of reusing one.
GENERATOR_VERSION = 1
_SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
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
# Rare classes are guaranteed by rotation: scene i features FEATURES[(3i + k) % 8], k < 3, so
# any three consecutive scenes show all of them; the common classes are in every scene.
# Interleaved so that no scene must fit three large vehicles, nor a wall and a fence.
FEATURES = ("train", "wall", "bus", "bicycle", "truck", "fence", "motorcycle", "terrain")
_FEATURES_PER_SCENE = 3
_ALWAYS = (
    "road",
    "sidewalk",
    "building",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "sky",
    "person",
    "car",
)
_FEATURE_CLASSES = {
    "train": ("train",),
    "bus": ("bus",),
    "truck": ("truck",),
    "motorcycle": ("motorcycle", "rider"),
    "bicycle": ("bicycle", "rider"),
    "wall": ("wall",),
    "fence": ("fence",),
    "terrain": ("terrain",),
}
_ATTEMPTS = 6
_PARALLEL_FROM = 64  # scenes; below this, starting worker processes costs more than it saves


def _id(name: str) -> int:
    return name2label[name].id


UNLABELED, EGO_VEHICLE, OUT_OF_ROI, STATIC, DYNAMIC = (
    _id(n) for n in ("unlabeled", "ego vehicle", "out of roi", "static", "dynamic")
)
ROAD, SIDEWALK, PARKING, RAIL_TRACK = (
    _id(n) for n in ("road", "sidewalk", "parking", "rail track")
)
BUILDING, WALL, FENCE, GUARD_RAIL, BRIDGE = (
    _id(n) for n in ("building", "wall", "fence", "guard rail", "bridge")
)
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = (_id(n) for n in ("pole", "traffic light", "traffic sign"))
VEGETATION, TERRAIN, SKY = (_id(n) for n in ("vegetation", "terrain", "sky"))
PERSON, RIDER = _id("person"), _id("rider")
CAR, TRUCK, BUS, CARAVAN, TRAILER, TRAIN = (
    _id(n) for n in ("car", "truck", "bus", "caravan", "trailer", "train")
)
MOTORCYCLE, BICYCLE = _id("motorcycle"), _id("bicycle")

RGB = np.ndarray  # float32 colour in 0..1, shape (3,) or (..., 3)

# One paint palette for every vehicle class: body colour never tells car from bus.
_PAINT = np.array(
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
_FACADE = np.array(
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
_CLOTHES = np.array(
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
_SKIN = np.array([(0.87, 0.70, 0.58), (0.70, 0.52, 0.40), (0.45, 0.32, 0.24)], np.float32)
_METAL = np.array([(0.50, 0.50, 0.52), (0.22, 0.23, 0.23), (0.30, 0.38, 0.32)], np.float32)
_GLASS = np.array((0.12, 0.15, 0.18), np.float32)
_TYRE = np.array((0.06, 0.06, 0.06), np.float32)
_WHITE = np.array((0.88, 0.88, 0.86), np.float32)


def _hsv(hue: float, saturation: float, value: float) -> RGB:
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


class _Camera:
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


class _Noise:
    """Per-scene noise fields that textures are cut from, all (H, W) float32 with std ~1."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.coarse = _smooth_noise(rng, height, width, cell=40)
        self.medium = _smooth_noise(rng, height, width, cell=6)
        self.fine = rng.standard_normal((height, width), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    grid = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    field = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(field) / max(float(np.std(field)), 1e-6)


class _Canvas:
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
        window: tuple[slice, slice],
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


class _Sprite:
    """An object in a pixel window, drawn in metres: u to the right of its anchor, v up.

    Parts drawn later cover earlier ones; the whole sprite is then painted at one depth.
    """

    def __init__(
        self,
        window: tuple[slice, slice],
        u: np.ndarray,
        v: np.ndarray,
        depth: float,
        texture: np.ndarray,
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


@dataclass(frozen=True)
class _Entity:
    """A planned object: its kind, where it stands (x, z), and its ground footprint."""

    kind: str
    x: float
    z: float
    width: float  # lateral extent, metres
    length: float  # extent in depth, metres
    side_view: bool = False
    rider: bool = False
    top: float = 2.0  # metres; with `low` and `spread`, the box that can hide or be hidden
    low: float = 0.0  # a tree crown or a sign starts well above the ground
    spread: float = 0.0  # reach sideways beyond `width` (crowns)

    def footprint(self) -> tuple[float, float, float, float]:
        return self.x - self.width / 2, self.x + self.width / 2, self.z, self.z + self.length

    def _view_box(self, elevation: float) -> tuple[float, float, float, float]:
        """Its box in image coordinates divided by the focal length (left, right, top, bottom)."""
        reach = self.width / 2 + self.spread
        return (
            (self.x - reach) / self.z,
            (self.x + reach) / self.z,
            (elevation - self.top) / self.z,
            (elevation - self.low) / self.z,
        )

    def hides(self, other: _Entity, elevation: float) -> bool:
        """Whether this stands in front of a quarter or more of `other`'s box in the image."""
        if self.z >= other.z:
            return False
        left, right, top, bottom = self._view_box(elevation)
        o_left, o_right, o_top, o_bottom = other._view_box(elevation)
        width = min(right, o_right) - max(left, o_left)
        height = min(bottom, o_bottom) - max(top, o_top)
        covered = max(width, 0) * max(height, 0)
        return covered > 0.25 * (o_right - o_left) * (o_bottom - o_top)


_VEHICLE_TOPS = {
    "car": 1.5,
    "truck": 3.8,
    "bus": 3.2,
    "caravan": 2.7,
    "trailer": 1.9,
    "train": 4.6,
    "motorcycle": 1.1,
    "bicycle": 1.1,
}
_VEHICLE_SIZES = {  # kind: (width, length) in metres, before a small random stretch
    "car": (1.8, 4.4),
    "truck": (2.45, 8.0),
    "bus": (2.5, 12.0),
    "caravan": (2.3, 6.5),
    "trailer": (2.0, 4.0),
    "train": (2.6, 30.0),
    "motorcycle": (0.8, 2.1),
    "bicycle": (0.6, 1.8),
}


class _Scene:
    """One street scene: sampled layout first, then rendered layer by layer."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, featured: frozenset[str]):
        self.rng = rng
        self.featured = featured
        self.cam = _Camera(rng, height, width)
        self.noise = _Noise(rng, height, width)
        self.canvas = _Canvas(height, width)
        self._plan_street()
        self._plan_facades()
        self.entities: list[_Entity] = []
        self.protected: list[_Entity] = []
        self._plan_street_furniture()
        self._plan_vehicles()
        self._plan_people()

    # ---------------------------------------------------------------- layout
    def _plan_street(self) -> None:
        rng = self.rng
        self.lane_width = rng.uniform(3.0, 3.6)
        lanes_left, lanes_right = int(rng.integers(0, 3)), int(rng.integers(0, 2))
        # One lane for each guaranteed large vehicle and the guaranteed car, so none is hidden.
        needed = 1 + len(self.featured & {"train", "bus", "truck"})
        lanes_left = max(lanes_left, needed - 1 - lanes_right)
        self.lanes = [k * self.lane_width for k in range(-lanes_left, lanes_right + 1)]
        self.parking = rng.random() < 0.35
        parking_width = 2.3 if self.parking else 0.0
        self.edge = {
            -1: -(lanes_left + 0.5) * self.lane_width - rng.uniform(0.1, 0.6),
            1: (lanes_right + 0.5) * self.lane_width + rng.uniform(0.1, 0.6) + parking_width,
        }
        self.kerb = rng.uniform(0.1, 0.16)
        self.walk = {side: rng.uniform(1.8, 5.0) for side in (-1, 1)}
        terrain = "terrain" in self.featured
        self.strip = {
            side: rng.uniform(0.8, 3.0) if rng.random() < 0.3 else 0.0 for side in (-1, 1)
        }
        if terrain and max(self.strip.values()) == 0:
            self.strip[int(rng.choice((-1, 1)))] = rng.uniform(1.0, 3.0)
        # A park side has no facades: terrain to the horizon, trees, a distant tree line.
        park = [side for side in (-1, 1) if rng.random() < 0.15]
        self.park = set(park[:1])
        self.facade_x = {s: s * (abs(self.edge[s]) + self.walk[s] + self.strip[s]) for s in (-1, 1)}
        self.asphalt = np.float32(rng.uniform(0.26, 0.55)) * rng.uniform(0.95, 1.05, 3)
        self.asphalt = self.asphalt.astype(np.float32)
        self.paving = (self.asphalt * rng.uniform(0.95, 1.08)).astype(np.float32)
        self.tile = rng.uniform(0.25, 0.6) if rng.random() < 0.85 else 0.0
        self.rail = (
            float(rng.choice(self.lanes))
            if "train" in self.featured or rng.random() < 0.08
            else None
        )
        self.crosswalk = rng.uniform(9, 30) if rng.random() < 0.25 else None
        self.crossing = rng.uniform(18, 45) if rng.random() < 0.3 else None
        self.terrain_colour = _hsv(
            rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.65), rng.uniform(0.3, 0.6)
        )
        self.leaf_colour = _hsv(
            rng.uniform(0.15, 0.33), rng.uniform(0.35, 0.75), rng.uniform(0.2, 0.5)
        )
        self.sun_side = int(rng.choice((-1, 1)))
        self.shadow_depth = rng.uniform(2.0, 9.0) if rng.random() < 0.6 else 0.0

    def _plan_facades(self) -> None:
        """Blocks along each side: start, end, height, colour, window grid, or a gap."""
        rng = self.rng
        self.blocks: dict[int, dict[str, np.ndarray]] = {}
        self.facade_end = rng.uniform(60, 200)
        for side in (-1, 1):
            lengths = rng.uniform(8, 30, 24)
            ends = np.cumsum(lengths)
            count = int(np.searchsorted(ends, self.facade_end)) + 1
            self.blocks[side] = {
                "end": ends[:count],
                "height": rng.uniform(7, 26, count),
                "building": rng.random(count) > 0.15,
                "colour": (
                    _FACADE[rng.integers(0, len(_FACADE), count)]
                    * rng.uniform(0.9, 1.1, (count, 3))
                ).astype(np.float32),
                "spacing": rng.uniform(2.2, 4.5, count),
                "storey": rng.uniform(2.8, 3.6, count),
                "windows": rng.random(count) < 0.85,
                "glass": rng.uniform(0.2, 0.8, count),
            }

    def _is_building(self, side: int, depth: np.ndarray) -> np.ndarray:
        """Whether a facade stands at these depths on this side (gaps, crossings and the far end
        have none)."""
        blocks = self.blocks[side]
        index = np.minimum(np.searchsorted(blocks["end"], depth), len(blocks["end"]) - 1)
        standing = blocks["building"][index] & (depth < self.facade_end) & (side not in self.park)
        if self.crossing is not None:
            standing &= (depth < self.crossing) | (depth > self.crossing + 14)
        return standing

    def _in_frame(self, x: float, depth: float, margin: float = 1.5) -> float:
        """`depth`, pushed back until whatever stands at `x` (+- `margin` metres) is in view."""
        room = self.cam.centre if x < 0 else self.cam.width - self.cam.centre
        return max(depth, (abs(x) + margin) * self.cam.focal / room)

    def _free(self, candidate: _Entity, protect: bool) -> bool:
        """No overlap with any planned footprint (with a little space between), nothing in
        front of a protected entity, and nothing at all in front of a protected candidate."""
        x0, x1, z0, z1 = candidate.footprint()
        for other in self.entities:
            ox0, ox1, oz0, oz1 = other.footprint()
            if x0 < ox1 + 0.3 and ox0 < x1 + 0.3 and z0 < oz1 + 0.5 and oz0 < z1 + 0.5:
                return False
        elevation = self.cam.elevation
        if any(candidate.hides(other, elevation) for other in self.protected):
            return False
        return not (protect and any(other.hides(candidate, elevation) for other in self.entities))

    def _place(self, make: Callable[[], _Entity], tries: int = 12, protect: bool = False) -> None:
        """Add the first free candidate `make` returns. A protected entity carries a class the
        scene guarantees, so later entities may not hide it."""
        for _ in range(tries):
            candidate = make()
            if self._free(candidate, protect):
                self.entities.append(candidate)
                if protect:
                    self.protected.append(candidate)
                return

    def _vehicle(
        self, kind: str, x: float, z: float, side_view: bool = False, rider: bool = False
    ) -> _Entity:
        width, length = _VEHICLE_SIZES[kind]
        stretch = self.rng.uniform(0.92, 1.1)
        width, length = width * stretch, length * stretch
        if side_view:  # fronto-parallel: the length runs across the image
            width, length = length, width
        top = 1.9 if rider else _VEHICLE_TOPS[kind]
        return _Entity(kind, x, z, width, length, side_view, rider, top=top)

    def _plan_vehicles(self) -> None:
        rng = self.rng
        if self.rail is not None:
            self._place(lambda: self._in_view("train", self.rail), protect=True)
        for kind in ("bus", "truck"):
            if kind in self.featured:
                self._place(lambda k=kind: self._in_view(k, self._free_lane()), protect=True)
        for kind in ("motorcycle", "bicycle"):
            if kind in self.featured:
                self._place(
                    lambda k=kind: self._two_wheeler(k, rider=True, near=(7.0, 25.0)), protect=True
                )
        self._place(lambda: self._in_view("car", self._free_lane()), protect=True)
        kinds = ["car"] * 12 + ["truck", "bus", "caravan", "trailer", "motorcycle", "bicycle"]
        for _ in range(int(rng.integers(1, 8))):
            kind = str(rng.choice(kinds))
            if kind in ("motorcycle", "bicycle"):
                self._place(
                    lambda k=kind: self._two_wheeler(k, rider=rng.random() < 0.6, near=(6.0, 50.0))
                )
            else:
                self._place(lambda k=kind: self._road_vehicle(k))

    def _in_view(self, kind: str, x: float) -> _Entity:
        """A vehicle near enough to be clearly seen, far enough to be in the frame."""
        near = 11.0 if abs(x) < self.lane_width / 2 else 8.0  # not glued to our bonnet
        return self._vehicle(kind, x, self._in_frame(x, self.rng.uniform(near, 28.0)))

    def _free_lane(self) -> float:
        """A lane centre no guaranteed vehicle has taken yet (any lane when all are taken)."""
        taken = {round(e.x, 3) for e in self.protected}
        free = [lane for lane in self.lanes if round(lane, 3) not in taken]
        return float(self.rng.choice(free or self.lanes))

    def _road_vehicle(self, kind: str) -> _Entity:
        rng = self.rng
        where = rng.random()
        if self.crossing is not None and where < 0.25:
            return self._vehicle(
                kind, rng.uniform(-14, 14), self.crossing + rng.uniform(2, 10), side_view=True
            )
        if self.parking and where < 0.55:
            width = _VEHICLE_SIZES[kind][0]
            return self._vehicle(kind, self.edge[1] - width / 2 - 0.2, rng.uniform(6, 60))
        x = float(rng.choice(self.lanes)) + rng.uniform(-0.3, 0.3)
        near = 12.0 if abs(x) < self.lane_width / 2 else 6.0
        return self._vehicle(kind, x, near + 60 * rng.random() ** 1.5)

    def _two_wheeler(self, kind: str, rider: bool, near: tuple[float, float]) -> _Entity:
        rng = self.rng
        side = int(rng.choice((-1, 1)))
        if rider:  # riding along the road edge, seen from the side (fronto-parallel)
            x = self.edge[side] - side * rng.uniform(0.6, 1.5)
        else:  # parked on the sidewalk
            x = self.edge[side] + side * rng.uniform(0.4, self.walk[side] - 0.4)
        depth = self._in_frame(x, rng.uniform(*near), margin=1.0)
        return self._vehicle(kind, x, depth, side_view=True, rider=rider)

    def _plan_people(self) -> None:
        for index in range(int(self.rng.integers(3, 12))):
            # The first person is the guaranteed one: near, in the frame, never hidden.
            self._place(lambda first=index == 0: self._pedestrian(first), protect=index == 0)

    def _pedestrian(self, first: bool) -> _Entity:
        rng = self.rng
        side = int(rng.choice((-1, 1)))
        if self.crosswalk is not None and not first and rng.random() < 0.3:
            x, z = rng.uniform(self.edge[-1], self.edge[1]), self.crosswalk + rng.uniform(0, 3)
        else:
            x = self.edge[side] + side * rng.uniform(0.3, self.walk[side] - 0.3)
            z = self._in_frame(x, rng.uniform(5, 20), 0.5) if first else rng.uniform(5, 45)
        return _Entity("person", x, z, 0.5, 0.4, side_view=rng.random() < 0.4, top=1.95)

    def _plan_street_furniture(self) -> None:
        """Poles (lamps, signs, lights) and trees along both sidewalks, plus void objects."""
        rng = self.rng
        # The nearest pole of one side carries a sign, of the other a light: both guaranteed.
        first = {-1: "sign", 1: "light"} if rng.random() < 0.5 else {-1: "light", 1: "sign"}
        for side in (-1, 1):
            x = self.edge[side] + side * rng.uniform(0.3, 0.6)
            z = self._in_frame(x, rng.uniform(6, 14), margin=0.5)
            # ...and far enough for its sign or light to be below the top of the frame.
            z = max(z, self.cam.focal * (4.8 - self.cam.elevation) / self.cam.horizon)
            self._place(
                lambda k=first[side], x=x, z=z: _Entity(k, x, z, 0.8, 0.3, top=4.6, low=2.0),
                tries=1,
                protect=True,
            )
            while (z := z + rng.uniform(7, 16)) < 70:
                kind = str(rng.choice(["lamp", "sign", "light"]))
                self._place(lambda k=kind, x=x, z=z: _Entity(k, x, z, 0.3, 0.3, top=8.0), tries=1)
        tree_sides = [side for side in (-1, 1) if rng.random() < 0.6 or side in self.park]
        for side in tree_sides or [int(rng.choice((-1, 1)))]:
            z = rng.uniform(5, 12)
            while z < 80:
                x = self.edge[side] + side * (self.walk[side] - rng.uniform(0.5, 1.0))
                if side in self.park:
                    x += side * rng.uniform(0, 15)
                self._place(
                    lambda x=x, z=z: _Entity("tree", x, z, 0.5, 0.5, top=8.5, low=1.8, spread=2.5),
                    tries=1,
                )
                z += rng.uniform(6, 14)
        for kind in ("static",) * int(rng.integers(0, 4)) + ("dynamic",) * int(rng.integers(0, 3)):
            side = int(rng.choice((-1, 1)))
            self._place(
                lambda k=kind, s=side: _Entity(
                    k,
                    self.edge[s] + s * rng.uniform(0.5, self.walk[s] - 0.3),
                    rng.uniform(5, 30),
                    0.9,
                    0.7,
                )
            )

    # ---------------------------------------------------------------- rendering
    def render(self) -> _Canvas:
        self._sky()
        self._skyline()
        self._ground()
        for side in (-1, 1):
            self._facade(side)
            self._side_structures(side)
        if self.rng.random() < 0.08:
            self._bridge()
        for entity in self.entities:
            self._draw(entity)
        self._ego_vehicle()
        self._photometric()
        self._void_marks()
        return self.canvas

    def _sky(self) -> None:
        rng, cam = self.rng, self.cam
        if rng.random() < 0.55:  # blue
            top = np.array((0.30, 0.50, 0.85), np.float32) * rng.uniform(0.85, 1.1, 3)
            bottom = np.array((0.70, 0.80, 0.92), np.float32) * rng.uniform(0.9, 1.05, 3)
        else:  # overcast: the grey of light facades
            top = np.full(3, rng.uniform(0.62, 0.82), np.float32) * rng.uniform(0.95, 1.05, 3)
            bottom = top * rng.uniform(1.02, 1.15)
        t = np.clip(cam.rows / cam.horizon, 0, 1)[:, None, None]
        clouds = 0.05 * self.noise.coarse[..., None]
        self.sky_colour = bottom.astype(np.float32)
        self.canvas.image[:] = (top * (1 - t) + bottom * t) * (1 + clouds)

    def _skyline(self) -> None:
        """Distant buildings and tree lines at the vanishing point, hazed towards the sky."""
        rng, cam = self.rng, self.cam
        depth = 400.0
        edges = np.cumsum(rng.uniform(6, 50, cam.width // 6 + 1))
        segment = np.searchsorted(edges, np.arange(cam.width))
        count = len(edges)
        heights = rng.uniform(5, 35, count) * (rng.random(count) < 0.8)
        trees = rng.random(count) < 0.3
        tops = np.array([cam.row_at(h, depth) for h in heights])[segment]
        mask = (cam.rows[:, None] >= tops[None, :]) & (cam.rows[:, None] < cam.row_at(0, depth))
        haze = rng.uniform(0.35, 0.75)
        base = np.where(
            trees[:, None], self.leaf_colour, _FACADE[rng.integers(0, len(_FACADE), count)]
        )
        colour = base[segment][None] * (1 - haze) + self.sky_colour * haze
        colour = colour * (1 + 0.04 * self.noise.medium[..., None])
        label = np.where(trees, VEGETATION, BUILDING)[segment][None, :]
        window = (slice(None), slice(None))
        self.canvas.paint(window, mask, depth, np.broadcast_to(label, mask.shape), colour)

    def _ground(self) -> None:
        cam, noise = self.cam, self.noise
        top = cam.ground_top
        road_depth, road_x = cam.ground(0.0)
        walk_depth, walk_x = cam.ground(self.kerb)
        rows = slice(top, None)
        label = np.full(road_x.shape, TERRAIN, np.uint8)
        texture = 1 + 0.12 * noise.coarse[rows] + 0.1 * noise.medium[rows] + 0.05 * noise.fine[rows]
        colour = self.terrain_colour * texture[..., None]
        depth = np.broadcast_to(walk_depth, road_x.shape).copy()
        for side in (-1, 1):
            self._sidewalk(side, road_x, walk_depth, walk_x, label, colour)
        on_road = (road_x >= self.edge[-1]) & (road_x <= self.edge[1])
        if self.crossing is not None:
            on_road |= (road_depth >= self.crossing) & (road_depth <= self.crossing + 14)
        label[on_road] = ROAD
        grain = 1 + 0.06 * noise.coarse[rows] + 0.04 * noise.medium[rows] + 0.05 * noise.fine[rows]
        colour[on_road] = self.asphalt * grain[on_road][:, None]
        depth[on_road] = np.broadcast_to(road_depth, road_x.shape)[on_road]
        self._road_markings(road_depth, road_x, on_road, label, colour)
        colour *= self._ground_shade(road_depth, road_x)[..., None]
        window = (rows, slice(None))
        self.canvas.paint(window, np.ones(label.shape, bool), depth, label, colour)

    def _sidewalk(
        self,
        side: int,
        road_x: np.ndarray,
        walk_depth: np.ndarray,
        walk_x: np.ndarray,
        label: np.ndarray,
        colour: np.ndarray,
    ) -> None:
        """A raised, tiled sidewalk: its surface on the lifted plane, its kerb face between."""
        edge, rows = self.edge[side], slice(self.cam.ground_top, None)
        outer = side * walk_x
        surface = (outer > abs(edge)) & (outer <= abs(edge) + self.walk[side])
        kerb_face = (side * road_x > abs(edge)) & (outer <= abs(edge))
        paving = np.broadcast_to(self.paving, colour.shape).copy()
        if self.tile:
            along, across = walk_depth / self.tile, walk_x / self.tile
            joint = 0.035 / self.tile
            seams = ((along % 1) < joint) | ((across % 1) < joint)
            # Each tile gets its own shade, from a hash of its integer coordinates.
            row, column = np.floor(along).astype(np.int64), np.floor(across).astype(np.int64)
            shade = 1 + 0.05 * (((row * 73856093) ^ column) % 13 / 6.0 - 1)
            paving *= np.where(seams, 0.78, shade)[..., None]
        paving *= (1 + 0.04 * self.noise.medium[rows] + 0.05 * self.noise.fine[rows])[..., None]
        label[surface | kerb_face] = SIDEWALK
        colour[surface] = paving[surface]
        colour[kerb_face] = self.paving * (1.3 if side == self.sun_side else 0.7)

    def _road_markings(
        self,
        depth: np.ndarray,
        x: np.ndarray,
        on_road: np.ndarray,
        label: np.ndarray,
        colour: np.ndarray,
    ) -> None:
        depth = np.broadcast_to(depth, x.shape)
        white = np.zeros(x.shape, bool)
        for boundary in self.lanes[:-1]:
            white |= (np.abs(x - boundary - self.lane_width / 2) < 0.07) & ((depth % 9) < 3)
        if self.crosswalk is not None:
            white |= (depth >= self.crosswalk) & (depth <= self.crosswalk + 4) & ((x % 1.0) < 0.5)
        if self.parking:
            bay = (x > self.edge[1] - 2.3) & (x <= self.edge[1])
            label[bay] = PARKING
            white |= bay & ((np.abs(x - (self.edge[1] - 2.3)) < 0.06) | ((depth % 5.5) < 0.12))
        if self.rail is not None:
            track = on_road & (np.abs(x - self.rail) <= 0.9)
            label[track] = RAIL_TRACK
            steel = track & (np.abs(np.abs(x - self.rail) - 0.72) < 0.035)
            colour[track] *= 0.9
            colour[steel] = (0.62, 0.62, 0.64)
        white &= on_road
        colour[white] = _WHITE * (1 + 0.04 * self.noise.fine[self.cam.ground_top :][white, None])

    def _ground_shade(self, depth: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Shadows on the ground: the facade on the sunny side's far side, and under objects."""
        depth = np.broadcast_to(depth, x.shape)
        shade = np.ones(x.shape, np.float32)
        if self.shadow_depth:
            side = -self.sun_side
            band = side * x > abs(self.facade_x[side]) - self.shadow_depth
            shade[band & self._is_building(side, depth)] = self.rng.uniform(0.45, 0.7)
        for entity in self.entities:
            if entity.kind in ("tree", "lamp", "sign", "light", "person"):
                continue
            x0, x1, z0, z1 = entity.footprint()
            under = (x >= x0 - 0.1) & (x <= x1 + 0.1) & (depth >= z0 - 0.3) & (depth <= z1)
            shade[under] *= 0.45
        return shade

    def _facade(self, side: int) -> None:
        """Building fronts as a vertical plane, with storeys, windows and a ground floor."""
        cam, canvas = self.cam, self.canvas
        columns, depth, height = cam.side_plane(self.facade_x[side])
        blocks = self.blocks[side]
        index = np.minimum(np.searchsorted(blocks["end"], depth), len(blocks["end"]) - 1)
        top = blocks["height"][index]
        mask = (height >= 0) & (height <= top) & self._is_building(side, depth)
        along = depth - np.concatenate(([0.0], blocks["end"]))[index]
        storey, spacing = blocks["storey"][index], blocks["spacing"][index]
        window_cells = (
            ((along / spacing) % 1 > 0.3)
            & ((along / spacing) % 1 < 0.75)
            & ((height / storey) % 1 > 0.3)
            & ((height / storey) % 1 < 0.8)
            & (height > 3.5)
            & (height < top - 0.8)
            & blocks["windows"][index]
        )
        shop = (height > 0.4) & (height < 2.8) & ((along % 7) > 1) & ((along % 7) < 6)
        ledge = ((height / storey) % 1 < 0.04) | (height > top - 0.35)
        light = 1.1 if side == self.sun_side else 0.8
        texture = 1 + 0.06 * self.noise.coarse[:, columns] + 0.05 * self.noise.fine[:, columns]
        colour = blocks["colour"][index][None] * (light * texture)[..., None]
        glass_mix = blocks["glass"][index][None, :, None]
        glass = _GLASS * (1 - glass_mix) + self.sky_colour * glass_mix
        colour = np.where((window_cells | shop)[..., None], glass * texture[..., None], colour)
        colour = np.where(ledge[..., None], colour * 0.8, colour)
        canvas.paint(
            (slice(None), columns), mask, np.broadcast_to(depth, mask.shape), BUILDING, colour
        )

    def _side_structures(self, side: int) -> None:
        """Walls, fences and hedges one after another along the sidewalk's outer edge (the
        guaranteed one first and nearest, on the right), sometimes a guard rail by the road."""
        rng = self.rng
        x = (
            self.edge[side] + side * (self.walk[side] + 0.05)
            if self.strip[side] or side in self.park
            else self.facade_x[side] - side * 0.2
        )
        kinds = [k for k in ("wall", "fence") if k in self.featured and side == 1]
        kinds += [k for k in ("wall", "fence", "hedge") if k not in kinds and rng.random() < 0.2]
        start = self._in_frame(x, rng.uniform(4, 15), margin=0)
        for kind in kinds:
            end = start + rng.uniform(8, 30)
            self._low_plane(kind, x, start, end, rng.uniform(0.8, 2.3))
            start = end + rng.uniform(0, 20)
        if rng.random() < 0.12:
            start = rng.uniform(5, 30)
            self._low_plane("guard rail", self.edge[side] - side * 0.3, start, start + 30, 0.8)

    def _low_plane(self, kind: str, x: float, start: float, end: float, top: float) -> None:
        rng, cam = self.rng, self.cam
        columns, depth, height = cam.side_plane(x)
        region = (height >= 0) & (height <= top) & (depth >= start) & (depth <= end)
        texture = self.noise.medium[:, columns]
        colour_mask = None
        if kind == "wall":
            label = WALL
            base = _FACADE[rng.integers(0, len(_FACADE))] * rng.uniform(0.85, 1.1)
            colour = base * (1 + 0.08 * texture + 0.05 * self.noise.fine[:, columns])[..., None]
            colour = np.where((height > top - 0.12)[..., None], colour * 1.15, colour)
        elif kind == "fence":
            label = FENCE
            spacing, bar = rng.uniform(0.12, 0.3), rng.uniform(0.025, 0.05)
            bars = ((depth % spacing) < bar) | ((depth % 2.5) < 0.08)
            rails = (height > top - 0.06) | (np.abs(height - 0.15) < 0.04)
            colour_mask = np.broadcast_to(bars, region.shape) | rails
            colour = _METAL[rng.integers(0, len(_METAL))] * (1 + 0.05 * texture)[..., None]
        elif kind == "hedge":
            label = VEGETATION
            colour = self._leaves(texture, self.noise.fine[:, columns])
        else:
            label = GUARD_RAIL
            region &= (height >= 0.45) | ((depth % 2.0) < 0.12)
            colour = np.float32(rng.uniform(0.55, 0.75)) * (1 + 0.05 * texture)[..., None]
            colour = np.broadcast_to(colour, (*region.shape, 3))
        self.canvas.paint(
            (slice(None), columns),
            region,
            np.broadcast_to(depth, region.shape),
            label,
            colour,
            colour_mask=colour_mask,
        )

    def _leaves(self, medium: np.ndarray, fine: np.ndarray) -> RGB:
        """Foliage: high-frequency light and dark leaf clumps around the scene's leaf colour."""
        clumps = np.clip(0.75 + 0.35 * medium + 0.25 * fine, 0.3, 1.5)
        return self.leaf_colour * clumps[..., None]

    def _bridge(self) -> None:
        rng, cam = self.rng, self.cam
        depth = rng.uniform(35, 90)
        low = rng.uniform(4.5, 7.0)
        rows = (cam.rows >= cam.row_at(low + rng.uniform(1.2, 2.5), depth)) & (
            cam.rows < cam.row_at(low, depth)
        )
        mask = np.broadcast_to(rows[:, None], self.canvas.label.shape)
        colour = np.float32(rng.uniform(0.45, 0.7)) * (1 + 0.06 * self.noise.coarse)[..., None]
        self.canvas.paint(
            (slice(None), slice(None)),
            mask,
            depth,
            BRIDGE,
            np.broadcast_to(colour, (*mask.shape, 3)),
        )

    # ---------------------------------------------------------------- objects
    def _sprite(
        self, x: float, z: float, u0: float, u1: float, v0: float, v1: float
    ) -> _Sprite | None:
        """A sprite whose window covers [u0, u1] x [v0, v1] metres around the anchor (x, z)."""
        cam = self.cam
        left = max(int(np.floor(cam.column_at(x + u0, z))), 0)
        right = min(int(np.ceil(cam.column_at(x + u1, z))), cam.width)
        top = max(int(np.floor(cam.row_at(v1, z))), 0)
        bottom = min(int(np.ceil(cam.row_at(v0, z))), cam.height)
        if right - left < 1 or bottom - top < 1:
            return None
        u = (cam.cols[None, left:right] - cam.centre) * z / cam.focal - x
        v = cam.elevation - (cam.rows[top:bottom, None] - cam.horizon) * z / cam.focal
        window = (slice(top, bottom), slice(left, right))
        return _Sprite(window, u, v, z, self.noise.medium[window])

    def _draw(self, entity: _Entity) -> None:
        draw = {
            "car": self._car,
            "truck": self._truck,
            "bus": self._bus,
            "train": self._bus,
            "caravan": self._caravan,
            "trailer": self._trailer,
            "motorcycle": self._two_wheel,
            "bicycle": self._two_wheel,
            "person": self._person,
            "lamp": self._pole,
            "sign": self._pole,
            "light": self._pole,
            "tree": self._tree,
            "static": self._box,
            "dynamic": self._box,
        }[entity.kind]
        draw(entity)

    def _paint(self, sprite: _Sprite) -> None:
        self.canvas.paint(
            sprite.window, sprite.mask, sprite.depth, sprite.label, sprite.colour, sprite.instance
        )

    def _paint_colour(self) -> RGB:
        rng = self.rng
        return (_PAINT[rng.integers(0, len(_PAINT))] * rng.uniform(0.9, 1.08, 3)).astype(np.float32)

    def _wheels(
        self, s: _Sprite, positions: list[float], radius: float, label: int, inst: int
    ) -> None:
        for u in positions:
            s.add(s.ellipse(u, radius, radius, radius), label, _TYRE, inst)
            s.add(s.ellipse(u, radius, radius * 0.45, radius * 0.45), label, _METAL[0] * 0.8, inst)

    def _rear(
        self, s: _Sprite, half: float, low: float, high: float, label: int, inst: int, paint: RGB
    ) -> None:
        """The back of a road vehicle: tyres, body, lights, bumper, plate."""
        s.add(s.rect(-half, -half + 0.3, 0, low + 0.1), label, _TYRE, inst)
        s.add(s.rect(half - 0.3, half, 0, low + 0.1), label, _TYRE, inst)
        s.add(s.rect(-half, half, low, high), label, s.textured(paint, 0.04), inst)
        lamp = np.array((0.8, 0.08, 0.06), np.float32)
        lamp_low, lamp_high = (
            (high - 0.45, high - 0.25) if label == CAR else (low + 0.05, low + 0.3)
        )
        for u0, u1 in ((-half, -half + 0.2), (half - 0.2, half)):
            s.add(s.rect(u0, u1, lamp_low, lamp_high), label, lamp, inst)
        s.add(s.rect(-half, half, low, low + 0.12), label, _TYRE * 2, inst)
        s.add(s.rect(-0.25, 0.25, low + 0.15, low + 0.27), label, _WHITE, inst)

    def _car(self, e: _Entity) -> None:
        if e.side_view:
            self._car_side(e)
            return
        s = self._sprite(e.x, e.z, -e.width / 2, e.width / 2, 0, 1.6)
        if s is None:
            return
        inst, half = self.canvas.instance_id(CAR), e.width / 2
        paint = self._paint_colour()
        roof = self.rng.uniform(1.35, 1.55)
        self._rear(s, half, 0.25, 0.95, CAR, inst, paint)
        cabin = [
            (-half * 0.92, 0.95),
            (half * 0.92, 0.95),
            (half * 0.68, roof),
            (-half * 0.68, roof),
        ]
        s.add(s.polygon(cabin), CAR, s.textured(paint, 0.04), inst)
        glass = [
            (-half * 0.82, 1.0),
            (half * 0.82, 1.0),
            (half * 0.66, roof - 0.07),
            (-half * 0.66, roof - 0.07),
        ]
        s.add(s.polygon(glass), CAR, _GLASS * 0.5 + self.sky_colour * 0.3, inst)
        self._paint(s)

    def _car_side(self, e: _Entity) -> None:
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, 1.6)
        if s is None:
            return
        inst, paint = self.canvas.instance_id(CAR), self._paint_colour()
        s.add(s.rect(-half, half, 0.3, 0.95), CAR, s.textured(paint, 0.04), inst)
        cabin = [(-half + 0.9, 0.95), (half - 1.2, 0.95), (half - 1.6, 1.45), (-half + 1.5, 1.45)]
        s.add(s.polygon(cabin), CAR, s.textured(paint, 0.04), inst)
        glass = [(-half + 1.1, 1.0), (half - 1.35, 1.0), (half - 1.65, 1.38), (-half + 1.55, 1.38)]
        s.add(s.polygon(glass), CAR, _GLASS, inst)
        self._wheels(s, [-half + 0.8, half - 0.8], 0.32, CAR, inst)
        self._paint(s)

    def _truck(self, e: _Entity) -> None:
        height = self.rng.uniform(3.3, 3.8)
        paint, cab_paint = self._paint_colour(), self._paint_colour()
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, height)
        if s is None:
            return
        inst = self.canvas.instance_id(TRUCK)
        if e.side_view:  # a cab in front of a taller cargo box
            s.add(s.rect(-half, half, 0.5, 0.9), TRUCK, _TYRE * 2, inst)
            s.add(s.rect(-half, half - 2.4, 0.9, height), TRUCK, s.textured(paint, 0.05), inst)
            s.add(s.rect(half - 2.2, half, 0.5, 2.9), TRUCK, s.textured(cab_paint, 0.05), inst)
            s.add(s.rect(half - 1.3, half - 0.1, 1.8, 2.6), TRUCK, _GLASS, inst)
            self._wheels(s, [-half + 1.2, -half + 2.3, half - 1.3], 0.5, TRUCK, inst)
        else:  # a windowless box: what tells it from a bus's back
            self._rear(s, half, 0.5, height, TRUCK, inst, paint)
            s.add(s.rect(-0.02, 0.02, 0.8, height - 0.1), TRUCK, paint * 0.6, inst)  # door seam
        self._paint(s)

    def _bus(self, e: _Entity) -> None:
        """Buses and trams share the box and the palette; trams are taller, sit on rails
        and carry a pantograph."""
        is_train = e.kind == "train"
        label = TRAIN if is_train else BUS
        height = self.rng.uniform(3.4, 3.8) if is_train else self.rng.uniform(2.9, 3.2)
        paint = self._paint_colour()
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, height + (0.8 if is_train else 0))
        if s is None:
            return
        inst = self.canvas.instance_id(label)
        if e.side_view:
            s.add(s.rect(-half, half, 0.3, height), label, s.textured(paint, 0.04), inst)
            band = s.rect(-half + 0.4, half - 0.3, 1.5, height - 0.35)
            pillars = (s.u % 1.6) < 0.15
            s.add(band & ~pillars, label, _GLASS * 0.6 + self.sky_colour * 0.3, inst)
            self._wheels(s, [-half + 2.5, half - 2.5], 0.5, label, inst)
        else:
            self._rear(s, half, 0.3, height, label, inst, paint)
            s.add(
                s.rect(-half + 0.2, half - 0.2, height * 0.58, height - 0.2),
                label,
                _GLASS * 0.6 + self.sky_colour * 0.3,
                inst,
            )
        if is_train:
            s.add(s.segment((-0.5, height), (0.3, height + 0.8), 0.05), label, _METAL[1], inst)
            s.add(s.rect(-0.6, 0.6, height + 0.75, height + 0.8), label, _METAL[1], inst)
        self._paint(s)

    def _caravan(self, e: _Entity) -> None:
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, 2.7)
        if s is None:
            return
        inst = self.canvas.instance_id(CARAVAN)
        paint = _PAINT[self.rng.choice([0, 1, 9])]
        s.add(s.rect(-half, half, 0.35, 2.6), CARAVAN, s.textured(paint, 0.03), inst)
        s.add(s.rect(-0.5, 0.5, 1.3, 2.0), CARAVAN, _GLASS, inst)
        s.add(s.rect(-half, half, 1.05, 1.12), CARAVAN, paint * 0.6, inst)
        self._paint(s)

    def _trailer(self, e: _Entity) -> None:
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, 1.9)
        if s is None:
            return
        inst = self.canvas.instance_id(TRAILER)
        s.add(s.rect(-half, half, 0.45, 1.8), TRAILER, s.textured(self._paint_colour(), 0.05), inst)
        s.add(s.rect(-half, -half + 0.25, 0, 0.6), TRAILER, _TYRE, inst)
        s.add(s.rect(half - 0.25, half, 0, 0.6), TRAILER, _TYRE, inst)
        self._paint(s)

    def _two_wheel(self, e: _Entity) -> None:
        """A bicycle (thin rings and tubes) or a motorcycle (solid wheels, a body), seen from
        the side, with or without a rider on it."""
        label = MOTORCYCLE if e.kind == "motorcycle" else BICYCLE
        half = e.width / 2
        s = self._sprite(e.x, e.z, -half, half, 0, 1.9 if e.rider else 1.2)
        if s is None:
            return
        inst = self.canvas.instance_id(label)
        paint = self._paint_colour()
        radius, axle = (0.31, half - 0.33) if label == MOTORCYCLE else (0.34, half - 0.36)
        seat = (-0.15, 0.85 if label == MOTORCYCLE else 0.95)
        if label == MOTORCYCLE:
            self._wheels(s, [-axle, axle], radius, label, inst)
            body = [(-axle + 0.15, 0.45), (axle - 0.2, 0.4), (axle - 0.05, 0.95), (-0.45, 0.85)]
            s.add(s.polygon(body), label, s.textured(paint, 0.05), inst)
        else:
            for u in (-axle, axle):
                s.add(s.ring(u, radius, radius, 0.05), label, _TYRE, inst)
            bottom = (0.0, 0.32)
            for a, b in (
                ((-axle, radius), bottom),
                (bottom, seat),
                (seat, (axle - 0.15, 0.95)),
                ((axle - 0.15, 0.95), (axle, radius)),
                ((-axle, radius), seat),
                (bottom, (axle - 0.15, 0.95)),
            ):
                s.add(s.segment(a, b, 0.045), label, paint, inst)
        if e.rider:
            self._seated(s, seat, axle)
        self._paint(s)

    def _seated(self, s: _Sprite, seat: tuple[float, float], axle: float) -> None:
        """A rider: same clothes as pedestrians, torso leaning over the handlebar."""
        inst = self.canvas.instance_id(RIDER)
        top, trousers = self._clothes(), self._clothes()
        u, v = seat
        shoulder = (u + 0.25, v + 0.6)
        s.add(s.segment((u, v + 0.05), shoulder, 0.34), RIDER, s.textured(top, 0.05), inst)
        s.add(s.segment((u, v), (u + 0.2, 0.35), 0.14), RIDER, trousers, inst)
        s.add(s.segment(shoulder, (axle - 0.15, 1.0), 0.09), RIDER, top, inst)
        skin = _SKIN[self.rng.integers(0, len(_SKIN))]
        s.add(s.ellipse(shoulder[0] + 0.05, shoulder[1] + 0.2, 0.11, 0.13), RIDER, skin, inst)
        if self.rng.random() < 0.5:  # helmet
            s.add(
                s.ellipse(shoulder[0] + 0.05, shoulder[1] + 0.27, 0.13, 0.08),
                RIDER,
                self._paint_colour(),
                inst,
            )

    def _clothes(self) -> RGB:
        return (_CLOTHES[self.rng.integers(0, len(_CLOTHES))] * self.rng.uniform(0.85, 1.1)).astype(
            np.float32
        )

    def _person(self, e: _Entity) -> None:
        rng = self.rng
        tall = rng.uniform(1.55, 1.95)
        s = self._sprite(e.x, e.z, -0.5, 0.5, 0, tall + 0.05)
        if s is None:
            return
        inst = self.canvas.instance_id(PERSON)
        top, trousers = self._clothes(), self._clothes()
        hip, shoulder = 0.5 * tall, 0.82 * tall
        if e.side_view:  # walking: legs apart
            stride = rng.uniform(0.15, 0.3)
            for foot in (-stride, stride):
                s.add(s.segment((0, hip), (foot, 0.03), 0.15), PERSON, trousers, inst)
            s.add(s.rect(-0.13, 0.13, hip, shoulder), PERSON, s.textured(top, 0.05), inst)
            s.add(s.segment((0, shoulder - 0.05), (0.1, hip - 0.05), 0.09), PERSON, top, inst)
        else:
            s.add(s.rect(-0.16, -0.02, 0, hip), PERSON, trousers, inst)
            s.add(s.rect(0.02, 0.16, 0, hip), PERSON, trousers, inst)
            s.add(s.rect(-0.22, 0.22, hip, shoulder), PERSON, s.textured(top, 0.05), inst)
            for sign in (-1, 1):
                s.add(
                    s.rect(*sorted((sign * 0.22, sign * 0.3)), hip - 0.05, shoulder),
                    PERSON,
                    top,
                    inst,
                )
        skin = _SKIN[rng.integers(0, len(_SKIN))]
        s.add(s.ellipse(0, shoulder + 0.12 * tall / 1.75, 0.1, 0.12), PERSON, skin, inst)
        s.add(s.ellipse(0, shoulder + 0.17 * tall / 1.75, 0.1, 0.06), PERSON, _CLOTHES[0], inst)
        self._paint(s)

    def _pole(self, e: _Entity) -> None:
        """A street lamp, a sign post or a traffic-light post; the post is `pole`."""
        rng = self.rng
        tall = rng.uniform(5.0, 8.0) if e.kind == "lamp" else rng.uniform(2.8, 4.5)
        s = self._sprite(e.x, e.z, -1.5, 1.5, 0, tall + 0.3)
        if s is None:
            return
        metal = _METAL[rng.integers(0, len(_METAL))] * rng.uniform(0.9, 1.1)
        width = rng.uniform(0.35, 0.5)  # sized for the demo's input: see the module's docstring
        s.add(s.rect(-width / 2, width / 2, 0, tall), POLE, s.textured(metal, 0.04), POLE)
        if e.kind == "lamp":
            reach = -np.sign(e.x) * 1.2
            s.add(s.segment((0, tall), (reach, tall), 0.08), POLE, metal, POLE)
            s.add(s.rect(*sorted((reach, reach * 0.7)), tall - 0.15, tall), POLE, metal * 1.2, POLE)
        elif e.kind == "sign":
            self._sign(s, tall - rng.uniform(0.1, 0.8))
        else:
            self._light(s, tall - 0.1)
        self._paint(s)

    def _sign(self, s: _Sprite, centre: float) -> None:
        rng = self.rng
        size = rng.uniform(0.9, 1.3)
        red, blue, yellow = (
            np.array(c, np.float32) for c in ((0.8, 0.1, 0.1), (0.1, 0.3, 0.75), (0.95, 0.8, 0.1))
        )
        shape = int(rng.integers(0, 4))
        r = size / 2
        if shape == 0:  # prohibition: red ring, white centre
            s.add(s.ellipse(0, centre, r, r), TRAFFIC_SIGN, red, TRAFFIC_SIGN)
            s.add(s.ellipse(0, centre, r * 0.72, r * 0.72), TRAFFIC_SIGN, _WHITE, TRAFFIC_SIGN)
        elif shape == 1:  # warning triangle
            corners = [(-r, centre - r * 0.8), (r, centre - r * 0.8), (0, centre + r)]
            s.add(s.polygon(corners), TRAFFIC_SIGN, red, TRAFFIC_SIGN)
            inner = [
                (-r * 0.6, centre - r * 0.55),
                (r * 0.6, centre - r * 0.55),
                (0, centre + r * 0.5),
            ]
            s.add(s.polygon(inner), TRAFFIC_SIGN, _WHITE, TRAFFIC_SIGN)
        elif shape == 2:  # priority diamond
            corners = [(0, centre - r), (r, centre), (0, centre + r), (-r, centre)]
            s.add(s.polygon(corners), TRAFFIC_SIGN, _WHITE, TRAFFIC_SIGN)
            inner = [
                (0, centre - r * 0.6),
                (r * 0.6, centre),
                (0, centre + r * 0.6),
                (-r * 0.6, centre),
            ]
            s.add(s.polygon(inner), TRAFFIC_SIGN, yellow, TRAFFIC_SIGN)
        else:  # mandatory / information: blue
            s.add(s.rect(-r, r, centre - r, centre + r), TRAFFIC_SIGN, blue, TRAFFIC_SIGN)
            s.add(
                s.rect(-r * 0.15, r * 0.15, centre - r * 0.6, centre + r * 0.6),
                TRAFFIC_SIGN,
                _WHITE,
                TRAFFIC_SIGN,
            )

    def _light(self, s: _Sprite, top: float) -> None:
        rng = self.rng
        housing = np.array((0.1, 0.11, 0.1), np.float32) * rng.uniform(0.8, 2.0)
        s.add(s.rect(-0.36, 0.36, top - 1.5, top), TRAFFIC_LIGHT, housing, TRAFFIC_LIGHT)
        if rng.random() < 0.3:  # seen from behind: only the housing
            return
        lit = int(rng.integers(0, 3))
        lamps = ((1.0, 0.15, 0.1), (1.0, 0.75, 0.1), (0.2, 1.0, 0.5))
        for index, lamp in enumerate(lamps):
            colour = np.array(lamp, np.float32) * (1.0 if index == lit else 0.25)
            s.add(
                s.ellipse(0, top - 0.27 - 0.48 * index, 0.19, 0.19),
                TRAFFIC_LIGHT,
                colour,
                TRAFFIC_LIGHT,
            )

    def _tree(self, e: _Entity) -> None:
        rng = self.rng
        trunk = rng.uniform(1.8, 3.2)
        radius = rng.uniform(1.2, 2.8)
        s = self._sprite(e.x, e.z, -radius * 1.6, radius * 1.6, 0, trunk + radius * 2.2)
        if s is None:
            return
        bark = np.array((0.3, 0.25, 0.2), np.float32) * rng.uniform(0.7, 1.3)
        crown = np.zeros(s.mask.shape, bool)
        for _ in range(int(rng.integers(3, 6))):
            du, dv = rng.uniform(-0.6, 0.6) * radius, rng.uniform(-0.3, 0.5) * radius
            r = radius * rng.uniform(0.6, 1.0)
            crown |= s.ellipse(du, trunk + radius + dv, r, r * rng.uniform(0.8, 1.1))
        half = rng.uniform(0.1, 0.2)
        s.add(s.rect(-half, half, 0, trunk + radius), VEGETATION, s.textured(bark, 0.1), VEGETATION)
        s.add(crown, VEGETATION, self._leaves(s.texture, self.noise.fine[s.window]), VEGETATION)
        self._paint(s)

    def _box(self, e: _Entity) -> None:
        """Void objects: `static` bins and boxes, `dynamic` carts on small wheels."""
        rng = self.rng
        label = STATIC if e.kind == "static" else DYNAMIC
        w, h = rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.3)
        s = self._sprite(e.x, e.z, -w / 2, w / 2, 0, h)
        if s is None:
            return
        colour = _PAINT[rng.integers(0, len(_PAINT))] * rng.uniform(0.7, 1.0)
        lift = 0.15 if label == DYNAMIC else 0.0
        s.add(s.rect(-w / 2, w / 2, lift, h), label, s.textured(colour, 0.05), label)
        if label == DYNAMIC:
            for u in (-w / 2 + 0.08, w / 2 - 0.08):
                s.add(s.ellipse(u, 0.08, 0.08, 0.08), label, _TYRE, label)
        self._paint(s)

    # ---------------------------------------------------------------- last passes
    def _ego_vehicle(self) -> None:
        """The bonnet of the recording car at the bottom, as in Cityscapes (void)."""
        rng, cam = self.rng, self.cam
        if rng.random() < 0.25:
            return
        rise = cam.height * rng.uniform(0.05, 0.12)
        curve = 1 - ((cam.cols - cam.centre) / (cam.width * 0.9)) ** 2
        top = cam.height - rise * np.clip(curve, 0.3, 1)
        mask = cam.rows[:, None] >= top[None, :]
        paint = self._paint_colour() * 0.6
        # Bonnets mirror the sky: a bright band fading downwards.
        fade = np.clip((cam.rows[:, None] - top[None, :]) / rise, 0, 1)[..., None]
        colour = paint * (1 - fade) * 0.5 + paint * fade + self.sky_colour * 0.35 * (1 - fade)
        self.canvas.paint((slice(None), slice(None)), mask, 0.0, EGO_VEHICLE, colour)

    def _photometric(self) -> None:
        """Exposure, contrast, colour cast, gamma and sensor noise, all per scene."""
        rng, image = self.rng, self.canvas.image
        image *= rng.uniform(0.65, 1.35) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
        image -= 0.5
        image *= rng.uniform(0.75, 1.2)
        image += 0.5
        np.clip(image, 0, 1, out=image)
        image **= rng.uniform(0.8, 1.25)
        image += rng.uniform(0.008, 0.03) * rng.standard_normal(image.shape, dtype=np.float32)

    def _void_marks(self) -> None:
        """Out-of-roi borders and small unlabeled holes: pixels a model is never scored on."""
        rng, cam, canvas = self.rng, self.cam, self.canvas
        if rng.random() < 0.5:
            border = np.zeros(canvas.label.shape, bool)
            border[cam.height - int(rng.integers(2, 7)) :] = True
            side = int(rng.integers(0, 5))
            if side:
                border[:, :side] = True
                border[:, cam.width - side :] = True
            canvas.relabel(border, OUT_OF_ROI)
        for _ in range(int(rng.integers(0, 3))):
            cy, cx = rng.uniform(0, cam.height), rng.uniform(0, cam.width)
            radius = rng.uniform(2, 8)
            hole = (cam.rows[:, None] - cy) ** 2 + (cam.cols[None, :] - cx) ** 2 <= radius**2
            canvas.relabel(hole, UNLABELED)


# -------------------------------------------------------------------- data set on disk
@dataclass(frozen=True)
class SyntheticScene:
    """One rendered scene: 8-bit RGB image, label ids, and Cityscapes-encoded instance ids."""

    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray


def featured_classes(index: int) -> frozenset[str]:
    """The rare classes scene `index` is guaranteed to show (see FEATURES)."""
    start = _FEATURES_PER_SCENE * index
    return frozenset(FEATURES[(start + k) % len(FEATURES)] for k in range(_FEATURES_PER_SCENE))


def render_scene(seed: int, split: str, index: int, height: int, width: int) -> SyntheticScene:
    """Render scene `index` of `split`; a pure function of its arguments.

    A layout can hide a guaranteed class behind something nearer; the scene is then redrawn
    from the same stream, so the result stays deterministic.
    """
    rng = np.random.default_rng([seed, ("train", "val").index(split), index])
    featured = featured_classes(index)
    wanted = {name2label[name].trainId for name in _ALWAYS}
    wanted |= {name2label[n].trainId for f in featured for n in _FEATURE_CLASSES[f]}
    for _ in range(_ATTEMPTS):
        canvas = _Scene(rng, height, width, featured).render()
        if wanted <= set(np.unique(LABEL_ID_TO_TRAIN_ID[canvas.label]).tolist()):
            break
    image = np.round(np.clip(canvas.image, 0, 1) * 255).astype(np.uint8)
    return SyntheticScene(image, canvas.label, canvas.instance)


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
    source: str = _SOURCE_DIGEST

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
        raise FileExistsError(
            f"{target} is not empty and is not a synthetic set with {params.manifest()} "
            f"(its {MANIFEST_NAME}: {found}); choose another root or remove it"
        )
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if n_train + n_val >= _PARALLEL_FROM else 1
    _build(params, target, workers)
    return target
