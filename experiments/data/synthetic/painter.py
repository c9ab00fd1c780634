"""The painter: label ids, instance ids and RGB for a scene description, with no chance in it.

Layers are painted far to near where that is cheap (sky, skyline, ground, facades, side
structures, bridge), then the objects (`figures.py`), the bonnet, the camera's response and
the void marks; the canvas's depth buffer settles what covers what.
"""

from __future__ import annotations

import numpy as np

from experiments.data.synthetic.canvas import Canvas
from experiments.data.synthetic.classes import (
    BRIDGE,
    BUILDING,
    EGO_VEHICLE,
    FENCE,
    GUARD_RAIL,
    OUT_OF_ROI,
    PARKING,
    RAIL_TRACK,
    ROAD,
    SIDEWALK,
    TERRAIN,
    UNLABELED,
    VEGETATION,
    WALL,
)
from experiments.data.synthetic.figures import FigurePainter
from experiments.data.synthetic.layout import SIDES, Barrier, Bonnet, Bridge, SceneDescription
from experiments.data.synthetic.palette import GLASS, WHITE, foliage

_SKYLINE_DEPTH = 400.0  # metres: far enough to sit at the vanishing point
_EVERYWHERE = (slice(None), slice(None))
# Objects that cast no shadow on the ground beneath them: too thin, or too high up.
_NO_SHADOW = ("tree", "lamp", "sign", "light", "person")


def paint_scene(description: SceneDescription) -> Canvas:
    return _Painter(description).paint()


