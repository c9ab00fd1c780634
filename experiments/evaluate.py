"""`python -m experiments.evaluate checkpoint=PATH [export_dir=PATH]`: score a checkpoint.

Prints mIoU and per-class IoU and writes them as JSON beside the checkpoint; with `export_dir`,
predictions are written as labelId PNGs named `<city>_<seq>_<frame>_pred_labelIds.png` under
`<export_dir>/<city>/`, the layout the official `evalPixelLevelSemanticLabeling` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.config import CONFIG_ERRORS, refuse_repeated_overrides
from experiments.data import (
    CLASS_NAMES,
    CityscapesDataset,
    EvalTransform,
)
from experiments.data.from_config import dataset_root
from experiments.training.evaluation import eval_loader, evaluate, prediction_writer
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import init_runtime
from search_space.checkpoint import load_checkpoint
from workbench.cli import parse_size


def score_checkpoint(
    cfg: DictConfig, dataset_chosen: bool
) -> tuple[SegmentationScores, dict[str, Any]]:
    """`dataset_chosen`: the command line chose a dataset (`dataset=NAME`); otherwise the
    checkpoint's own (the data it was trained on) is used when it recorded one, with the
    command line's `dataset.KEY=VALUE` settings applied over it (a new root, for example)."""
    runtime = init_runtime(cfg.device)
    checkpoint = load_checkpoint(Path(cfg.checkpoint))
    model = checkpoint.model.to(runtime.device)
    input_size = parse_size(cfg.input_size) if cfg.input_size else model.spec.input_size
    dataset_config: dict[str, Any] = OmegaConf.to_container(cfg.dataset, resolve=True)  # type: ignore[assignment]
    if not dataset_chosen and checkpoint.dataset is not None:
        settings, deleted = _dataset_settings(cfg)
        dataset_config = {
            key: value
            for key, value in {**checkpoint.dataset, **settings}.items()
            if key not in deleted
        }
    split = cfg.split or dataset_config["val_split"]
    dataset = CityscapesDataset(
        dataset_root(dataset_config), split, EvalTransform(input_size=input_size)
    )
    export = prediction_writer(dataset, Path(cfg.export_dir)) if cfg.export_dir else None
    scores = evaluate(
        model,
        eval_loader(dataset, runtime, cfg.batch_size, cfg.num_workers),
        num_classes=model.num_classes,
        device=runtime.device,
        amp=cfg.amp,
        on_batch=export,
    )
    summary = {
        "checkpoint": str(cfg.checkpoint),
        "dataset": {key: dataset_config.get(key) for key in ("name", "root")},
        "split": split,
        "images": len(dataset),
        "input_size": list(input_size),
        "miou": scores.miou,
        "pixel_accuracy": scores.pixel_accuracy,
        "per_class_iou": dict(zip(CLASS_NAMES, scores.per_class_iou, strict=True)),
        "world_size": runtime.world_size,
    }
    return scores, summary


def _dataset_settings(cfg: DictConfig) -> tuple[dict[str, Any], set[str]]:
    """The command line's `dataset.KEY=VALUE` settings (resolved) and `~dataset.KEY` deletions
    (top-level keys: a dataset's config is flat)."""
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
        scores, summary = score_checkpoint(cfg, dataset_chosen=chosen)
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if summary["world_size"] > 1 and torch.distributed.get_rank() != 0:
        return
    dataset = f"{summary['dataset']['name']} ({summary['dataset']['root'] or 'built-in'})"
    if scores.labelled_pixels == 0:
        exported = f"; predictions written to {cfg.export_dir}" if cfg.export_dir else ""
        print(
            f"error: the {summary['split']} split of {dataset} has no labelled pixels (Cityscapes "
            f"withholds its test labels): no mIoU{exported}",
            file=sys.stderr,
        )
        sys.exit(0 if cfg.export_dir else 2)
    for name, iou in summary["per_class_iou"].items():
        print(f"  {name:<15} {'-' if iou != iou else f'{100 * iou:6.2f}'}")
    split = summary["split"]
    print(f"mIoU {100 * scores.miou:.2f} on {summary['images']} {split} images of {dataset}")
    output = Path(cfg.checkpoint).with_name(f"evaluation_{split}.json")
    output.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
