"""Does mIoU rise with capacity on the built-in data? `python -m experiments.research.capacity`

Trains each reference architecture with the demo trainer (`conf/trainer/demo.yaml`: a few
hundred steps at 128x256 on a CPU) on the synthetic Cityscapes, once per seed, and prints one
row per architecture: GMAdds at the input, parameters, validation mIoU (mean and each seed's),
the mean IoU of the thin classes (pole, traffic light, traffic sign: what needs a decoder's
resolution) and training time. RESULTS.md's capacity table comes from this script.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from cityscapesscripts.helpers.labels import name2label

from experiments.research.scoring import Bench, TrainingProgress
from search_space.cost import count_madds
from search_space.registry import get_arch
from workbench.cli import CommandParser

THIN_TRAIN_IDS = tuple(
    name2label[name].trainId for name in ("pole", "traffic light", "traffic sign")
)
DEFAULT_ARCHS = ("xception_b", "xception_a", "backbone_b", "backbone_a", "dfanet_b", "dfanet_a")


def main() -> None:
    parser = CommandParser(prog="python -m experiments.research.capacity", description=__doc__)
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--steps", type=int, default=None, help="default: the demo trainer's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("outputs/capacity.md"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (dataset=..., trainer=...)")
    args = parser.parse_args()
    bench = Bench.from_conf(args.overrides)
    config = bench.trainer_config(**({"steps": args.steps} if args.steps else {}))
    size = bench.input_size
    seeds = ", ".join(str(seed) for seed in args.seeds)
    rows = [
        f"| architecture | GMAdds @ {size[0]}x{size[1]} | params M | mIoU (seeds {seeds}) "
        "| thin-class IoU | train s |",
        "|---|---|---|---|---|---|",
    ]
    progress = TrainingProgress(len(args.archs) * len(args.seeds) * config.steps)
    for name in args.archs:
        spec = get_arch(name).replace(input_size=size)
        mious, thin, seconds = [], [], []
        for seed in args.seeds:
            scores, elapsed = bench.score(spec, config, seed, progress, name)
            seconds.append(elapsed)
            mious.append(100 * scores.miou)
            thin.append(100 * statistics.fmean(scores.per_class_iou[i] for i in THIN_TRAIN_IDS))
        cost = count_madds(spec, bench.num_classes)
        each = " / ".join(f"{miou:.1f}" for miou in mious)
        rows.append(
            f"| {name} | {cost.gmadds:.3f} | {cost.params / 1e6:.2f} | "
            f"**{statistics.fmean(mious):.1f}** ({each}) | {statistics.fmean(thin):.1f} | "
            f"{statistics.fmean(seconds):.0f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"{config.steps} steps, seeds {seeds}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
