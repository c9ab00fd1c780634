"""Train one architecture with a recipe and score it: what the benchmarks that train share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from experiments.config import compose_config
from experiments.data import CityscapesDataset
from experiments.data.from_config import build_datasets
from experiments.training.metrics import SegmentationScores
from experiments.training.runtime import Runtime, resolve_device
from experiments.training.trainer import Trainer, TrainerConfig
from search_space.arch_source import parse_size
from search_space.model import build
from search_space.spec import ArchSpec


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
        train, val, num_classes = build_datasets(
            config["dataset"], input_size=size, scale_range=tuple(recipe["scale_range"])
        )
        return cls(train, val, num_classes, size, recipe, resolve_device(config["device"]))

    def trainer_config(self, **overrides: Any) -> TrainerConfig:
        return TrainerConfig.from_dict({**self.recipe, **overrides})

    def score(
        self, spec: ArchSpec, config: TrainerConfig, seed: int
    ) -> tuple[SegmentationScores, float]:
        """Validation scores after training from scratch with `seed`, and the seconds it took."""
        torch.manual_seed(seed)
        model = build(spec.replace(input_size=self.input_size), self.num_classes)
        trainer = Trainer(model, self.train, self.val, config, Runtime(self.device),
                          num_classes=self.num_classes, seed=seed)  # fmt: skip
        started = time.perf_counter()
        scores = trainer.fit().scores
        return scores, time.perf_counter() - started
