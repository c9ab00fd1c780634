"""The scene description: plain typed data saying what is in a scene, where, and how it looks.

The planner (`planner.py` for the layout, `details.py` for the rest) makes every random choice
and writes it down here; the painter only reads it, so the same description always paints the
same pixels. Positions are in metres: x to the right of the camera, z (depth) ahead, heights up
from the road. A side is -1 (left of the camera) or 1 (right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from experiments.data.synthetic.camera import Camera, Window
from experiments.data.synthetic.noise import Noise
from experiments.data.synthetic.palette import RGB

SIDES = (-1, 1)

# ---------------------------------------------------------------- the layout: what stands where


@dataclass(frozen=True)
class Street:
    """The street across: lanes, a parking bay, kerbs, sidewalks, green strips and facades."""

    lane_width: float
    lanes: tuple[float, ...]  # lane centres (x)
    parking: bool  # a 2.3 m parking bay along the right edge of the road
    edge: dict[int, float]  # x of the road's edge on each side
    kerb: float  # how far the sidewalks are raised
    walk: dict[int, float]  # sidewalk widths
    strip: dict[int, float]  # terrain between sidewalk and facade; 0 for none
    park: frozenset[int]  # sides with no facades: terrain, trees, a distant tree line
    facade_x: dict[int, float]
    rail: float | None  # x of the tram line, in a lane
    crosswalk: float | None  # depth of a zebra crossing
    crossing: float | None  # depth of a side street, 14 m wide, crossing ours
    sun_side: int  # its kerbs and facades are lit, the other side's facades cast a shadow
    shadow_depth: float  # how far that shadow reaches into the street; 0 for none


@dataclass(frozen=True)
class Surfaces:
    """The colours of the ground and of the foliage everywhere in the scene."""

    asphalt: RGB
    paving: RGB
    tile: float  # edge of a sidewalk tile; 0 for untiled
    terrain: RGB
    leaves: RGB


@dataclass(frozen=True)
class Blocks:
    """The blocks along one side's facade, in order of depth, one array entry each."""

    end: np.ndarray  # depth where each block ends
    height: np.ndarray
    building: np.ndarray  # False for a gap between buildings
    colour: np.ndarray
    spacing: np.ndarray  # between window columns
    storey: np.ndarray
    windows: np.ndarray  # whether it has any above the ground floor
    glass: np.ndarray  # how much its windows reflect the sky

    def index(self, depth: np.ndarray) -> np.ndarray:
        """The block at each depth (the last one beyond the end)."""
        return np.minimum(np.searchsorted(self.end, depth), len(self.end) - 1)


@dataclass(frozen=True)
class Entity:
    """A placed object: its kind, where it stands (x, z), and its ground footprint."""

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

    def hides(self, other: Entity, elevation: float) -> bool:
        """Whether this stands in front of a quarter or more of `other`'s box in the image."""
        if self.z >= other.z:
            return False
        left, right, top, bottom = self._view_box(elevation)
        o_left, o_right, o_top, o_bottom = other._view_box(elevation)
        width = min(right, o_right) - max(left, o_left)
        height = min(bottom, o_bottom) - max(top, o_top)
        covered = max(width, 0) * max(height, 0)
        return covered > 0.25 * (o_right - o_left) * (o_bottom - o_top)


@dataclass(frozen=True)
class Layout:
    """The camera, the street and everything placed on it, and the noise textures are cut from."""

    camera: Camera
    noise: Noise
    featured: frozenset[str]  # the rare classes this scene guarantees
    street: Street
    surfaces: Surfaces
    blocks: dict[int, Blocks]
    facade_end: float  # depth beyond which no facade stands
    entities: tuple[Entity, ...]

    def building_at(self, side: int, depth: np.ndarray) -> np.ndarray:
        """Whether a facade stands at these depths on this side (gaps, crossings and the far end
        have none)."""
        blocks = self.blocks[side]
        standing = (
            blocks.building[blocks.index(depth)]
            & (depth < self.facade_end)
            & (side not in self.street.park)
        )
        if self.street.crossing is not None:
            standing &= (depth < self.street.crossing) | (depth > self.street.crossing + 14)
        return standing


# ---------------------------------------------------------------- the details: how it all looks


@dataclass(frozen=True)
class Sky:
    top: RGB  # colour at the top of the image
    bottom: RGB  # ...and at the horizon

    @property
    def horizon(self) -> RGB:
        """The colour that haze, glass and bonnets mix in."""
        return self.bottom.astype(np.float32)


