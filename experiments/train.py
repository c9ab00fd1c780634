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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.config import (
    CONFIG_ERRORS,
    CommandSettings,
    read_section,
    refuse_repeated_overrides,
)
from experiments.data.from_config import DatasetSettings, InputSize, build_datasets
from experiments.training.runtime import environment_facts, init_runtime, seed_everything
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.arch_source import resolve_arch
from search_space.cost import count_cost
from search_space.model import build
from search_space.pretrained import load_backbone
from search_space.spec import ArchSpec

log = logging.getLogger("experiments.train")


@dataclass(frozen=True)
class TrainSettings(CommandSettings):
    """The composed config of `experiments.train` (`conf/train.yaml`)."""

    arch: str  # a registered name or a genes YAML file
    genes: dict[str, Any]  # gene overrides on top of `arch`
    input_size: InputSize
    seed: int
    pretrained_backbone: Path | None
    run_dir: Path | None  # None: <output_dir>/train/<arch>/<time>
    resume: bool
    dataset: DatasetSettings
    trainer: TrainerConfig

    @property
    def arch_label(self) -> str:
        """The architecture's name as folders and messages show it (a genes file by its stem)."""
        return Path(self.arch).stem

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainSettings:
        if "arch" not in config:
            raise ValueError("name an architecture: python -m experiments.train +arch=dfanet_a")
        return read_section(cls, config, "")


def resolve_spec(settings: TrainSettings) -> ArchSpec:
    genes = {"input_size": list(settings.input_size), **settings.genes}
    return resolve_arch(settings.arch, genes)


@dataclass
class PreparedRun:
    """Everything checked and built before the first step: a wrong config fails here."""

    settings: TrainSettings
    spec: ArchSpec
    trainer: Trainer
    num_classes: int
    run_dir: Path


def prepare_run(config: Mapping[str, Any]) -> PreparedRun:
    settings = TrainSettings.from_config(config)
    spec = resolve_spec(settings)
    runtime = init_runtime(settings.device)
    train_set, val_set, num_classes = build_datasets(
        settings.dataset,
        input_size=spec.input_size,  # type: ignore[arg-type]
        scale_range=settings.trainer.scale_range,
        augment_on=settings.trainer.augment_on,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = settings.run_dir or settings.output_dir / "train" / settings.arch_label / stamp
    seed_everything(settings.seed)
    model = build(spec, num_classes)
    if settings.pretrained_backbone:
        report = load_backbone(model, settings.pretrained_backbone)
        if runtime.is_main:
            log.info("pre-trained backbone %s\n%s", settings.pretrained_backbone, report.summary())
    trainer = Trainer(
        model,
        train_set,
        val_set,
        settings.trainer,
        runtime,
        num_classes=num_classes,
        run_dir=run_dir,
        seed=settings.seed,
        dataset=settings.dataset.record(),
    )
    if settings.resume and trainer.resume() and runtime.is_main:
        log.info("resumed from %s at step %d", trainer.checkpoint_path, trainer.step)
    return PreparedRun(settings, spec, trainer, num_classes, run_dir)


def run(prepared: PreparedRun) -> dict[str, Any]:
    """Train, evaluate, write `metrics.json`; an error here is a real failure, with its
    traceback, not a configuration error."""
    settings, spec, trainer = prepared.settings, prepared.spec, prepared.trainer
    runtime, num_classes, run_dir = trainer.runtime, prepared.num_classes, prepared.run_dir
    result = trainer.fit()
    cost = count_cost(spec, num_classes)
    metrics = {
        "arch": settings.arch,
        "spec": spec.to_dict(),
        "dataset": settings.dataset.record(),
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
        "seed": settings.seed,
        "world_size": runtime.world_size,
        **environment_facts(runtime.device),
    }
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(
            f"{settings.arch_label}: mIoU {100 * result.scores.miou:.2f} after {result.steps} "
            f"steps, {cost.gmadds:.2f} GMAdds, {cost.params / 1e6:.2f} M params, "
            f"{result.images_per_second:.1f} img/s -> {run_dir / 'metrics.json'}"
        )
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        refuse_repeated_overrides(HydraConfig.get().overrides.task)
        prepared = prepare_run(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    run(prepared)


if __name__ == "__main__":
    main()
