"""Painting the objects in a scene: each figure is drawn part by part as a sprite, then
painted onto the canvas at its entity's depth."""

from __future__ import annotations

import numpy as np

from experiments.data.synthetic.camera import Camera
from experiments.data.synthetic.canvas import Canvas, Sprite
from experiments.data.synthetic.classes import (
    BICYCLE,
    BUS,
    CAR,
    CARAVAN,
    DYNAMIC,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    STATIC,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAILER,
    TRAIN,
    TRUCK,
    VEGETATION,
)
from experiments.data.synthetic.layout import (
    Bus,
    Caravan,
    CarRear,
    CarSide,
    Clutter,
    Figure,
    Light,
    Person,
    Pole,
    Rider,
    Sign,
    Trailer,
    Tree,
    Truck,
    TwoWheeler,
)
from experiments.data.synthetic.noise import Noise
from experiments.data.synthetic.palette import CLOTHES, GLASS, METAL, RGB, TYRE, WHITE, foliage

_SIGN_RED, _SIGN_BLUE, _SIGN_YELLOW = (
    np.array(c, np.float32) for c in ((0.8, 0.1, 0.1), (0.1, 0.3, 0.75), (0.95, 0.8, 0.1))
)
_TAIL_LIGHT = np.array((0.8, 0.08, 0.06), np.float32)
_SIGNAL_LAMPS = ((1.0, 0.15, 0.1), (1.0, 0.75, 0.1), (0.2, 1.0, 0.5))  # red, amber, green


