"""`python -m experiments.evaluate checkpoint=PATH [export_dir=PATH]`: score a checkpoint.

Prints mIoU and per-class IoU and writes them as JSON beside the checkpoint; with `export_dir`,
predictions are written as labelId PNGs named `<city>_<seq>_<frame>_pred_labelIds.png` under
`<export_dir>/<city>/`, the layout the official `evalPixelLevelSemanticLabeling` reads.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.config import (
    CONFIG_ERRORS,
    CommandSettings,
    read_section,
    read_value,
    refuse_repeated_overrides,
)
from experiments.data import (
    CLASS_NAMES,
    CityscapesDataset,
    EvalTransform,
)
from experiments.data.from_config import DatasetSettings, InputSize, dataset_root
from experiments.training.evaluation import eval_loader, evaluate, prediction_writer
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import init_runtime
from search_space.checkpoint import load_checkpoint


@dataclass(frozen=True)
class EvaluateSettings(CommandSettings):
    """The composed config of `experiments.evaluate` (`conf/evaluate.yaml`)."""

    checkpoint: Path
    split: str | None  # None: the dataset's validation split
    input_size: InputSize | None  # None: the architecture's own
    batch_size: int
    num_workers: int
    amp: bool
    export_dir: Path | None
    dataset: DatasetSettings


# The command line's `dataset.KEY=VALUE` settings and `~dataset.KEY` deletions.
DatasetChanges = tuple[dict[str, Any], set[str]]


def score_checkpoint(
    settings: EvaluateSettings, dataset_changes: DatasetChanges | None
) -> tuple[SegmentationScores, dict[str, Any]]:
    """`dataset_changes` None: the command line chose a dataset (`dataset=NAME`); otherwise the
    checkpoint's own (the data it was trained on) is used when it recorded one, with the
    command line's changes to it (`dataset_changes`: a new root, for example)."""
    runtime = init_runtime(settings.device)
    checkpoint = load_checkpoint(settings.checkpoint)
    model = checkpoint.model.to(runtime.device)
    input_size = settings.input_size or model.spec.input_size
    dataset = settings.dataset
    if dataset_changes is not None and checkpoint.dataset is not None:
        changes, deleted = dataset_changes
        recorded = {
            key: value
            for key, value in {**checkpoint.dataset, **changes}.items()
            if key not in deleted
        }
        dataset = read_value(DatasetSettings, recorded, "dataset")
    split = settings.split or dataset.val_split
    images = CityscapesDataset(dataset_root(dataset), split, EvalTransform(input_size=input_size))
    export_dir = settings.export_dir
    export = prediction_writer(images, export_dir) if export_dir else None
    scores = evaluate(
        model,
        eval_loader(images, runtime, settings.batch_size, settings.num_workers),
        num_classes=model.num_classes,
        device=runtime.device,
        amp=settings.amp,
        on_batch=export,
    )
    summary = {
        "checkpoint": str(settings.checkpoint),
        "dataset": {"name": dataset.name, "root": dataset.root},
        "split": split,
        "images": len(images),
        "input_size": list(input_size),
        "miou": scores.miou,
        "pixel_accuracy": scores.pixel_accuracy,
        "per_class_iou": dict(zip(CLASS_NAMES, scores.per_class_iou, strict=True)),
        "world_size": runtime.world_size,
    }
    return scores, summary


def _dataset_changes(cfg: DictConfig) -> DatasetChanges:
    """The command line's changes to the dataset (resolved; top-level keys: a dataset's config
    is flat)."""
    settings: dict[str, Any] = {}
    deleted: set[str] = set()
    for override in HydraConfig.get().overrides.task:
        key = override.split("=")[0].lstrip("+~")
        if not key.startswith("dataset."):
            continue
        name = key.removeprefix("dataset.")
        if override.startswith("~"):
            deleted.add(name)
        else:
            settings[name] = OmegaConf.select(cfg.dataset, name)
    return settings, deleted


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    overrides = HydraConfig.get().overrides.task
    chosen = any(override.split("=")[0].lstrip("+~") == "dataset" for override in overrides)
    try:
        refuse_repeated_overrides(overrides)
        config = OmegaConf.to_container(cfg, resolve=True)
        settings = read_section(EvaluateSettings, config, "")
        scores, summary = score_checkpoint(settings, None if chosen else _dataset_changes(cfg))
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if summary["world_size"] > 1 and torch.distributed.get_rank() != 0:
        return
    dataset = f"{summary['dataset']['name']} ({summary['dataset']['root'] or 'built-in'})"
    if scores.labelled_pixels == 0:
        export_dir = settings.export_dir
        exported = f"; predictions written to {export_dir}" if export_dir else ""
        print(
            f"error: the {summary['split']} split of {dataset} has no labelled pixels (Cityscapes "
            f"withholds its test labels): no mIoU{exported}",
            file=sys.stderr,
        )
        sys.exit(0 if export_dir else 2)
    for name, iou in summary["per_class_iou"].items():
        print(f"  {name:<15} {'-' if iou != iou else f'{100 * iou:6.2f}'}")
    split = summary["split"]
    print(f"mIoU {100 * scores.miou:.2f} on {summary['images']} {split} images of {dataset}")
    output = settings.checkpoint.with_name(f"evaluation_{split}.json")
    output.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
