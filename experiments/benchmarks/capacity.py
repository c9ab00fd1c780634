"""Does mIoU rise with capacity on the built-in data? `python -m experiments.benchmarks.capacity`

Trains each reference architecture with the demo trainer (`conf/trainer/demo.yaml`: a few
hundred steps at 128x256 on a CPU) on the synthetic Cityscapes, once per seed, and prints one
row per architecture: GMAdds at the input, parameters, validation mIoU (mean and each seed's),
the mean IoU of the thin classes (pole, traffic light, traffic sign: what needs a decoder's
resolution) and training time. The README's capacity table comes from this script.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from cityscapesscripts.helpers.labels import name2label

from experiments.config import compose_option
from experiments.data.from_config import build_datasets
from experiments.training.runtime import Runtime, resolve_device
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.arch_source import parse_size
from search_space.cli import CommandParser
from search_space.cost import count_madds
from search_space.model import build
from search_space.registry import get_arch

THIN_TRAIN_IDS = tuple(
    name2label[name].trainId for name in ("pole", "traffic light", "traffic sign")
)
DEFAULT_ARCHS = ("xception_b", "xception_a", "backbone_b", "backbone_a", "dfanet_b", "dfanet_a")


def main() -> None:
    parser = CommandParser(prog="python -m experiments.benchmarks.capacity", description=__doc__)
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--steps", type=int, default=None, help="default: the demo trainer's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("outputs/capacity.md"))
    args = parser.parse_args()
    dataset = compose_option("dataset", "synthetic")
    trainer_values = compose_option("trainer", "demo")
    trainer_values.update(progress=False, eval_every=0)
    if args.steps:
        trainer_values["steps"] = args.steps
    config = TrainerConfig.from_dict(trainer_values)
    size = parse_size(dataset["input_size"])
    train, val, num_classes = build_datasets(
        dataset, input_size=size, scale_range=config.scale_range
    )
    device = resolve_device("auto")
    seeds = ", ".join(str(seed) for seed in args.seeds)
    rows = [
        f"| architecture | GMAdds @ {size[0]}x{size[1]} | params M | mIoU (seeds {seeds}) "
        "| thin-class IoU | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.archs:
        spec = get_arch(name).replace(input_size=size)
        mious, thin, seconds = [], [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            trainer = Trainer(build(spec, num_classes), train, val, config, Runtime(device),
                              num_classes=num_classes, seed=seed)  # fmt: skip
            started = time.perf_counter()
            scores = trainer.fit().scores
            seconds.append(time.perf_counter() - started)
            mious.append(100 * scores.miou)
            thin.append(100 * statistics.fmean(scores.per_class_iou[i] for i in THIN_TRAIN_IDS))
        cost = count_madds(spec, num_classes)
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
