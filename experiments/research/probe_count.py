"""How many probes a study needs: `python -m experiments.research.probe_count`

    python -m experiments.research.probe_count --table outputs/benchmarks/proxy_fidelity.json
        [--counts 2 4 6 8 12] [--draws 2000] [--seed 0] [--tolerance 0.25] [--plot PNG]
    python -m experiments.research.probe_count --table FILE.md --space heads [--sampler-seed 0]

A study estimates its schedule's fidelity on its probes (`analysis.probe_fidelity`): Kendall's
tau between the first and the top rung, pooled over pairs of probes within a bracket. Given a
table of architectures measured at both rungs' step counts, each with its head (the JSON
`experiments.research.proxy_fidelity` writes beside its Markdown; or that Markdown, from before
the JSON, with `--space` and `--sampler-seed` to draw its members again and recover their
heads), this draws k probes from the table again and again (seeded) as a study enqueues them,
probes 2j and 2j+1 in bracket j mod B, the brackets in the table's order of first appearance,
drawn without replacement within a bracket, and prints per k: the mean absolute error of the
estimate against the within-bracket tau of the whole table, the share of the estimates'
intervals that cover it, and the mean number of pairs; then the number of probes recommended,
the smallest k whose error is under `--tolerance`, and a plot of the error by k.

The whole table stands for the space, so the figures hold for spaces and data like the table's;
as k nears the table's size the draws overlap and understate the error (the output shows k
beside the table's size). A k that some bracket cannot supply is left out, and said.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import optuna
from matplotlib.figure import Figure

from analysis.plots import save_figure
from analysis.probe_fidelity import Agreement, Measured, pooled_agreement
from experiments.config import compose_option
from experiments.research.proxy_fidelity import ARCHITECTURES_KEY, sample_members
from search_space.cost import count_madds
from search_space.space import load_space
from workbench.cli import CommandParser

DEFAULT_COUNTS: Final = (2, 4, 6, 8, 10, 12, 16, 20, 24, 32)
# Half the distance between chance (tau 0) and agreement (`probe_fidelity.AGREEMENT_TAU`, 0.5):
# an estimate within it puts a rung that ranks like the top one and one no better than chance on
# their own sides of 0.25.
TOLERANCE: Final = 0.25
# A row of proxy_fidelity's Markdown: label | GMAdds | short mIoU [± std] | long mIoU [± std].
MARKDOWN_ROW = re.compile(
    r"^\| (?P<label>[^|]+?) \| (?P<gmadds>[\d.]+) \| "
    r"(?P<short>[\d.]+)[^|]* \| (?P<long>[\d.]+)[^|]* \|$"
)
MARKDOWN_SIZE = re.compile(r"GMAdds @ (\d+)x(\d+)")


@dataclass(frozen=True)
class CountError:
    """How the estimate from `probes` probes fared over the draws."""

    probes: int
    mean_abs_error: float
    coverage: float  # the share of intervals holding the whole table's tau
    mean_pairs: float


def read_json_table(path: Path) -> list[Measured]:
    """`proxy_fidelity`'s JSON: each architecture's label, head, short and long mIoU."""
    data = json.loads(path.read_text())
    try:
        return [
            Measured(row["label"], row["head"], float(row["short"]), float(row["long"]))
            for row in data[ARCHITECTURES_KEY]
        ]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: expected proxy_fidelity's JSON, {{'{ARCHITECTURES_KEY}': [{{'label', "
            f"'head', 'short', 'long'}}, ...]}}; missing {error}"
        ) from None


def read_markdown_table(path: Path, space_name: str, sampler_seed: int) -> list[Measured]:
    """`proxy_fidelity`'s Markdown, each row's head recovered by drawing its members again:
    the same space, input size (the table's header) and sampler seed give the same members,
    which their GMAdds, counted again, confirm."""
    text = path.read_text()
    size = MARKDOWN_SIZE.search(text)
    rows = [match for line in text.splitlines() if (match := MARKDOWN_ROW.match(line.strip()))]
    if size is None or not rows:
        raise ValueError(f"{path}: expected proxy_fidelity's Markdown table, found none")
    space = load_space(compose_option("space", space_name)).with_fixed(
        {"input_size": [int(size[1]), int(size[2])]}
    )
    labels = [row["label"] for row in rows]
    randoms = sum(label.startswith("random ") for label in labels)
    specs = dict(sample_members(space, randoms, sampler_seed))
    for row in rows:
        spec = specs.get(row["label"])
        # The table's GMAdds are rounded to 3 decimals.
        if spec is None or abs(count_madds(spec).gmadds - float(row["gmadds"])) > 6e-4:
            raise ValueError(
                f"{path}: its {row['label']!r} ({row['gmadds']} GMAdds) is not the member that "
                f"--space {space_name} --sampler-seed {sampler_seed} draws: pass the run's"
            )
    return [
        Measured(row["label"], specs[row["label"]].head, float(row["short"]), float(row["long"]))
        for row in rows
    ]


def bracket_order(table: Sequence[Measured]) -> list[str]:
    return list(dict.fromkeys(m.bracket for m in table))


def probes_per_bracket(count: int, order: Sequence[str]) -> dict[str, int]:
    """How many of `count` probes each bracket gets: probes 2j and 2j+1 in bracket j mod B."""
    if count < 2 or count % 2:
        raise ValueError(f"probes come in pairs: expected an even count of 2 or more, got {count}")
    per = dict.fromkeys(order, 0)
    for pair in range(count // 2):
        per[order[pair % len(order)]] += 2
    return per


def supported(table: Sequence[Measured], count: int) -> bool:
    """Whether every bracket holds as many architectures as `count` probes draw from it."""
    sizes = {bracket: 0 for bracket in bracket_order(table)}
    for member in table:
        sizes[member.bracket] += 1
    return all(sizes[b] >= n for b, n in probes_per_bracket(count, list(sizes)).items())


def draw_probes(table: Sequence[Measured], count: int, rng: np.random.Generator) -> list[Measured]:
    """`count` probes drawn as a study enqueues them (see the module's docstring)."""
    drawn = []
    for bracket, n in probes_per_bracket(count, bracket_order(table)).items():
        members = [m for m in table if m.bracket == bracket]
        drawn += [members[i] for i in rng.choice(len(members), size=n, replace=False)]
    return drawn


def table_agreement(table: Sequence[Measured]) -> Agreement:
    """The within-bracket tau of the whole table: what the probes estimate."""
    whole = pooled_agreement(
        [m.first for m in table], [m.top for m in table], [m.bracket for m in table]
    )
    if whole is None:
        raise ValueError("the table has no two architectures of one head: no within-head tau")
    return whole


def error_by_count(
    table: Sequence[Measured], counts: Sequence[int], draws: int, seed: int
) -> list[CountError]:
    """Per count the table supports, the estimate's error against the whole table's
    within-bracket tau over `draws` seeded draws."""
    whole = table_agreement(table)
    for count in counts:  # an odd count fails here, before any draw
        probes_per_bracket(count, bracket_order(table))
    rng = np.random.default_rng(seed)
    errors = []
    for count in (c for c in counts if supported(table, c)):
        estimates = []
        for _ in range(draws):
            probes = draw_probes(table, count, rng)
            estimate = pooled_agreement(
                [p.first for p in probes], [p.top for p in probes], [p.bracket for p in probes]
            )
            assert estimate is not None  # every bracket drawn from holds a pair
            estimates.append(estimate)
        errors.append(
            CountError(
                probes=count,
                mean_abs_error=statistics.fmean(abs(e.tau - whole.tau) for e in estimates),
                coverage=statistics.fmean(e.low <= whole.tau <= e.high for e in estimates),
                mean_pairs=statistics.fmean(e.pairs.count for e in estimates),
            )
        )
    return errors


def recommended(errors: Sequence[CountError], tolerance: float) -> int | None:
    """The fewest probes whose mean absolute error is under `tolerance`, if any is."""
    return next((e.probes for e in errors if e.mean_abs_error < tolerance), None)


def error_figure(errors: Sequence[CountError], tolerance: float, title: str) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    counts = [e.probes for e in errors]
    axes.plot(counts, [e.mean_abs_error for e in errors], "o-", label="mean |error| of tau")
    axes.plot(counts, [e.coverage for e in errors], "s--", label="interval coverage")
    axes.axhline(tolerance, color="grey", linewidth=0.8, label=f"tolerance {tolerance}")
    axes.set(xlabel="probes", ylabel="tau error / share", title=title, ylim=(0, 1.05))
    axes.legend()
    figure.tight_layout()
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m experiments.research.probe_count", description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="proxy_fidelity's JSON or .md")
    parser.add_argument("--space", help="the Markdown table's --space (to recover heads)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="the Markdown table's")
    parser.add_argument("--counts", type=int, nargs="+", default=list(DEFAULT_COUNTS))
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--plot", type=Path, default=Path("outputs/benchmarks/probe_count.png"))
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(
        optuna.logging.WARNING
    )  # drawing the members again creates studies
    if args.table.suffix == ".md" and args.space is None:
        parser.error("a Markdown table needs --space (the run's) to recover the heads")
    try:
        table = (
            read_markdown_table(args.table, args.space, args.sampler_seed)
            if args.table.suffix == ".md"
            else read_json_table(args.table)
        )
        errors = error_by_count(table, args.counts, args.draws, args.seed)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    whole = table_agreement(table)
    brackets = ", ".join(f"{b} {sum(m.bracket == b for m in table)}" for b in bracket_order(table))
    print(
        f"{len(table)} architectures ({brackets}); within-bracket tau of the whole table "
        f"{whole.tau:.2f} over {whole.pairs.count} pairs; {args.draws} draws per count, seed "
        f"{args.seed}"
    )
    print("| probes | of the table | mean abs error | interval coverage | mean pairs |")
    print("|---|---|---|---|---|")
    for e in errors:
        print(
            f"| {e.probes} | {e.probes / len(table):.0%} | {e.mean_abs_error:.3f} | "
            f"{e.coverage:.0%} | {e.mean_pairs:.1f} |"
        )
    if any(e.probes > len(table) / 2 for e in errors):
        print("(a count over half the table draws overlapping samples: its error is understated)")
    left_out = [c for c in args.counts if c not in {e.probes for e in errors}]
    if left_out:
        print(f"left out (some bracket holds fewer architectures than they draw): {left_out}")
    best = recommended(errors, args.tolerance)
    print(
        f"recommended: {best} probes (the fewest with a mean absolute error under {args.tolerance})"
        if best is not None
        else f"no count here has a mean absolute error under {args.tolerance}"
    )
    if errors:
        title = f"{args.table.name}: the probes' estimate of tau"
        figure = error_figure(errors, args.tolerance, title)
        png, _ = save_figure(figure, args.plot.parent, args.plot.stem)
        print(f"saved {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
