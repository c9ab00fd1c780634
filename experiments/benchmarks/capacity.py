"""Does mIoU rise with capacity on the built-in data? `python -m experiments.benchmarks.capacity`

Trains each reference architecture with the demo trainer (`conf/trainer/demo.yaml`: a few
hundred steps at 128x256 on a CPU) on the synthetic Cityscapes and prints one row per
architecture: GMAdds at the input, parameters, validation mIoU, training time. The README's
capacity table comes from this script.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from experiments.datasets import build_datasets
from experiments.runtime import Runtime, resolve_device
from experiments.trainer import Trainer, TrainerConfig
from search_space.cost import count_madds
from search_space.model import build
from search_space.registry import get_arch

CONF = Path(__file__).parents[2] / "conf"
DEFAULT_ARCHS = ("xception_b", "xception_a", "backbone_b", "backbone_a", "dfanet_b", "dfanet_a")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--steps", type=int, default=None, help="default: the demo trainer's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/capacity.md"))
    args = parser.parse_args()
    dataset = yaml.safe_load((CONF / "dataset" / "synthetic.yaml").read_text())
    trainer_values = yaml.safe_load((CONF / "trainer" / "demo.yaml").read_text())
    trainer_values.update(progress=False, eval_every=0)
    if args.steps:
        trainer_values["steps"] = args.steps
    config = TrainerConfig.from_dict(trainer_values)
    size = tuple(dataset["input_size"])
    train, val, num_classes = build_datasets(dataset, input_size=size,  # type: ignore[arg-type]
                                             scale_range=config.scale_range)  # fmt: skip
    device = resolve_device("auto")
    rows = [
        f"| architecture | GMAdds @ {size[0]}x{size[1]} | params M | mIoU | train s |",
        "|---|---|---|---|---|",
    ]
    for name in args.archs:
        spec = get_arch(name).replace(input_size=size)
        torch.manual_seed(args.seed)
        trainer = Trainer(build(spec, num_classes), train, val, config, Runtime(device),
                          num_classes=num_classes, seed=args.seed)  # fmt: skip
        started = time.perf_counter()
        result = trainer.fit()
        cost = count_madds(spec, num_classes)
        rows.append(
            f"| {name} | {cost.gmadds:.3f} | {cost.params / 1e6:.2f} | "
            f"{100 * result.scores.miou:.1f} | {time.perf_counter() - started:.0f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"{config.steps} steps, seed {args.seed}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
