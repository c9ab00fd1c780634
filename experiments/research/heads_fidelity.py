"""Did the study compare the heads at a budget that ranks them?

    python -m experiments.research.heads_fidelity [--study demo] [--storage URL] [--long 400]
        [--seeds S ...] [HYDRA_OVERRIDE ...]

Takes each head's best finished trial of a stored study (its highest mIoU at the study's top
rung: the "any cost" row of the report's heads table), trains those architectures from scratch
for `--long` steps with the recipe `experiments.train` composes (the demo trainer on the
built-in data by default), and prints the study's mIoU beside the longer training's, with
Kendall's tau and Spearman's rho between the two rankings of the heads.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from analysis.load import DEFAULT_STORAGE, HEAD, finished, load_study, load_trials
from experiments.research.proxy_fidelity import rank_agreement
from experiments.research.scoring import Bench, TrainingProgress
from search_space.spec import ArchSpec
from workbench.cli import CommandParser
from workbench.record import GMADDS, MIOU, TrialKey


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(
        prog="python -m experiments.research.heads_fidelity", description=__doc__
    )
    parser.add_argument("--study", default="demo")
    parser.add_argument("--storage", default=DEFAULT_STORAGE)
    parser.add_argument("--long", type=int, default=400, help="the longer training's steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (dataset=..., trainer=...)")
    args = parser.parse_args(argv)
    study = load_study(args.study, args.storage)
    trials = finished(load_trials(study))
    stored = study.get_trials(deepcopy=False)
    best = (
        trials.dropna(subset=[HEAD, MIOU])
        .sort_values([MIOU, GMADDS], ascending=[False, True])
        .drop_duplicates(HEAD)
    )
    bench = Bench.from_conf(args.overrides)
    config = bench.trainer_config(steps=args.long)
    print(f"| head | trial | GMAdds | mIoU in the study ({int(best[TrialKey.STEPS].max())} steps)"
          f" | mIoU, {args.long} steps |\n|---|---|---|---|---|")  # fmt: skip
    longer = []
    progress = TrainingProgress(len(best) * len(args.seeds) * args.long)
    for _, row in best.iterrows():
        spec = ArchSpec.from_dict(stored[int(row["number"])].user_attrs[TrialKey.SPEC])
        label = f"{row[HEAD]} #{int(row['number'])}"
        longer.append(statistics.fmean(
            100 * bench.score(spec, config, seed, progress, label)[0].miou for seed in args.seeds
        ))  # fmt: skip
        print(f"| {row[HEAD]} | #{int(row['number'])} | {row[GMADDS]:.3f} | {row[MIOU]:.2f} | "
              f"{longer[-1]:.2f} |", flush=True)  # fmt: skip
    agreement = rank_agreement(list(best[MIOU]), longer, top_k=1)
    print(
        f"\nKendall's tau {agreement.kendall_tau:.2f}, Spearman's rho "
        f"{agreement.spearman_rho:.2f} over {len(best)} heads; the same leader: "
        f"{'yes' if agreement.top_k_overlap else 'no'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
