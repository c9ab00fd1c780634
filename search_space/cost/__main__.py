"""MAdds of one architecture: `python -m search_space.cost NAME_OR_SPEC_YAML [--input-size HxW]
[--set GENE=VALUE ...] [--json]`.

`--paper` prints every registered architecture that has a published row beside the paper's
MAdds, with the ratio. `--heads` prices each head of the `head` gene on the same Backbone A
(at 1024x1024, or `--input-size`), beside the bare backbone and DFANet A.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from search_space.arch_source import parse_assignments, resolve_arch
from search_space.cost import count_cost, count_madds
from search_space.published import find_published
from search_space.registry import HEAD_COMPARISON, arch_names, get_arch, reference
from search_space.spec import ArchSpec, SpecError
from workbench.cli import CommandParser, size


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(
        prog="python -m search_space.cost",
        description="MAdds (paper convention: conv + linear multiply-adds, batch 1, eval mode), "
        "fvcore's default total and parameters of one architecture.",
    )
    parser.add_argument("arch", nargs="?", help="registered name or YAML file of genes")
    parser.add_argument("--input-size", "--input", type=size, help="HxW (sets the input_size gene)")
    parser.add_argument(
        "--set", nargs="+", action="extend", default=[], metavar="GENE=VALUE", dest="genes"
    )
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--paper", action="store_true", help="compare every reference row")
    parser.add_argument("--heads", action="store_true", help="compare the heads on Backbone A")
    args = parser.parse_args(argv)

    if args.paper:
        print(paper_table(args.num_classes))
        return 0
    if args.heads:
        try:
            print(heads_table(args.num_classes, args.input_size or (1024, 1024)))
        except (ValueError, SpecError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.arch is None:
        parser.error(f"name an architecture ({', '.join(arch_names())}) or a YAML file")
    try:
        overrides = parse_assignments(args.genes)
        if args.input_size:
            overrides["input_size"] = list(args.input_size)
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
    notes = []
    for name in arch_names():
        arch = reference(name)
        if arch.paper_rows and arch.spec.head != "dfa":
            notes.append(f"{name}: head {arch.spec.head}, {_genes_text(arch.spec)}")
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
    lines.extend(f"Configuration not published in the paper; ours: {note}" for note in notes)
    return "\n".join(lines)


def heads_table(num_classes: int, input_size: tuple[int, int]) -> str:
    """Each head on the same Backbone A: MAdds, the cost over the bare backbone, parameters."""
    specs = {name: get_arch(name).replace(input_size=input_size) for name in HEAD_COMPARISON}
    costs = {name: count_madds(spec, num_classes) for name, spec in specs.items()}
    backbone = costs["backbone_a"].gmadds
    header = (
        f"{'architecture':<20}{'head':<9}{'towers':>6}{'GMAdds':>8}{'+ head':>8}{'params M':>9}"
        "  head genes"
    )
    lines = [f"Heads on Backbone A at {input_size[0]}x{input_size[1]}", header, "-" * len(header)]
    for name, spec in specs.items():
        cost = costs[name]
        lines.append(
            f"{name:<20}{spec.head:<9}{spec.towers:>6}{cost.gmadds:>8.2f}"
            f"{cost.gmadds - backbone:>+8.2f}{cost.params / 1e6:>9.2f}  {_genes_text(spec)}"
        )
    lines.append(
        "MAdds: conv + linear multiply-adds, batch 1, eval mode; '+ head' is over backbone_a "
        "(a 1x1 classifier at 1/16). Auxiliary classifiers run in training only: not in MAdds, "
        "in the parameters."
    )
    return "\n".join(lines)


def _genes_text(spec: ArchSpec) -> str:
    return " ".join(f"{gene}={value}" for gene, value in spec.head_genes().items())


if __name__ == "__main__":
    raise SystemExit(main())
