"""Does the proxy budget rank architectures as a longer training does?

    python -m experiments.research.proxy_fidelity [--space dfanet|heads] [--archs N]
        [--short STEPS] [--long STEPS] [--seeds S ...] [--top-k K] [HYDRA_OVERRIDE ...]

Samples N members of a space with a seeded random sampler, after the paper's designs (DFANet A
and B, where the space holds them), trains each from scratch at the short budget (a study's
proxy) and at the long one, once per seed, with the recipe `experiments.train` composes (the
demo trainer on the built-in data by default; `dataset=cityscapes trainer=cityscapes` on
Cityscapes). Prints one row per architecture (each budget's mIoU: the mean over seeds, ± their
standard deviation with two seeds or more), then Kendall's tau and Spearman's rho between the
two rankings of the mean mIoU, the overlap of their top k, the noise floor at each budget (the
mean over architectures of the seed-to-seed standard deviation: a difference smaller than about
twice it is not a difference), and Kendall's tau pooled over pairs within a head, the agreement
a study's schedule measures on its probes (`analysis.probe_fidelity`: promotion compares within
a head). The table is written as Markdown under outputs/ and, beside it, as JSON (each
architecture's label, head, GMAdds and mIoU per budget and seed), the input of
`experiments.research.probe_count`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from scipy import stats

from analysis.probe_fidelity import Agreement as PooledAgreement
from analysis.probe_fidelity import pooled_agreement
from experiments.config import compose_option
from experiments.research.scoring import Bench, TrainingProgress
from search_space.cost import count_madds
from search_space.registry import get_arch
from search_space.space import SearchSpace, SpaceError, load_space
from search_space.spec import ArchSpec
from workbench.cli import CommandParser

PAPER_DESIGNS = ("dfanet_a", "dfanet_b")
# The JSON table's keys (`experiments.research.probe_count` reads them).
STEPS_KEY = "steps"  # {"short": S, "long": L}
ARCHITECTURES_KEY = "architectures"  # [{"label", "head", "gmadds", "short", "long"}, ...]


@dataclass(frozen=True)
class Agreement:
    kendall_tau: float
    spearman_rho: float
    top_k: int
    top_k_overlap: int  # how many of the short budget's top k are in the long budget's top k


def rank_agreement(short: Sequence[float], long: Sequence[float], top_k: int) -> Agreement:
    """How alike two budgets rank the same architectures (higher mIoU ranks first)."""
    tau = stats.kendalltau(short, long).statistic
    rho = stats.spearmanr(short, long).statistic
    k = min(top_k, len(short))

    def best(values: Sequence[float]) -> set[int]:
        return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])

    return Agreement(float(tau), float(rho), k, len(best(short) & best(long)))


def sample_members(space: SearchSpace, count: int, seed: int) -> list[tuple[str, ArchSpec]]:
    """The paper's designs the space holds, then `count` distinct random members."""
    members = []
    for name in PAPER_DESIGNS:
        try:
            spec = get_arch(name).replace(input_size=space.base.input_size)
            space.params_for(spec)
        except SpaceError:
            continue
        members.append((name, spec))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = 0
    while drawn < count:
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        if all(spec != other for _, other in members):
            members.append((f"random {drawn}", spec))
            drawn += 1
    return members


def noise_floor(mious_by_arch: Sequence[Sequence[float]]) -> float:
    """The mean seed-to-seed standard deviation (NaN with one seed)."""
    stds = [statistics.stdev(values) for values in mious_by_arch if len(values) > 1]
    return statistics.fmean(stds) if stds else float("nan")


def _mean_and_spread(values: Sequence[float]) -> str:
    """A table cell: the mean over seeds, with their standard deviation when there are two."""
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def _within_heads_text(within: PooledAgreement | None) -> str:
    if within is None:
        return "no two architectures share a head: no within-head pair"
    return (
        f"within heads (pairs of one head only, pooled), Kendall's tau {within.tau:.2f} over "
        f"{within.pairs.count} pairs ({within.confidence:.0%} interval {within.low:.2f} to "
        f"{within.high:.2f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(
        prog="python -m experiments.research.proxy_fidelity", description=__doc__
    )
    parser.add_argument("--space", default="dfanet", help="an option of conf/space/")
    parser.add_argument("--archs", type=int, default=8, help="random members besides the paper's")
    parser.add_argument("--short", type=int, default=80, help="the proxy's steps")
    parser.add_argument("--long", type=int, default=400, help="the longer training's steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/proxy_fidelity.md"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (dataset=..., trainer=...)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bench = Bench.from_conf(args.overrides)
    space = load_space(compose_option("space", args.space)).with_fixed(
        {"input_size": list(bench.input_size)}
    )
    budgets = {"short": bench.trainer_config(steps=args.short),
               "long": bench.trainer_config(steps=args.long)}  # fmt: skip
    size = "x".join(map(str, bench.input_size))
    rows = [
        f"| architecture | GMAdds @ {size} | mIoU, {args.short} steps | mIoU, {args.long} steps |",
        "|---|---|---|---|",
    ]
    mious: dict[str, list[list[float]]] = {"short": [], "long": []}
    architectures = []
    members = sample_members(space, args.archs, args.sampler_seed)
    progress = TrainingProgress(len(members) * len(args.seeds) * (args.short + args.long))
    for label, spec in members:
        for budget, config in budgets.items():
            mious[budget].append([
                100 * bench.score(spec, config, seed, progress, label)[0].miou
                for seed in args.seeds
            ])  # fmt: skip
        gmadds = count_madds(spec.replace(input_size=bench.input_size), bench.num_classes).gmadds
        cells = [_mean_and_spread(mious[budget][-1]) for budget in budgets]
        architectures.append(
            {"label": label, "head": spec.head, "gmadds": gmadds}
            | {budget: statistics.fmean(mious[budget][-1]) for budget in budgets}
            | {f"{budget} seeds": mious[budget][-1] for budget in budgets}
        )
        rows.append(f"| {label} | {gmadds:.3f} | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    means = {budget: [statistics.fmean(v) for v in values] for budget, values in mious.items()}
    agreement = rank_agreement(means["short"], means["long"], args.top_k)
    within = pooled_agreement(means["short"], means["long"], [a["head"] for a in architectures])
    summary = (
        f"Kendall's tau {agreement.kendall_tau:.2f}, Spearman's rho {agreement.spearman_rho:.2f}, "
        f"top-{agreement.top_k} overlap {agreement.top_k_overlap}/{agreement.top_k} over "
        f"{len(rows) - 2} architectures; noise floor (mean seed-to-seed std, seeds "
        f"{args.seeds}): {noise_floor(mious['short']):.2f} at {args.short} steps, "
        f"{noise_floor(mious['long']):.2f} at {args.long} steps; " + _within_heads_text(within)
    )
    table = "\n".join(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"{table}\n\n{summary}\n")
    table_json = args.out.with_suffix(".json")
    table_json.write_text(
        json.dumps(
            {"space": args.space, "input_size": list(bench.input_size), "seeds": args.seeds,
             STEPS_KEY: {"short": args.short, "long": args.long},
             ARCHITECTURES_KEY: architectures},
            indent=1,
        )
    )  # fmt: skip
    print(f"\n{table}\n\n{summary}\nsaved {args.out} and {table_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