class _Painter:
    def __init__(self, description: SceneDescription) -> None:
        self.layout, self.details = description.layout, description.details
        self.cam, self.noise = self.layout.camera, self.layout.noise
        self.street, self.surfaces = self.layout.street, self.layout.surfaces
        self.sky_colour = self.details.sky.horizon
        self.canvas = Canvas(self.cam.height, self.cam.width)

    def paint(self) -> Canvas:
        self._sky()
        self._skyline()
        self._ground()
        for side in SIDES:
            self._facade(side)
            for barrier in self.details.barriers[side]:
                self._barrier(barrier)
        if self.details.bridge is not None:
            self._bridge(self.details.bridge)
        figures = FigurePainter(
            self.canvas, self.cam, self.noise, self.sky_colour, self.surfaces.leaves
        )
        for figure in self.details.figures:
            figures.paint(figure)
        if self.details.bonnet is not None:
            self._bonnet(self.details.bonnet)
        self._exposure()
        self._void_marks()
        return self.canvas

    # ---------------------------------------------------------------- background
    def _sky(self) -> None:
        cam, sky = self.cam, self.details.sky
        t = np.clip(cam.rows / cam.horizon, 0, 1)[:, None, None]
        clouds = 0.05 * self.noise.coarse[..., None]
        self.canvas.image[:] = (sky.top * (1 - t) + sky.bottom * t) * (1 + clouds)

    def _skyline(self) -> None:
        """Distant buildings and tree lines, hazed towards the sky."""
        cam, skyline = self.cam, self.details.skyline
        segment = np.searchsorted(skyline.edges, np.arange(cam.width))
        tops = np.array([cam.row_at(h, _SKYLINE_DEPTH) for h in skyline.heights])[segment]
        mask = (cam.rows[:, None] >= tops[None, :]) & (
            cam.rows[:, None] < cam.row_at(0, _SKYLINE_DEPTH)
        )
        base = np.where(skyline.trees[:, None], self.surfaces.leaves, skyline.facades)
        colour = base[segment][None] * (1 - skyline.haze) + self.sky_colour * skyline.haze
        colour = colour * (1 + 0.04 * self.noise.medium[..., None])
        label = np.where(skyline.trees, VEGETATION, BUILDING)[segment][None, :]
        self.canvas.paint(
            _EVERYWHERE, mask, _SKYLINE_DEPTH, np.broadcast_to(label, mask.shape), colour
        )

    def _ground(self) -> None:
        """Terrain everywhere below the horizon, then sidewalks, road and markings on it."""
        cam, noise, street = self.cam, self.noise, self.street
        road_depth, road_x = cam.ground(0.0)
        walk_depth, walk_x = cam.ground(street.kerb)
        rows = slice(cam.ground_top, None)
        label = np.full(road_x.shape, TERRAIN, np.uint8)
        texture = 1 + 0.12 * noise.coarse[rows] + 0.1 * noise.medium[rows] + 0.05 * noise.fine[rows]
        colour = self.surfaces.terrain * texture[..., None]
        depth = np.broadcast_to(walk_depth, road_x.shape).copy()
        for side in SIDES:
            self._sidewalk(side, road_x, walk_depth, walk_x, label, colour)
        on_road = (road_x >= street.edge[-1]) & (road_x <= street.edge[1])
        if street.crossing is not None:
            on_road |= (road_depth >= street.crossing) & (road_depth <= street.crossing + 14)
        label[on_road] = ROAD
        grain = 1 + 0.06 * noise.coarse[rows] + 0.04 * noise.medium[rows] + 0.05 * noise.fine[rows]
        colour[on_road] = self.surfaces.asphalt * grain[on_road][:, None]
        depth[on_road] = np.broadcast_to(road_depth, road_x.shape)[on_road]
        self._road_markings(road_depth, road_x, on_road, label, colour)
        colour *= self._ground_shade(road_depth, road_x)[..., None]
        self.canvas.paint((rows, slice(None)), np.ones(label.shape, bool), depth, label, colour)

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
        street, surfaces = self.street, self.surfaces
        edge, rows = street.edge[side], slice(self.cam.ground_top, None)
        outer = side * walk_x
        surface = (outer > abs(edge)) & (outer <= abs(edge) + street.walk[side])
        kerb_face = (side * road_x > abs(edge)) & (outer <= abs(edge))
        paving = np.broadcast_to(surfaces.paving, colour.shape).copy()
        if surfaces.tile:
            along, across = walk_depth / surfaces.tile, walk_x / surfaces.tile
            joint = 0.035 / surfaces.tile
            seams = ((along % 1) < joint) | ((across % 1) < joint)
            # Each tile gets its own shade, from a hash of its integer coordinates.
            row, column = np.floor(along).astype(np.int64), np.floor(across).astype(np.int64)
            shade = 1 + 0.05 * (((row * 73856093) ^ column) % 13 / 6.0 - 1)
            paving *= np.where(seams, 0.78, shade)[..., None]
        paving *= (1 + 0.04 * self.noise.medium[rows] + 0.05 * self.noise.fine[rows])[..., None]
        label[surface | kerb_face] = SIDEWALK
        colour[surface] = paving[surface]
        colour[kerb_face] = surfaces.paving * (1.3 if side == street.sun_side else 0.7)

    def _road_markings(
        self,
        depth: np.ndarray,
        x: np.ndarray,
        on_road: np.ndarray,
        label: np.ndarray,
        colour: np.ndarray,
    ) -> None:
        """Lane lines, a zebra crossing, parking bays and tram rails."""
        street = self.street
        depth = np.broadcast_to(depth, x.shape)
        white = np.zeros(x.shape, bool)
        for boundary in street.lanes[:-1]:
            white |= (np.abs(x - boundary - street.lane_width / 2) < 0.07) & ((depth % 9) < 3)
        if street.crosswalk is not None:
            crosswalk = street.crosswalk
            white |= (depth >= crosswalk) & (depth <= crosswalk + 4) & ((x % 1.0) < 0.5)
        if street.parking:
            bay = (x > street.edge[1] - 2.3) & (x <= street.edge[1])
            label[bay] = PARKING
            white |= bay & ((np.abs(x - (street.edge[1] - 2.3)) < 0.06) | ((depth % 5.5) < 0.12))
        if street.rail is not None:
            track = on_road & (np.abs(x - street.rail) <= 0.9)
            label[track] = RAIL_TRACK
            steel = track & (np.abs(np.abs(x - street.rail) - 0.72) < 0.035)
            colour[track] *= 0.9
            colour[steel] = (0.62, 0.62, 0.64)
        white &= on_road
        colour[white] = WHITE * (1 + 0.04 * self.noise.fine[self.cam.ground_top :][white, None])

    def _ground_shade(self, depth: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Shadows on the ground: the facade on the sunny side's far side, and under objects."""
        depth = np.broadcast_to(depth, x.shape)
        shade = np.ones(x.shape, np.float32)
        if self.details.facade_shadow is not None:
            side = -self.street.sun_side
            band = side * x > abs(self.street.facade_x[side]) - self.street.shadow_depth
            shade[band & self.layout.building_at(side, depth)] = self.details.facade_shadow
        for entity in self.layout.entities:
            if entity.kind in _NO_SHADOW:
                continue
            x0, x1, z0, z1 = entity.footprint()
            under = (x >= x0 - 0.1) & (x <= x1 + 0.1) & (depth >= z0 - 0.3) & (depth <= z1)
            shade[under] *= 0.45
        return shade

    def _facade(self, side: int) -> None:
        """Building fronts as a vertical plane, with storeys, windows and a ground floor."""
        columns, depth, height = self.cam.side_plane(self.street.facade_x[side])
        blocks = self.layout.blocks[side]
        index = blocks.index(depth)
        top = blocks.height[index]
        mask = (height >= 0) & (height <= top) & self.layout.building_at(side, depth)
        along = depth - np.concatenate(([0.0], blocks.end))[index]
        storey, spacing = blocks.storey[index], blocks.spacing[index]
        window_cells = (
            ((along / spacing) % 1 > 0.3)
            & ((along / spacing) % 1 < 0.75)
            & ((height / storey) % 1 > 0.3)
            & ((height / storey) % 1 < 0.8)
            & (height > 3.5)
            & (height < top - 0.8)
            & blocks.windows[index]
        )
        shop = (height > 0.4) & (height < 2.8) & ((along % 7) > 1) & ((along % 7) < 6)
        ledge = ((height / storey) % 1 < 0.04) | (height > top - 0.35)
        light = 1.1 if side == self.street.sun_side else 0.8
        texture = 1 + 0.06 * self.noise.coarse[:, columns] + 0.05 * self.noise.fine[:, columns]
        colour = blocks.colour[index][None] * (light * texture)[..., None]
        glass_mix = blocks.glass[index][None, :, None]
        glass = GLASS * (1 - glass_mix) + self.sky_colour * glass_mix
        colour = np.where((window_cells | shop)[..., None], glass * texture[..., None], colour)
        colour = np.where(ledge[..., None], colour * 0.8, colour)
        self.canvas.paint(
            (slice(None), columns), mask, np.broadcast_to(depth, mask.shape), BUILDING, colour
        )

    def _barrier(self, barrier: Barrier) -> None:
        columns, depth, height = self.cam.side_plane(barrier.x)
        top = barrier.top
        region = (height >= 0) & (height <= top) & (depth >= barrier.start) & (depth <= barrier.end)
        texture, fine = self.noise.medium[:, columns], self.noise.fine[:, columns]
        colour_mask: np.ndarray | None = None
        if barrier.kind == "wall":
            label = WALL
            colour = barrier.colour * (1 + 0.08 * texture + 0.05 * fine)[..., None]
            colour = np.where((height > top - 0.12)[..., None], colour * 1.15, colour)  # coping
        elif barrier.kind == "fence":
            label = FENCE
            assert barrier.bars is not None  # every fence has them
            spacing, bar = barrier.bars
            bars = ((depth % spacing) < bar) | ((depth % 2.5) < 0.08)
            rails = (height > top - 0.06) | (np.abs(height - 0.15) < 0.04)
            colour_mask = np.broadcast_to(bars, region.shape) | rails
            colour = barrier.colour * (1 + 0.05 * texture)[..., None]
        elif barrier.kind == "hedge":
            label = VEGETATION
            colour = foliage(barrier.colour, texture, fine)
        else:
            label = GUARD_RAIL
            region &= (height >= 0.45) | ((depth % 2.0) < 0.12)  # a rail on posts
            colour = barrier.colour * (1 + 0.05 * texture)[..., None]
        self.canvas.paint(
            (slice(None), columns),
            region,
            np.broadcast_to(depth, region.shape),
            label,
            colour,
            colour_mask=colour_mask,
        )

    def _bridge(self, bridge: Bridge) -> None:
        cam = self.cam
        rows = (cam.rows >= cam.row_at(bridge.high, bridge.depth)) & (
            cam.rows < cam.row_at(bridge.low, bridge.depth)
        )
        mask = np.broadcast_to(rows[:, None], self.canvas.label.shape)
        colour = bridge.colour * (1 + 0.06 * self.noise.coarse)[..., None]
        self.canvas.paint(_EVERYWHERE, mask, bridge.depth, BRIDGE, colour)

    # ---------------------------------------------------------------- last passes
    def _bonnet(self, bonnet: Bonnet) -> None:
        """The bonnet of the recording car at the bottom, as in Cityscapes (void)."""
        cam = self.cam
        curve = 1 - ((cam.cols - cam.centre) / (cam.width * 0.9)) ** 2
        top = cam.height - bonnet.rise * np.clip(curve, 0.3, 1)
        mask = cam.rows[:, None] >= top[None, :]
        paint = bonnet.paint
        # Bonnets mirror the sky: a bright band fading downwards.
        fade = np.clip((cam.rows[:, None] - top[None, :]) / bonnet.rise, 0, 1)[..., None]
        colour = paint * (1 - fade) * 0.5 + paint * fade + self.sky_colour * 0.35 * (1 - fade)
        self.canvas.paint(_EVERYWHERE, mask, 0.0, EGO_VEHICLE, colour)

    def _exposure(self) -> None:
        """Exposure, contrast, colour cast, gamma and sensor noise."""
        exposure, image = self.details.exposure, self.canvas.image
        image *= exposure.gain
        image -= 0.5
        image *= exposure.contrast
        image += 0.5
        np.clip(image, 0, 1, out=image)
        image **= exposure.gamma
        image += exposure.grain

    def _void_marks(self) -> None:
        """Out-of-roi borders and small unlabeled holes: pixels a model is never scored on."""
        cam, canvas, void = self.cam, self.canvas, self.details.void
        if void.border is not None:
            rows, columns = void.border
            border = np.zeros(canvas.label.shape, bool)
            border[cam.height - rows :] = True
            if columns:
                border[:, :columns] = True
                border[:, cam.width - columns :] = True
            canvas.relabel(border, OUT_OF_ROI)
        for cy, cx, radius in void.holes:
            hole = (cam.rows[:, None] - cy) ** 2 + (cam.cols[None, :] - cx) ** 2 <= radius**2
            canvas.relabel(hole, UNLABELED)
