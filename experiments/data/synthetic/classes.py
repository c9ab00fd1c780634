"""The Cityscapes classes the generator draws, and the rare ones each scene guarantees."""

from __future__ import annotations

from cityscapesscripts.helpers.labels import name2label


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


def featured_classes(index: int) -> frozenset[str]:
    """The rare classes scene `index` is guaranteed to show (see FEATURES)."""
    start = _FEATURES_PER_SCENE * index
    return frozenset(FEATURES[(start + k) % len(FEATURES)] for k in range(_FEATURES_PER_SCENE))


def guaranteed_train_ids(featured: frozenset[str]) -> set[int]:
    """The train ids a scene featuring `featured` must show: the common classes and those."""
    wanted = {name2label[name].trainId for name in _ALWAYS}
    return wanted | {name2label[n].trainId for f in featured for n in _FEATURE_CLASSES[f]}