class FigurePainter:
    """Paints figures onto one scene's canvas, numbering their instances in painting order."""

    def __init__(
        self, canvas: Canvas, camera: Camera, noise: Noise, sky_colour: RGB, leaves: RGB
    ) -> None:
        self.canvas, self.cam, self.noise = canvas, camera, noise
        self.sky_colour, self.leaves = sky_colour, leaves

    def paint(self, figure: Figure) -> None:
        s = self._sprite(figure)
        match figure:
            case CarRear():
                self._car_rear(s, figure)
            case CarSide():
                self._car_side(s, figure)
            case Truck():
                self._truck(s, figure)
            case Bus():
                self._bus(s, figure)
            case Caravan():
                self._caravan(s, figure)
            case Trailer():
                self._trailer(s, figure)
            case TwoWheeler():
                self._two_wheeler(s, figure)
            case Person():
                self._person(s, figure)
            case Pole():
                self._pole(s, figure)
            case Tree():
                self._tree(s, figure)
            case Clutter():
                self._clutter(s, figure)
        s.paint_on(self.canvas)

    def _sprite(self, figure: Figure) -> Sprite:
        e = figure.entity
        u, v = self.cam.upright(figure.window, e.x, e.z)
        return Sprite(figure.window, u, v, e.z, self.noise.medium[figure.window])

    # ---------------------------------------------------------------- vehicles
    def _wheels(
        self, s: Sprite, positions: list[float], radius: float, label: int, inst: int
    ) -> None:
        for u in positions:
            s.add(s.ellipse(u, radius, radius, radius), label, TYRE, inst)
            s.add(s.ellipse(u, radius, radius * 0.45, radius * 0.45), label, METAL[0] * 0.8, inst)

    def _rear(
        self, s: Sprite, half: float, low: float, high: float, label: int, inst: int, paint: RGB
    ) -> None:
        """The back of a road vehicle: tyres, body, lights, bumper, plate."""
        s.add(s.rect(-half, -half + 0.3, 0, low + 0.1), label, TYRE, inst)
        s.add(s.rect(half - 0.3, half, 0, low + 0.1), label, TYRE, inst)
        s.add(s.rect(-half, half, low, high), label, s.textured(paint, 0.04), inst)
        lamp_low, lamp_high = (
            (high - 0.45, high - 0.25) if label == CAR else (low + 0.05, low + 0.3)
        )
        for u0, u1 in ((-half, -half + 0.2), (half - 0.2, half)):
            s.add(s.rect(u0, u1, lamp_low, lamp_high), label, _TAIL_LIGHT, inst)
        s.add(s.rect(-half, half, low, low + 0.12), label, TYRE * 2, inst)
        s.add(s.rect(-0.25, 0.25, low + 0.15, low + 0.27), label, WHITE, inst)

    def _car_rear(self, s: Sprite, f: CarRear) -> None:
        inst, half = self.canvas.instance_id(CAR), f.entity.width / 2
        self._rear(s, half, 0.25, 0.95, CAR, inst, f.paint)
        roof = f.roof
        cabin = [
            (-half * 0.92, 0.95),
            (half * 0.92, 0.95),
            (half * 0.68, roof),
            (-half * 0.68, roof),
        ]
        s.add(s.polygon(cabin), CAR, s.textured(f.paint, 0.04), inst)
        glass = [
            (-half * 0.82, 1.0),
            (half * 0.82, 1.0),
            (half * 0.66, roof - 0.07),
            (-half * 0.66, roof - 0.07),
        ]
        s.add(s.polygon(glass), CAR, GLASS * 0.5 + self.sky_colour * 0.3, inst)

    def _car_side(self, s: Sprite, f: CarSide) -> None:
        inst, half, paint = self.canvas.instance_id(CAR), f.entity.width / 2, f.paint
        s.add(s.rect(-half, half, 0.3, 0.95), CAR, s.textured(paint, 0.04), inst)
        cabin = [(-half + 0.9, 0.95), (half - 1.2, 0.95), (half - 1.6, 1.45), (-half + 1.5, 1.45)]
        s.add(s.polygon(cabin), CAR, s.textured(paint, 0.04), inst)
        glass = [(-half + 1.1, 1.0), (half - 1.35, 1.0), (half - 1.65, 1.38), (-half + 1.55, 1.38)]
        s.add(s.polygon(glass), CAR, GLASS, inst)
        self._wheels(s, [-half + 0.8, half - 0.8], 0.32, CAR, inst)

    def _truck(self, s: Sprite, f: Truck) -> None:
        inst, half = self.canvas.instance_id(TRUCK), f.entity.width / 2
        height, paint = f.height, f.paint
        if f.entity.side_view:  # a cab in front of a taller cargo box
            s.add(s.rect(-half, half, 0.5, 0.9), TRUCK, TYRE * 2, inst)
            s.add(s.rect(-half, half - 2.4, 0.9, height), TRUCK, s.textured(paint, 0.05), inst)
            s.add(s.rect(half - 2.2, half, 0.5, 2.9), TRUCK, s.textured(f.cab, 0.05), inst)
            s.add(s.rect(half - 1.3, half - 0.1, 1.8, 2.6), TRUCK, GLASS, inst)
            self._wheels(s, [-half + 1.2, -half + 2.3, half - 1.3], 0.5, TRUCK, inst)
        else:  # a windowless box: what tells it from a bus's back
            self._rear(s, half, 0.5, height, TRUCK, inst, paint)
            s.add(s.rect(-0.02, 0.02, 0.8, height - 0.1), TRUCK, paint * 0.6, inst)  # door seam

    def _bus(self, s: Sprite, f: Bus) -> None:
        """Buses and trams share the box and the palette; trams are taller, sit on rails
        and carry a pantograph."""
        is_train = f.entity.kind == "train"
        label = TRAIN if is_train else BUS
        inst, half, height = self.canvas.instance_id(label), f.entity.width / 2, f.height
        windows = GLASS * 0.6 + self.sky_colour * 0.3
        if f.entity.side_view:
            s.add(s.rect(-half, half, 0.3, height), label, s.textured(f.paint, 0.04), inst)
            band = s.rect(-half + 0.4, half - 0.3, 1.5, height - 0.35)
            pillars = (s.u % 1.6) < 0.15
            s.add(band & ~pillars, label, windows, inst)
            self._wheels(s, [-half + 2.5, half - 2.5], 0.5, label, inst)
        else:
            self._rear(s, half, 0.3, height, label, inst, f.paint)
            rear_window = s.rect(-half + 0.2, half - 0.2, height * 0.58, height - 0.2)
            s.add(rear_window, label, windows, inst)
        if is_train:
            s.add(s.segment((-0.5, height), (0.3, height + 0.8), 0.05), label, METAL[1], inst)
            s.add(s.rect(-0.6, 0.6, height + 0.75, height + 0.8), label, METAL[1], inst)

    def _caravan(self, s: Sprite, f: Caravan) -> None:
        inst, half, paint = self.canvas.instance_id(CARAVAN), f.entity.width / 2, f.paint
        s.add(s.rect(-half, half, 0.35, 2.6), CARAVAN, s.textured(paint, 0.03), inst)
        s.add(s.rect(-0.5, 0.5, 1.3, 2.0), CARAVAN, GLASS, inst)
        s.add(s.rect(-half, half, 1.05, 1.12), CARAVAN, paint * 0.6, inst)

    def _trailer(self, s: Sprite, f: Trailer) -> None:
        inst, half = self.canvas.instance_id(TRAILER), f.entity.width / 2
        s.add(s.rect(-half, half, 0.45, 1.8), TRAILER, s.textured(f.paint, 0.05), inst)
        s.add(s.rect(-half, -half + 0.25, 0, 0.6), TRAILER, TYRE, inst)
        s.add(s.rect(half - 0.25, half, 0, 0.6), TRAILER, TYRE, inst)

    def _two_wheeler(self, s: Sprite, f: TwoWheeler) -> None:
        """A bicycle (thin rings and tubes) or a motorcycle (solid wheels, a body), seen from
        the side, with or without a rider on it."""
        label = MOTORCYCLE if f.entity.kind == "motorcycle" else BICYCLE
        inst, half, paint = self.canvas.instance_id(label), f.entity.width / 2, f.paint
        radius, axle = (0.31, half - 0.33) if label == MOTORCYCLE else (0.34, half - 0.36)
        seat = (-0.15, 0.85 if label == MOTORCYCLE else 0.95)
        if label == MOTORCYCLE:
            self._wheels(s, [-axle, axle], radius, label, inst)
            body = [(-axle + 0.15, 0.45), (axle - 0.2, 0.4), (axle - 0.05, 0.95), (-0.45, 0.85)]
            s.add(s.polygon(body), label, s.textured(paint, 0.05), inst)
        else:
            for u in (-axle, axle):
                s.add(s.ring(u, radius, radius, 0.05), label, TYRE, inst)
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
        if f.rider is not None:
            self._rider(s, f.rider, seat, axle)

    def _rider(self, s: Sprite, rider: Rider, seat: tuple[float, float], axle: float) -> None:
        """A rider: same clothes as pedestrians, torso leaning over the handlebar."""
        inst = self.canvas.instance_id(RIDER)
        u, v = seat
        shoulder = (u + 0.25, v + 0.6)
        s.add(s.segment((u, v + 0.05), shoulder, 0.34), RIDER, s.textured(rider.top, 0.05), inst)
        s.add(s.segment((u, v), (u + 0.2, 0.35), 0.14), RIDER, rider.trousers, inst)
        s.add(s.segment(shoulder, (axle - 0.15, 1.0), 0.09), RIDER, rider.top, inst)
        head = s.ellipse(shoulder[0] + 0.05, shoulder[1] + 0.2, 0.11, 0.13)
        s.add(head, RIDER, rider.skin, inst)
        if rider.helmet is not None:
            helmet = s.ellipse(shoulder[0] + 0.05, shoulder[1] + 0.27, 0.13, 0.08)
            s.add(helmet, RIDER, rider.helmet, inst)

    # ---------------------------------------------------------------- people and street furniture
    def _person(self, s: Sprite, f: Person) -> None:
        inst, tall, top, trousers = self.canvas.instance_id(PERSON), f.tall, f.top, f.trousers
        hip, shoulder = 0.5 * tall, 0.82 * tall
        if f.stride is not None:  # walking: legs apart
            for foot in (-f.stride, f.stride):
                s.add(s.segment((0, hip), (foot, 0.03), 0.15), PERSON, trousers, inst)
            s.add(s.rect(-0.13, 0.13, hip, shoulder), PERSON, s.textured(top, 0.05), inst)
            s.add(s.segment((0, shoulder - 0.05), (0.1, hip - 0.05), 0.09), PERSON, top, inst)
        else:
            s.add(s.rect(-0.16, -0.02, 0, hip), PERSON, trousers, inst)
            s.add(s.rect(0.02, 0.16, 0, hip), PERSON, trousers, inst)
            s.add(s.rect(-0.22, 0.22, hip, shoulder), PERSON, s.textured(top, 0.05), inst)
            for sign in (-1, 1):
                arm = s.rect(*sorted((sign * 0.22, sign * 0.3)), hip - 0.05, shoulder)
                s.add(arm, PERSON, top, inst)
        s.add(s.ellipse(0, shoulder + 0.12 * tall / 1.75, 0.1, 0.12), PERSON, f.skin, inst)
        s.add(s.ellipse(0, shoulder + 0.17 * tall / 1.75, 0.1, 0.06), PERSON, CLOTHES[0], inst)

    def _pole(self, s: Sprite, f: Pole) -> None:
        """A street lamp, a sign post or a traffic-light post; the post is `pole`."""
        tall, metal, width = f.tall, f.metal, f.width
        s.add(s.rect(-width / 2, width / 2, 0, tall), POLE, s.textured(metal, 0.04), POLE)
        if f.sign is not None:
            self._sign(s, f.sign)
        elif f.light is not None:
            self._light(s, f.light, tall - 0.1)
        else:  # a lamp, its arm reaching over the street
            reach = -np.sign(f.entity.x) * 1.2
            s.add(s.segment((0, tall), (reach, tall), 0.08), POLE, metal, POLE)
            s.add(s.rect(*sorted((reach, reach * 0.7)), tall - 0.15, tall), POLE, metal * 1.2, POLE)

    def _sign(self, s: Sprite, sign: Sign) -> None:
        centre, r = sign.centre, sign.size / 2
        if sign.shape == "prohibition":  # red ring, white centre
            s.add(s.ellipse(0, centre, r, r), TRAFFIC_SIGN, _SIGN_RED, TRAFFIC_SIGN)
            s.add(s.ellipse(0, centre, r * 0.72, r * 0.72), TRAFFIC_SIGN, WHITE, TRAFFIC_SIGN)
        elif sign.shape == "warning":  # triangle
            corners = [(-r, centre - r * 0.8), (r, centre - r * 0.8), (0, centre + r)]
            s.add(s.polygon(corners), TRAFFIC_SIGN, _SIGN_RED, TRAFFIC_SIGN)
            inner = [
                (-r * 0.6, centre - r * 0.55),
                (r * 0.6, centre - r * 0.55),
                (0, centre + r * 0.5),
            ]
            s.add(s.polygon(inner), TRAFFIC_SIGN, WHITE, TRAFFIC_SIGN)
        elif sign.shape == "priority":  # diamond
            corners = [(0, centre - r), (r, centre), (0, centre + r), (-r, centre)]
            s.add(s.polygon(corners), TRAFFIC_SIGN, WHITE, TRAFFIC_SIGN)
            inner = [
                (0, centre - r * 0.6),
                (r * 0.6, centre),
                (0, centre + r * 0.6),
                (-r * 0.6, centre),
            ]
            s.add(s.polygon(inner), TRAFFIC_SIGN, _SIGN_YELLOW, TRAFFIC_SIGN)
        else:  # mandatory / information: blue with a white bar
            s.add(s.rect(-r, r, centre - r, centre + r), TRAFFIC_SIGN, _SIGN_BLUE, TRAFFIC_SIGN)
            bar = s.rect(-r * 0.15, r * 0.15, centre - r * 0.6, centre + r * 0.6)
            s.add(bar, TRAFFIC_SIGN, WHITE, TRAFFIC_SIGN)

    def _light(self, s: Sprite, light: Light, top: float) -> None:
        s.add(s.rect(-0.36, 0.36, top - 1.5, top), TRAFFIC_LIGHT, light.housing, TRAFFIC_LIGHT)
        if light.lit is None:  # seen from behind: only the housing
            return
        for index, lamp in enumerate(_SIGNAL_LAMPS):
            colour = np.array(lamp, np.float32) * (1.0 if index == light.lit else 0.25)
            disc = s.ellipse(0, top - 0.27 - 0.48 * index, 0.19, 0.19)
            s.add(disc, TRAFFIC_LIGHT, colour, TRAFFIC_LIGHT)

    def _tree(self, s: Sprite, f: Tree) -> None:
        crown = np.zeros(s.mask.shape, bool)
        for cu, cv, ru, rv in f.crown:
            crown |= s.ellipse(cu, cv, ru, rv)
        half = f.trunk_half_width
        trunk = s.rect(-half, half, 0, f.trunk_top)
        s.add(trunk, VEGETATION, s.textured(f.bark, 0.1), VEGETATION)
        leaves = foliage(self.leaves, s.texture, self.noise.fine[s.window])
        s.add(crown, VEGETATION, leaves, VEGETATION)

    def _clutter(self, s: Sprite, f: Clutter) -> None:
        label = STATIC if f.entity.kind == "static" else DYNAMIC
        w, h = f.width, f.height
        lift = 0.15 if label == DYNAMIC else 0.0  # carts stand on wheels
        s.add(s.rect(-w / 2, w / 2, lift, h), label, s.textured(f.colour, 0.05), label)
        if label == DYNAMIC:
            for u in (-w / 2 + 0.08, w / 2 - 0.08):
                s.add(s.ellipse(u, 0.08, 0.08, 0.08), label, TYRE, label)