@dataclass(frozen=True)
class Skyline:
    """Distant buildings and tree lines at the vanishing point, one per segment across."""

    edges: np.ndarray  # where each segment ends, in pixels
    heights: np.ndarray  # metres; 0 for a gap
    trees: np.ndarray  # a tree line rather than a building
    facades: np.ndarray  # colour of each building
    haze: float  # how much of the sky's colour they take on


@dataclass(frozen=True)
class Barrier:
    """A wall, fence, hedge or guard rail: a low vertical plane along the street."""

    kind: Literal["wall", "fence", "hedge", "guard rail"]
    x: float
    start: float  # depth
    end: float
    top: float  # height
    colour: RGB
    bars: tuple[float, float] | None = None  # a fence's bar spacing and width


@dataclass(frozen=True)
class Bridge:
    depth: float
    low: float  # height of its underside
    high: float
    colour: RGB


@dataclass(frozen=True)
class Figure:
    """An entity in view, as the painter draws it; subclasses add how each kind looks."""

    entity: Entity
    window: Window  # the pixels its sprite covers


@dataclass(frozen=True)
class CarRear(Figure):
    paint: RGB
    roof: float  # height


@dataclass(frozen=True)
class CarSide(Figure):
    paint: RGB


@dataclass(frozen=True)
class Truck(Figure):
    height: float
    paint: RGB  # the cargo box
    cab: RGB  # seen from the side only


@dataclass(frozen=True)
class Bus(Figure):
    """A bus, or a tram (kind "train")."""

    height: float
    paint: RGB


@dataclass(frozen=True)
class Caravan(Figure):
    paint: RGB


@dataclass(frozen=True)
class Trailer(Figure):
    paint: RGB


@dataclass(frozen=True)
class Rider:
    top: RGB
    trousers: RGB
    skin: RGB
    helmet: RGB | None


@dataclass(frozen=True)
class TwoWheeler(Figure):
    """A bicycle or a motorcycle, seen from the side."""

    paint: RGB
    rider: Rider | None


@dataclass(frozen=True)
class Person(Figure):
    tall: float
    top: RGB
    trousers: RGB
    skin: RGB
    stride: float | None  # how far apart the feet are when walking; None for standing


SignShape = Literal["prohibition", "warning", "priority", "information"]
SIGN_SHAPES: tuple[SignShape, ...] = ("prohibition", "warning", "priority", "information")


@dataclass(frozen=True)
class Sign:
    centre: float  # height
    size: float
    shape: SignShape


@dataclass(frozen=True)
class Light:
    housing: RGB
    lit: int | None  # which lamp (red, amber, green) is on; None when seen from behind


@dataclass(frozen=True)
class Pole(Figure):
    """A street lamp, or a post with a sign or a traffic light."""

    tall: float
    metal: RGB
    width: float
    sign: Sign | None
    light: Light | None


@dataclass(frozen=True)
class Tree(Figure):
    trunk_top: float  # the trunk reaches into the middle of the crown
    trunk_half_width: float
    bark: RGB
    crown: tuple[tuple[float, float, float, float], ...]  # ellipses (u, v, radius u, radius v)


@dataclass(frozen=True)
class Clutter(Figure):
    """A void object: a `static` bin or box, a `dynamic` cart on small wheels."""

    width: float
    height: float
    colour: RGB


@dataclass(frozen=True)
class Bonnet:
    """The recording car's bonnet at the bottom of the image, as in Cityscapes."""

    rise: float  # pixels above the bottom
    paint: RGB


@dataclass(frozen=True)
class Exposure:
    """The camera's response: gain per channel, contrast, gamma, then sensor noise."""

    gain: RGB
    contrast: float
    gamma: float
    grain: np.ndarray  # (H, W, 3), added last


@dataclass(frozen=True)
class VoidMarks:
    """Pixels a model is never scored on."""

    border: tuple[int, int] | None  # out-of-roi rows at the bottom and columns at each side
    holes: tuple[tuple[float, float, float], ...]  # unlabeled discs: row, column, radius


@dataclass(frozen=True)
class Details:
    """Everything the painter needs besides the layout, each part drawn by `details.py`."""

    sky: Sky
    skyline: Skyline
    facade_shadow: float | None  # brightness in the shadow; None when the street has none
    barriers: dict[int, tuple[Barrier, ...]]
    bridge: Bridge | None
    figures: tuple[Figure, ...]  # in the order the entities were placed
    bonnet: Bonnet | None
    exposure: Exposure
    void: VoidMarks


@dataclass(frozen=True)
class SceneDescription:
    """All that is random about a scene; painting it involves no more chance."""

    layout: Layout
    details: Details
