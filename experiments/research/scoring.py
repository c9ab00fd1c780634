"""Train one architecture with a recipe and score it: what the benchmarks that train share."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from experiments.config import compose_config, read_value
from experiments.data import CityscapesDataset
from experiments.data.from_config import DatasetSettings, build_datasets
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import Runtime, resolve_device
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.model import build
from search_space.spec import ArchSpec
from workbench.cli import parse_size


@dataclass
class TrainingProgress:
    """A line on stderr after each training of a benchmark's plan: what it trained and scored,
    the steps done of the plan's total, the rate and the time left. The rate is counted in
    steps, so that a plan mixing short and long budgets gets an honest ETA."""

    total_steps: int
    done_steps: int = 0
    seconds: float = 0.0

    def record(self, label: str, steps: int, seconds: float, miou: float) -> None:
        self.done_steps += steps
        self.seconds += seconds
        rate = self.done_steps / self.seconds
        left = (self.total_steps - self.done_steps) / rate
        print(
            f"[{self.done_steps}/{self.total_steps} steps] {label}: {100 * miou:.2f} mIoU after "
            f"{steps} steps in {seconds:.0f} s; {rate:.2f} steps/s, about {left / 60:.1f} min "
            "left",
            file=sys.stderr,
            flush=True,
        )


@dataclass(frozen=True)
class Bench:
    """The data and the recipe a benchmark trains with, composed from conf/ as
    `experiments.train` composes them (Hydra overrides apply: `dataset=cityscapes`, ...)."""

    train: CityscapesDataset
    val: CityscapesDataset
    num_classes: int
    input_size: tuple[int, int]
    recipe: dict[str, Any]  # the trainer section; `trainer_config(steps=...)` builds from it
    device: torch.device

    @classmethod
    def from_conf(cls, overrides: Sequence[str] = ()) -> Bench:
        config = compose_config("train", list(overrides))
        recipe = {**config["trainer"], "progress": False, "eval_every": 0}
        size = parse_size(config["input_size"])
        dataset = read_value(DatasetSettings, config["dataset"], "dataset")
        train, val, num_classes = build_datasets(
            dataset,
            input_size=size,
            scale_range=tuple(recipe["scale_range"]),
            augment_on=recipe["augment_on"],
        )
        return cls(train, val, num_classes, size, recipe, resolve_device(config["device"]))

    def trainer_config(self, **overrides: Any) -> TrainerConfig:
        return TrainerConfig.from_dict({**self.recipe, **overrides})

    def score(
        self,
        spec: ArchSpec,
        config: TrainerConfig,
        seed: int,
        progress: TrainingProgress | None = None,
        label: str = "",
    ) -> tuple[SegmentationScores, float]:
        """Validation scores after training from scratch with `seed`, and the seconds it took
        (recorded in `progress` as `label`, seed `seed`, when one is given)."""
        torch.manual_seed(seed)
        model = build(spec.replace(input_size=self.input_size), self.num_classes)
        trainer = Trainer(model, self.train, self.val, config, Runtime(self.device),
                          num_classes=self.num_classes, seed=seed)  # fmt: skip
        started = time.perf_counter()
        scores = trainer.fit().scores
        seconds = time.perf_counter() - started
        if progress is not None:
            progress.record(f"{label}, seed {seed}", config.steps, seconds, scores.miou)
        return scores, seconds
