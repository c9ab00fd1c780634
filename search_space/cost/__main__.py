"""`python -m search_space.cost NAME_OR_SPEC_YAML [--input HxW] [--set gene=value ...] [--json]`.

`--paper` prints every registered architecture that has a published row beside the paper's
MAdds, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from search_space.arch_source import parse_assignments, parse_size, resolve_arch
from search_space.cost import count_cost, count_madds
from search_space.published import find_published
from search_space.registry import arch_names, reference
from search_space.spec import SpecError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search_space.cost",
        description="MAdds (paper convention: conv + linear multiply-adds, batch 1, eval mode), "
        "fvcore's default total and parameters of one architecture.",
    )
    parser.add_argument("arch", nargs="?", help="registered name or YAML file of genes")
    parser.add_argument("--input", help="input size HxW (sets the input_size gene)")
    parser.add_argument("--set", nargs="+", default=[], metavar="GENE=VALUE", dest="genes")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--paper", action="store_true", help="compare every reference row")
    args = parser.parse_args(argv)

    if args.paper:
        print(paper_table(args.num_classes))
        return 0
    if args.arch is None:
        parser.error(f"name an architecture ({', '.join(arch_names())}) or a YAML file")
    try:
        overrides = parse_assignments(args.genes)
        if args.input:
            overrides["input_size"] = list(parse_size(args.input))
        spec = resolve_arch(args.arch, overrides)
    except (ValueError, SpecError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cost = count_cost(spec, args.num_classes)
    result = {
        "arch": args.arch,
        "input": list(cost.input_size),
        "madds": cost.madds,
        "gmadds": round(cost.gmadds, 4),
        "params": cost.params,
        "fvcore_total": cost.fvcore_total,
        "spec": spec.to_dict(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        height, width = cost.input_size
        print(f"{args.arch} at {height}x{width}")
        print(f"  MAdds (paper convention)   {cost.gmadds:8.2f} G")
        print(
            f"  fvcore default total       {cost.fvcore_total / 1e9:8.2f} G  "
            "(also counts BN, upsampling, pooling)"
        )
        print(f"  parameters                 {cost.params / 1e6:8.2f} M")
    return 0


def paper_table(num_classes: int) -> str:
    header = (
        f"{'architecture':<22}{'input':>10}  {'paper row':<30}{'paper G':>8}{'ours G':>8}"
        f"{'ratio':>7}{'paper M':>9}{'ours M':>8}"
    )
    lines = [header, "-" * len(header)]
    for name in arch_names():
        arch = reference(name)
        for row in arch.paper_rows:
            published = find_published(row.table, row.model)
            cost = count_madds(arch.spec.replace(input_size=row.input_size), num_classes)
            paper_g = published.gmadds or float("nan")
            paper_m = f"{published.params_m:.1f}" if published.params_m else "-"
            size = "x".join(map(str, row.input_size))
            lines.append(
                f"{name:<22}{size:>10}  {row.table + ': ' + row.model:<30}{paper_g:>8.2f}"
                f"{cost.gmadds:>8.2f}{cost.gmadds / paper_g:>7.2f}{paper_m:>9}"
                f"{cost.params / 1e6:>8.2f}"
            )
    lines.append(
        "MAdds: conv + linear multiply-adds, batch 1, eval mode. Parameters do not reproduce "
        "the paper's (~4x ours on every row, for any build faithful to its Table 1)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
