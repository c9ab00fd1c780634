"""`python -m experiments.train +arch=NAME ...`: train and evaluate one architecture.

Writes `metrics.json` (mIoU, per-class IoU, the validation curve, cost, throughput) and
`checkpoint.pt` into the run directory (`<output_dir>/train/<arch>/<time>` unless `run_dir=`).
Under `torchrun --nproc_per_node=N -m experiments.train ...` it trains on N processes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.config import CONFIG_ERRORS, refuse_repeated_overrides
from experiments.data.from_config import build_datasets
from experiments.training.runtime import environment_facts, init_runtime, seed_everything
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.arch_source import resolve_arch
from search_space.cost import count_cost
from search_space.model import build
from search_space.pretrained import load_backbone
from search_space.spec import ArchSpec
from workbench.cli import parse_size

log = logging.getLogger("experiments.train")


def arch_label(cfg: DictConfig) -> str:
    """The architecture's name as folders and messages show it (a genes file by its stem)."""
    return Path(str(cfg.arch)).stem


def resolve_spec(cfg: DictConfig) -> ArchSpec:
    if "arch" not in cfg:
        raise ValueError("name an architecture: python -m experiments.train +arch=dfanet_a")
    genes: dict[str, Any] = OmegaConf.to_container(cfg.genes, resolve=True)  # type: ignore[assignment]
    if "input_size" not in genes:
        genes["input_size"] = list(parse_size(cfg.input_size))
    return resolve_arch(str(cfg.arch), genes)


@dataclass
class PreparedRun:
    """Everything checked and built before the first step: a wrong config fails here."""

    cfg: DictConfig
    spec: ArchSpec
    trainer: Trainer
    num_classes: int
    run_dir: Path
    dataset_config: dict[str, Any]


def prepare_run(cfg: DictConfig) -> PreparedRun:
    spec = resolve_spec(cfg)
    runtime = init_runtime(cfg.device)
    trainer_config = TrainerConfig.from_dict(
        OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[arg-type]
    )
    dataset_config: dict[str, Any] = OmegaConf.to_container(cfg.dataset, resolve=True)  # type: ignore[assignment]
    train_set, val_set, num_classes = build_datasets(
        dataset_config,
        input_size=spec.input_size,  # type: ignore[arg-type]
        scale_range=trainer_config.scale_range,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.run_dir or Path(cfg.output_dir) / "train" / arch_label(cfg) / stamp)
    seed_everything(cfg.seed)
    model = build(spec, num_classes)
    if cfg.pretrained_backbone:
        report = load_backbone(model, Path(cfg.pretrained_backbone))
        if runtime.is_main:
            log.info("pre-trained backbone %s\n%s", cfg.pretrained_backbone, report.summary())
    trainer = Trainer(
        model,
        train_set,
        val_set,
        trainer_config,
        runtime,
        num_classes=num_classes,
        run_dir=run_dir,
        seed=cfg.seed,
        dataset=dataset_config,
    )
    if cfg.resume and trainer.resume() and runtime.is_main:
        log.info("resumed from %s at step %d", trainer.checkpoint_path, trainer.step)
    return PreparedRun(cfg, spec, trainer, num_classes, run_dir, dataset_config)


def run(prepared: PreparedRun) -> dict[str, Any]:
    """Train, evaluate, write `metrics.json`; an error here is a real failure, with its
    traceback, not a configuration error."""
    cfg, spec, trainer = prepared.cfg, prepared.spec, prepared.trainer
    runtime, num_classes, run_dir = trainer.runtime, prepared.num_classes, prepared.run_dir
    result = trainer.fit()
    cost = count_cost(spec, num_classes)
    metrics = {
        "arch": str(cfg.arch),
        "spec": spec.to_dict(),
        "dataset": prepared.dataset_config,
        "miou": result.scores.miou,
        "per_class_iou": result.scores.per_class_iou,
        "pixel_accuracy": result.scores.pixel_accuracy,
        "curve": result.curve,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "madds": cost.madds,
        "gmadds": cost.gmadds,
        "fvcore_total": cost.fvcore_total,
        "params": cost.params,
        "seed": cfg.seed,
        "world_size": runtime.world_size,
        **environment_facts(runtime.device),
    }
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(
            f"{arch_label(cfg)}: mIoU {100 * result.scores.miou:.2f} after {result.steps} steps, "
            f"{cost.gmadds:.2f} GMAdds, {cost.params / 1e6:.2f} M params, "
            f"{result.images_per_second:.1f} img/s -> {run_dir / 'metrics.json'}"
        )
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        refuse_repeated_overrides(HydraConfig.get().overrides.task)
        prepared = prepare_run(cfg)
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    run(prepared)


if __name__ == "__main__":
    main()
