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
from omegaconf import DictConfig, OmegaConf

from experiments.data import (
    CLASS_NAMES,
    CityscapesDataset,
    DatasetError,
    EvalTransform,
)
from experiments.data.from_config import dataset_root
from experiments.training.evaluation import eval_loader, evaluate, prediction_writer
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import init_runtime
from experiments.training.trainer import load_checkpoint
from search_space.arch_source import parse_size
from search_space.spec import SpecError


def score_checkpoint(cfg: DictConfig) -> tuple[SegmentationScores, dict[str, Any]]:
    runtime = init_runtime(cfg.device)
    model = load_checkpoint(Path(cfg.checkpoint)).to(runtime.device)
    input_size = parse_size(cfg.input_size) if cfg.input_size else model.spec.input_size
    dataset_config: dict[str, Any] = OmegaConf.to_container(cfg.dataset, resolve=True)  # type: ignore[assignment]
    dataset = CityscapesDataset(
        dataset_root(dataset_config), cfg.split, EvalTransform(input_size=input_size)
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
        "split": cfg.split,
        "images": len(dataset),
        "input_size": list(input_size),
        "miou": scores.miou,
        "pixel_accuracy": scores.pixel_accuracy,
        "per_class_iou": dict(zip(CLASS_NAMES, scores.per_class_iou, strict=True)),
        "world_size": runtime.world_size,
    }
    return scores, summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        scores, summary = score_checkpoint(cfg)
    except (ValueError, SpecError, DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if summary["world_size"] > 1 and torch.distributed.get_rank() != 0:
        return
    for name, iou in summary["per_class_iou"].items():
        print(f"  {name:<15} {'-' if iou != iou else f'{100 * iou:6.2f}'}")
    print(f"mIoU {100 * scores.miou:.2f} on {summary['images']} {cfg.split} images")
    output = Path(cfg.checkpoint).with_name(f"evaluation_{cfg.split}.json")
    output.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
