"""The planner's first pass: the camera, the street, and where every object stands.

Every random choice of a scene is made by the planner, from one generator, in a fixed order:
the camera, the noise fields, the street, the facades, the street furniture, the vehicles and
the people here; then everything `details.py` draws. That order is the data set: changing it
changes every scene.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from experiments.data.synthetic.camera import Camera
from experiments.data.synthetic.details import plan_details
from experiments.data.synthetic.layout import (
    SIDES,
    Blocks,
    Entity,
    Layout,
    SceneDescription,
    Street,
    Surfaces,
)
from experiments.data.synthetic.noise import Noise
from experiments.data.synthetic.palette import FACADE, hsv

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


def plan_scene(
    rng: np.random.Generator, height: int, width: int, featured: frozenset[str]
) -> SceneDescription:
    """Everything random about one scene, guaranteeing the rare classes in `featured`."""
    layout = _LayoutPlanner(rng, height, width, featured).layout
    return SceneDescription(layout, plan_details(rng, layout))


class _LayoutPlanner:
    """Samples the street, then places objects so that none overlaps another and nothing hides
    an object that carries a guaranteed class."""

    def __init__(
        self, rng: np.random.Generator, height: int, width: int, featured: frozenset[str]
    ) -> None:
        self.rng = rng
        self.featured = featured
        self.cam = Camera(rng, height, width)
        noise = Noise(rng, height, width)
        self.street, surfaces = self._street()
        facade_end, blocks = self._facades()
        self.entities: list[Entity] = []
        self.protected: list[Entity] = []
        self._plan_street_furniture()
        self._plan_vehicles()
        self._plan_people()
        self.layout = Layout(
            self.cam,
            noise,
            featured,
            self.street,
            surfaces,
            blocks,
            facade_end,
            tuple(self.entities),
        )

    def _street(self) -> tuple[Street, Surfaces]:
        rng = self.rng
        lane_width = rng.uniform(3.0, 3.6)
        lanes_left, lanes_right = int(rng.integers(0, 3)), int(rng.integers(0, 2))
        # One lane for each guaranteed large vehicle and the guaranteed car, so none is hidden.
        needed = 1 + len(self.featured & {"train", "bus", "truck"})
        lanes_left = max(lanes_left, needed - 1 - lanes_right)
        lanes = tuple(k * lane_width for k in range(-lanes_left, lanes_right + 1))
        parking = rng.random() < 0.35
        parking_width = 2.3 if parking else 0.0
        edge = {
            -1: -(lanes_left + 0.5) * lane_width - rng.uniform(0.1, 0.6),
            1: (lanes_right + 0.5) * lane_width + rng.uniform(0.1, 0.6) + parking_width,
        }
        kerb = rng.uniform(0.1, 0.16)
        walk = {side: rng.uniform(1.8, 5.0) for side in SIDES}
        strip = {side: rng.uniform(0.8, 3.0) if rng.random() < 0.3 else 0.0 for side in SIDES}
        if "terrain" in self.featured and max(strip.values()) == 0:
            strip[int(rng.choice((-1, 1)))] = rng.uniform(1.0, 3.0)
        park = frozenset([side for side in SIDES if rng.random() < 0.15][:1])
        facade_x = {s: s * (abs(edge[s]) + walk[s] + strip[s]) for s in SIDES}
        asphalt = (np.float32(rng.uniform(0.26, 0.55)) * rng.uniform(0.95, 1.05, 3)).astype(
            np.float32
        )
        paving = (asphalt * rng.uniform(0.95, 1.08)).astype(np.float32)
        tile = rng.uniform(0.25, 0.6) if rng.random() < 0.85 else 0.0
        rail = float(rng.choice(lanes)) if "train" in self.featured or rng.random() < 0.08 else None
        crosswalk = rng.uniform(9, 30) if rng.random() < 0.25 else None
        crossing = rng.uniform(18, 45) if rng.random() < 0.3 else None
        terrain = hsv(rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.65), rng.uniform(0.3, 0.6))
        leaves = hsv(rng.uniform(0.15, 0.33), rng.uniform(0.35, 0.75), rng.uniform(0.2, 0.5))
        sun_side = int(rng.choice((-1, 1)))
        shadow_depth = rng.uniform(2.0, 9.0) if rng.random() < 0.6 else 0.0
        street = Street(
            lane_width,
            lanes,
            parking,
            edge,
            kerb,
            walk,
            strip,
            park,
            facade_x,
            rail,
            crosswalk,
            crossing,
            sun_side,
            shadow_depth,
        )
        return street, Surfaces(asphalt, paving, tile, terrain, leaves)

    def _facades(self) -> tuple[float, dict[int, Blocks]]:
        """Where the facades end, and the blocks along each side up to there."""
        rng = self.rng
        facade_end = rng.uniform(60, 200)
        blocks: dict[int, Blocks] = {}
        for side in SIDES:
            ends = np.cumsum(rng.uniform(8, 30, 24))
            count = int(np.searchsorted(ends, facade_end)) + 1
            blocks[side] = Blocks(
                end=ends[:count],
                height=rng.uniform(7, 26, count),
                building=rng.random(count) > 0.15,
                colour=(
                    FACADE[rng.integers(0, len(FACADE), count)] * rng.uniform(0.9, 1.1, (count, 3))
                ).astype(np.float32),
                spacing=rng.uniform(2.2, 4.5, count),
                storey=rng.uniform(2.8, 3.6, count),
                windows=rng.random(count) < 0.85,
                glass=rng.uniform(0.2, 0.8, count),
            )
        return facade_end, blocks

    # ---------------------------------------------------------------- placing objects
    def _free(self, candidate: Entity, protect: bool) -> bool:
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

    def _place(self, make: Callable[[], Entity], tries: int = 12, protect: bool = False) -> None:
        """Add the first free candidate `make` returns. A protected entity carries a class the
        scene guarantees, so later entities may not hide it."""
        for _ in range(tries):
            candidate = make()
            if self._free(candidate, protect):
                self.entities.append(candidate)
                if protect:
                    self.protected.append(candidate)
                return

    def _plan_street_furniture(self) -> None:
        """Poles (lamps, signs, lights) and trees along both sidewalks, plus void objects."""
        rng, street, cam = self.rng, self.street, self.cam
        # The nearest pole of one side carries a sign, of the other a light: both guaranteed.
        first = {-1: "sign", 1: "light"} if rng.random() < 0.5 else {-1: "light", 1: "sign"}
        for side in SIDES:
            x = street.edge[side] + side * rng.uniform(0.3, 0.6)
            z = cam.in_frame(x, rng.uniform(6, 14), margin=0.5)
            # ...and far enough for its sign or light to be below the top of the frame.
            z = max(z, cam.focal * (4.8 - cam.elevation) / cam.horizon)
            self._place(
                lambda k=first[side], x=x, z=z: Entity(k, x, z, 0.8, 0.3, top=4.6, low=2.0),
                tries=1,
                protect=True,
            )
            while (z := z + rng.uniform(7, 16)) < 70:
                kind = str(rng.choice(["lamp", "sign", "light"]))
                self._place(lambda k=kind, x=x, z=z: Entity(k, x, z, 0.3, 0.3, top=8.0), tries=1)
        tree_sides = [side for side in SIDES if rng.random() < 0.6 or side in street.park]
        for side in tree_sides or [int(rng.choice((-1, 1)))]:
            z = rng.uniform(5, 12)
            while z < 80:
                x = street.edge[side] + side * (street.walk[side] - rng.uniform(0.5, 1.0))
                if side in street.park:
                    x += side * rng.uniform(0, 15)
                self._place(
                    lambda x=x, z=z: Entity("tree", x, z, 0.5, 0.5, top=8.5, low=1.8, spread=2.5),
                    tries=1,
                )
                z += rng.uniform(6, 14)
        for kind in ("static",) * int(rng.integers(0, 4)) + ("dynamic",) * int(rng.integers(0, 3)):
            side = int(rng.choice((-1, 1)))
            self._place(
                lambda k=kind, s=side: Entity(
                    k,
                    street.edge[s] + s * rng.uniform(0.5, street.walk[s] - 0.3),
                    rng.uniform(5, 30),
                    0.9,
                    0.7,
                )
            )

    def _plan_vehicles(self) -> None:
        rng = self.rng
        if self.street.rail is not None:
            rail = self.street.rail
            self._place(lambda: self._in_view("train", rail), protect=True)
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

    def _vehicle(
        self, kind: str, x: float, z: float, side_view: bool = False, rider: bool = False
    ) -> Entity:
        width, length = _VEHICLE_SIZES[kind]
        stretch = self.rng.uniform(0.92, 1.1)
        width, length = width * stretch, length * stretch
        if side_view:  # fronto-parallel: the length runs across the image
            width, length = length, width
        top = 1.9 if rider else _VEHICLE_TOPS[kind]
        return Entity(kind, x, z, width, length, side_view, rider, top=top)

    def _in_view(self, kind: str, x: float) -> Entity:
        """A vehicle near enough to be clearly seen, far enough to be in the frame."""
        near = 11.0 if abs(x) < self.street.lane_width / 2 else 8.0  # not glued to our bonnet
        return self._vehicle(kind, x, self.cam.in_frame(x, self.rng.uniform(near, 28.0)))

    def _free_lane(self) -> float:
        """A lane centre no guaranteed vehicle has taken yet (any lane when all are taken)."""
        lanes = self.street.lanes
        taken = {round(e.x, 3) for e in self.protected}
        free = [lane for lane in lanes if round(lane, 3) not in taken]
        return float(self.rng.choice(free or lanes))

    def _road_vehicle(self, kind: str) -> Entity:
        rng, street = self.rng, self.street
        where = rng.random()
        if street.crossing is not None and where < 0.25:
            return self._vehicle(
                kind, rng.uniform(-14, 14), street.crossing + rng.uniform(2, 10), side_view=True
            )
        if street.parking and where < 0.55:
            width = _VEHICLE_SIZES[kind][0]
            return self._vehicle(kind, street.edge[1] - width / 2 - 0.2, rng.uniform(6, 60))
        x = float(rng.choice(street.lanes)) + rng.uniform(-0.3, 0.3)
        near = 12.0 if abs(x) < street.lane_width / 2 else 6.0
        return self._vehicle(kind, x, near + 60 * rng.random() ** 1.5)

    def _two_wheeler(self, kind: str, rider: bool, near: tuple[float, float]) -> Entity:
        rng, street = self.rng, self.street
        side = int(rng.choice((-1, 1)))
        if rider:  # riding along the road edge, seen from the side (fronto-parallel)
            x = street.edge[side] - side * rng.uniform(0.6, 1.5)
        else:  # parked on the sidewalk
            x = street.edge[side] + side * rng.uniform(0.4, street.walk[side] - 0.4)
        depth = self.cam.in_frame(x, rng.uniform(*near), margin=1.0)
        return self._vehicle(kind, x, depth, side_view=True, rider=rider)

    def _plan_people(self) -> None:
        for index in range(int(self.rng.integers(3, 12))):
            # The first person is the guaranteed one: near, in the frame, never hidden.
            self._place(lambda first=index == 0: self._pedestrian(first), protect=index == 0)

    def _pedestrian(self, first: bool) -> Entity:
        rng, street = self.rng, self.street
        side = int(rng.choice((-1, 1)))
        if street.crosswalk is not None and not first and rng.random() < 0.3:
            x = rng.uniform(street.edge[-1], street.edge[1])
            z = street.crosswalk + rng.uniform(0, 3)
        else:
            x = street.edge[side] + side * rng.uniform(0.3, street.walk[side] - 0.3)
            z = self.cam.in_frame(x, rng.uniform(5, 20), 0.5) if first else rng.uniform(5, 45)
        return Entity("person", x, z, 0.5, 0.4, side_view=rng.random() < 0.4, top=1.95)
