"""How long counting an architecture's MAdds takes: `python -m experiments.benchmarks.cost_count`.

The target is under 2 s for the largest architecture of a space at 1024x2048, cheap enough to
screen architectures by MAdds before any training. The largest is every gene at the end of its
range that costs most (widest, deepest, most towers, smallest expansion, every path on).
"""

from __future__ import annotations

import time
from typing import Any

from experiments.config import compose_option
from search_space.cost import count_madds, fvcore_default_total
from search_space.space import Dimension, SearchSpace, load_space
from search_space.spec import ArchSpec
from workbench.cli import CommandParser, size

# Smaller values of these genes cost more (a block's inner width is width / expansion).
_COSTLIER_WHEN_SMALLER = {"expansion"}


def largest_spec(space: SearchSpace, input_size: tuple[int, int]) -> ArchSpec:
    params: dict[str, Any] = {}
    for dimension in space.dimensions:
        if not dimension.is_fixed:
            params[dimension.name] = _costliest(dimension)
    return space.spec_from_params(params).replace(input_size=input_size)


def _costliest(dimension: Dimension) -> Any:
    values = [v for v in dimension.candidate_values() if isinstance(v, bool | int)]
    if not values:  # a categorical of names: keep the first, the space's default order
        return dimension.candidate_values()[0]
    return min(values) if dimension.gene in _COSTLIER_WHEN_SMALLER else max(values)


def main() -> None:
    parser = CommandParser(prog="python -m experiments.benchmarks.cost_count", description=__doc__)
    parser.add_argument("--space", default="dfanet", help="an option of conf/space/")
    parser.add_argument("--input-size", type=size, default=(1024, 2048))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    height, width = args.input_size
    spec = largest_spec(load_space(compose_option("space", args.space)), args.input_size)
    count_madds(spec)  # first call pays imports and allocator warm-up
    started = time.perf_counter()
    for _ in range(args.repeats):
        cost = count_madds(spec)
    per_count = (time.perf_counter() - started) / args.repeats
    print(f"largest architecture of {args.space}: {spec}")
    print(f"MAdds {cost.gmadds:.2f} G, params {cost.params / 1e6:.2f} M at {height}x{width}")
    print(f"MAdds count: {per_count:.3f} s per architecture (target < 2 s)")
    started = time.perf_counter()
    fvcore_default_total(spec)
    print(f"fvcore traced default total (for comparison): {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
