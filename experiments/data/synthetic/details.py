"""The planner's second pass: how everything looks, and the camera's response.

These draws come after the layout's, in the order the painter uses their results: sky,
skyline, facade shadow, side structures, bridge, each object in placement order, bonnet,
exposure, void marks. The data set was first generated with the draws interleaved with the
painting in exactly that order; keeping it keeps every scene byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from experiments.data.synthetic.camera import Window
from experiments.data.synthetic.layout import (
    SIDES,
    SIGN_SHAPES,
    Barrier,
    Bonnet,
    Bridge,
    Bus,
    Caravan,
    CarRear,
    CarSide,
    Clutter,
    Details,
    Entity,
    Exposure,
    Figure,
    Layout,
    Light,
    Person,
    Pole,
    Rider,
    Sign,
    Sky,
    Skyline,
    Trailer,
    Tree,
    Truck,
    TwoWheeler,
    VoidMarks,
)
from experiments.data.synthetic.palette import CLOTHES, FACADE, METAL, PAINT, RGB, SKIN


def plan_details(rng: np.random.Generator, layout: Layout) -> Details:
    return _DetailPlanner(rng, layout).details


class _DetailPlanner:
    def __init__(self, rng: np.random.Generator, layout: Layout) -> None:
        self.rng, self.layout, self.cam = rng, layout, layout.camera
        sky = self._sky()
        skyline = self._skyline()
        facade_shadow = rng.uniform(0.45, 0.7) if layout.street.shadow_depth else None
        barriers = {side: self._barriers(side) for side in SIDES}
        bridge = self._bridge() if rng.random() < 0.08 else None
        figures = tuple(f for e in layout.entities if (f := self._figure(e)) is not None)
        bonnet = None if rng.random() < 0.25 else self._bonnet()
        self.details = Details(
            sky,
            skyline,
            facade_shadow,
            barriers,
            bridge,
            figures,
            bonnet,
            self._exposure(),
            self._void_marks(),
        )

    # ---------------------------------------------------------------- the background
    def _sky(self) -> Sky:
        rng = self.rng
        if rng.random() < 0.55:  # blue
            top = np.array((0.30, 0.50, 0.85), np.float32) * rng.uniform(0.85, 1.1, 3)
            bottom = np.array((0.70, 0.80, 0.92), np.float32) * rng.uniform(0.9, 1.05, 3)
        else:  # overcast: the grey of light facades
            top = np.full(3, rng.uniform(0.62, 0.82), np.float32) * rng.uniform(0.95, 1.05, 3)
            bottom = top * rng.uniform(1.02, 1.15)
        return Sky(top, bottom)

    def _skyline(self) -> Skyline:
        rng = self.rng
        edges = np.cumsum(rng.uniform(6, 50, self.cam.width // 6 + 1))
        count = len(edges)
        heights = rng.uniform(5, 35, count) * (rng.random(count) < 0.8)
        trees = rng.random(count) < 0.3
        haze = rng.uniform(0.35, 0.75)
        facades = FACADE[rng.integers(0, len(FACADE), count)]
        return Skyline(edges, heights, trees, facades, haze)

    def _barriers(self, side: int) -> tuple[Barrier, ...]:
        """Walls, fences and hedges one after another along the sidewalk's outer edge (the
        guaranteed one first and nearest, on the right), sometimes a guard rail by the road."""
        rng, street = self.rng, self.layout.street
        x = (
            street.edge[side] + side * (street.walk[side] + 0.05)
            if street.strip[side] or side in street.park
            else street.facade_x[side] - side * 0.2
        )
        kinds = [k for k in ("wall", "fence") if k in self.layout.featured and side == 1]
        kinds += [k for k in ("wall", "fence", "hedge") if k not in kinds and rng.random() < 0.2]
        start = self.cam.in_frame(x, rng.uniform(4, 15), margin=0)
        barriers: list[Barrier] = []
        for kind in kinds:
            end = start + rng.uniform(8, 30)
            barriers.append(self._barrier(kind, x, start, end, rng.uniform(0.8, 2.3)))
            start = end + rng.uniform(0, 20)
        if rng.random() < 0.12:
            start = rng.uniform(5, 30)
            rail_x = street.edge[side] - side * 0.3
            barriers.append(self._barrier("guard rail", rail_x, start, start + 30, 0.8))
        return tuple(barriers)

    def _barrier(self, kind: str, x: float, start: float, end: float, top: float) -> Barrier:
        rng = self.rng
        if kind == "wall":
            colour = FACADE[rng.integers(0, len(FACADE))] * rng.uniform(0.85, 1.1)
            return Barrier("wall", x, start, end, top, colour)
        if kind == "fence":
            bars = rng.uniform(0.12, 0.3), rng.uniform(0.025, 0.05)
            return Barrier("fence", x, start, end, top, METAL[rng.integers(0, len(METAL))], bars)
        if kind == "hedge":
            return Barrier("hedge", x, start, end, top, self.layout.surfaces.leaves)
        grey = np.full(3, rng.uniform(0.55, 0.75), np.float32)
        return Barrier("guard rail", x, start, end, top, grey)

    def _bridge(self) -> Bridge:
        rng = self.rng
        depth = rng.uniform(35, 90)
        low = rng.uniform(4.5, 7.0)
        high = low + rng.uniform(1.2, 2.5)
        return Bridge(depth, low, high, np.full(3, rng.uniform(0.45, 0.7), np.float32))

    # ---------------------------------------------------------------- objects
    def _figure(self, entity: Entity) -> Figure | None:
        """How `entity` looks, or None when it is out of the frame (it then draws no more)."""
        plan: dict[str, Callable[[Entity], Figure | None]] = {
            "car": self._car,
            "truck": self._truck,
            "bus": self._bus,
            "train": self._bus,
            "caravan": self._caravan,
            "trailer": self._trailer,
            "motorcycle": self._two_wheeler,
            "bicycle": self._two_wheeler,
            "person": self._person,
            "lamp": self._pole,
            "sign": self._pole,
            "light": self._pole,
            "tree": self._tree,
            "static": self._clutter,
            "dynamic": self._clutter,
        }
        return plan[entity.kind](entity)

    def _window(self, e: Entity, left: float, right: float, top: float) -> Window | None:
        """The pixels of its sprite: [left, right] metres across, from the road to `top`."""
        return self.cam.window(e.x, e.z, left, right, 0, top)

    def _paint(self) -> RGB:
        rng = self.rng
        return (PAINT[rng.integers(0, len(PAINT))] * rng.uniform(0.9, 1.08, 3)).astype(np.float32)

    def _clothes(self) -> RGB:
        rng = self.rng
        return (CLOTHES[rng.integers(0, len(CLOTHES))] * rng.uniform(0.85, 1.1)).astype(np.float32)

    def _skin(self) -> RGB:
        return SKIN[self.rng.integers(0, len(SKIN))]

    def _car(self, e: Entity) -> Figure | None:
        window = self._window(e, -e.width / 2, e.width / 2, 1.6)
        if window is None:
            return None
        if e.side_view:
            return CarSide(e, window, self._paint())
        return CarRear(e, window, self._paint(), roof=self.rng.uniform(1.35, 1.55))

    def _truck(self, e: Entity) -> Figure | None:
        height = self.rng.uniform(3.3, 3.8)
        paint, cab = self._paint(), self._paint()
        window = self._window(e, -e.width / 2, e.width / 2, height)
        return None if window is None else Truck(e, window, height, paint, cab)

    def _bus(self, e: Entity) -> Figure | None:
        is_train = e.kind == "train"
        height = self.rng.uniform(3.4, 3.8) if is_train else self.rng.uniform(2.9, 3.2)
        paint = self._paint()
        # A tram's pantograph reaches 0.8 m above its roof.
        window = self._window(e, -e.width / 2, e.width / 2, height + (0.8 if is_train else 0))
        return None if window is None else Bus(e, window, height, paint)

    def _caravan(self, e: Entity) -> Figure | None:
        window = self._window(e, -e.width / 2, e.width / 2, 2.7)
        if window is None:
            return None
        return Caravan(e, window, PAINT[self.rng.choice([0, 1, 9])])  # white, silver, beige

    def _trailer(self, e: Entity) -> Figure | None:
        window = self._window(e, -e.width / 2, e.width / 2, 1.9)
        return None if window is None else Trailer(e, window, self._paint())

    def _two_wheeler(self, e: Entity) -> Figure | None:
        window = self._window(e, -e.width / 2, e.width / 2, 1.9 if e.rider else 1.2)
        if window is None:
            return None
        paint = self._paint()
        return TwoWheeler(e, window, paint, self._rider() if e.rider else None)

    def _rider(self) -> Rider:
        top, trousers = self._clothes(), self._clothes()
        skin = self._skin()
        helmet = self._paint() if self.rng.random() < 0.5 else None
        return Rider(top, trousers, skin, helmet)

    def _person(self, e: Entity) -> Figure | None:
        rng = self.rng
        tall = rng.uniform(1.55, 1.95)
        window = self._window(e, -0.5, 0.5, tall + 0.05)
        if window is None:
            return None
        top, trousers = self._clothes(), self._clothes()
        stride = rng.uniform(0.15, 0.3) if e.side_view else None
        return Person(e, window, tall, top, trousers, skin=self._skin(), stride=stride)

    def _pole(self, e: Entity) -> Figure | None:
        rng = self.rng
        tall = rng.uniform(5.0, 8.0) if e.kind == "lamp" else rng.uniform(2.8, 4.5)
        window = self._window(e, -1.5, 1.5, tall + 0.3)
        if window is None:
            return None
        metal = METAL[rng.integers(0, len(METAL))] * rng.uniform(0.9, 1.1)
        width = rng.uniform(0.35, 0.5)  # sized for the demo's input: see the package docstring
        sign = self._sign(tall - rng.uniform(0.1, 0.8)) if e.kind == "sign" else None
        light = self._light() if e.kind == "light" else None
        return Pole(e, window, tall, metal, width, sign, light)

    def _sign(self, centre: float) -> Sign:
        size = self.rng.uniform(0.9, 1.3)
        return Sign(centre, size, SIGN_SHAPES[int(self.rng.integers(0, 4))])

    def _light(self) -> Light:
        rng = self.rng
        housing = np.array((0.1, 0.11, 0.1), np.float32) * rng.uniform(0.8, 2.0)
        if rng.random() < 0.3:  # seen from behind: only the housing
            return Light(housing, None)
        return Light(housing, int(rng.integers(0, 3)))

    def _tree(self, e: Entity) -> Figure | None:
        rng = self.rng
        trunk = rng.uniform(1.8, 3.2)
        radius = rng.uniform(1.2, 2.8)
        window = self._window(e, -radius * 1.6, radius * 1.6, trunk + radius * 2.2)
        if window is None:
            return None
        bark = np.array((0.3, 0.25, 0.2), np.float32) * rng.uniform(0.7, 1.3)
        crown: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(3, 6))):  # overlapping ellipses around the crown's centre
            du, dv = rng.uniform(-0.6, 0.6) * radius, rng.uniform(-0.3, 0.5) * radius
            r = radius * rng.uniform(0.6, 1.0)
            crown.append((du, trunk + radius + dv, r, r * rng.uniform(0.8, 1.1)))
        trunk_half_width = rng.uniform(0.1, 0.2)
        return Tree(e, window, trunk + radius, trunk_half_width, bark, tuple(crown))

    def _clutter(self, e: Entity) -> Figure | None:
        rng = self.rng
        w, h = rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.3)
        window = self._window(e, -w / 2, w / 2, h)
        if window is None:
            return None
        colour = PAINT[rng.integers(0, len(PAINT))] * rng.uniform(0.7, 1.0)
        return Clutter(e, window, w, h, colour)

    # ---------------------------------------------------------------- last passes
    def _bonnet(self) -> Bonnet:
        return Bonnet(self.cam.height * self.rng.uniform(0.05, 0.12), self._paint() * 0.6)

    def _exposure(self) -> Exposure:
        rng = self.rng
        gain = rng.uniform(0.65, 1.35) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
        contrast = rng.uniform(0.75, 1.2)
        gamma = rng.uniform(0.8, 1.25)
        shape = (self.cam.height, self.cam.width, 3)
        grain = rng.uniform(0.008, 0.03) * rng.standard_normal(shape, dtype=np.float32)
        return Exposure(gain, contrast, gamma, grain)

    def _void_marks(self) -> VoidMarks:
        rng, cam = self.rng, self.cam
        border = None
        if rng.random() < 0.5:
            border = int(rng.integers(2, 7)), int(rng.integers(0, 5))
        holes = tuple(
            (rng.uniform(0, cam.height), rng.uniform(0, cam.width), rng.uniform(2, 8))
            for _ in range(int(rng.integers(0, 3)))
        )
        return VoidMarks(border, holes)
