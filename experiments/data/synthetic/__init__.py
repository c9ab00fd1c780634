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

How it is made, module by module:

- `planner` and `details` make every random choice of a scene, into a `layout.SceneDescription`:
  the camera (`camera`), noise fields (`noise`), the street and where each object stands, then
  how everything looks;
- `painter` and `figures` paint that description onto a `canvas`, with no chance left;
- `scene` turns a seed into one scene's arrays; `cache` writes a whole set to disk;
- `classes` and `palette` hold the label ids and the colours the others share.

`ensure_synthetic_cityscapes` renders the set once into a cache folder and reuses it.
"""

from experiments.data.synthetic.cache import (
    COLOR_SUFFIX,
    GENERATOR_VERSION,
    INSTANCE_SUFFIX,
    MANIFEST_NAME,
    TRAIN_CITIES,
    VAL_CITIES,
    default_cache_dir,
    ensure_synthetic_cityscapes,
)
from experiments.data.synthetic.classes import FEATURES, featured_classes
from experiments.data.synthetic.scene import SyntheticScene, render_scene

__all__ = [
    "COLOR_SUFFIX",
    "FEATURES",
    "GENERATOR_VERSION",
    "INSTANCE_SUFFIX",
    "MANIFEST_NAME",
    "TRAIN_CITIES",
    "VAL_CITIES",
    "SyntheticScene",
    "default_cache_dir",
    "ensure_synthetic_cityscapes",
    "featured_classes",
    "render_scene",
]
