"""A study's set-up: everything checked before the first trial, from the composed config to
the `SearchSetup` the study's life cycle and workers run on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from optuna.study import StudyDirection

from experiments.data import CityscapesDataset
from experiments.data.from_config import build_datasets
from experiments.study.proposers import AblationProposer, Proposer, SpaceProposer
from experiments.study.samplers import make_sampler
from experiments.study.schedule import Schedule
from experiments.study.settings import StudySettings
from experiments.training.trainer import TrainerConfig
from search_space.registry import get_arch
from search_space.space import load_space
from search_space.spec import gene_names
from workbench.cli import parse_size


@dataclass
class SearchSetup:
    config: dict[str, Any]
    settings: StudySettings
    proposer: Proposer
    trainer_config: TrainerConfig
    input_size: tuple[int, int]
    sampler_config: dict[str, Any]
    train_set: CityscapesDataset
    val_set: CityscapesDataset
    num_classes: int
    schedule: Schedule | None
    # Set by `start_study`, for `sampler_seed`: whether this command created the study; how
    # many trials it held when this command started.
    created: bool = False
    resumed_at: int = 0


def prepare(config: Mapping[str, Any]) -> SearchSetup:
    """Check everything that can be checked before the first trial; raise on any error."""
    if "study" not in config:
        raise ValueError(
            "choose a study: python -m experiments.search +study=demo (built-in data, a few "
            "minutes on a CPU) or +study=cityscapes (dataset.root=/path/to/cityscapes)"
        )
    settings = StudySettings.from_dict(config["study"])
    input_size = settings.input_size or parse_size(config["dataset"]["input_size"])
    proposer: Proposer
    trainer_config = TrainerConfig.from_dict(dict(config["trainer"]))
    schedule = None
    if settings.schedule.enabled:
        if "ablation" in config:
            raise ValueError(
                "study.schedule.enabled: an ablation trains every variant and seed to the "
                "same budget; turn the schedule off"
            )
        schedule = Schedule(
            settings.schedule.rungs(trainer_config.steps),
            settings.schedule.reduction,
            varied_gene(config, settings.schedule.stratify),
            tuple(StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
                  for d in settings.directions),
        )  # fmt: skip
    if "ablation" in config:
        # An ablation is a grid of (variant, seed): every cell is enqueued, the grid sampler
        # serves whatever an extra worker or a failed cell's retry asks for beyond them.
        proposer = AblationProposer.from_config(config["ablation"], input_size)
        settings = replace(settings, n_trials=proposer.n_trials)
        sampler_config = {"name": "grid", "cells": [p for p, _ in proposer.initial_trials()]}
    else:
        space = load_space(config["space"], name=config["space"].get("name"))
        proposer = SpaceProposer(
            space.with_fixed({"input_size": list(input_size)}),
            settings.seed,
            settings.reference_designs,
            settings.first_trials_per_head,
        )
        for name in settings.reference_designs:
            get_arch(name)  # an unknown name fails here, listing the registry
        sampler_config = dict(config["sampler"])
    datasets = build_datasets(  # indexes and checks every file of the dataset
        config["dataset"], input_size=input_size, scale_range=trainer_config.scale_range
    )
    make_sampler(sampler_config, settings.seed)
    return SearchSetup(
        dict(config),
        settings,
        proposer,
        trainer_config,
        input_size,
        sampler_config,
        *datasets,
        schedule=schedule,
    )


def varied_gene(config: Mapping[str, Any], gene: str | None) -> str | None:
    """`gene` if the study's space varies it, else None: brackets of a gene that every
    architecture shares would be one bracket with the floor of one promotion a rung."""
    if gene is None or "space" not in config:
        return None
    if gene not in gene_names():
        raise ValueError(f"study.schedule.stratify={gene!r} is not a gene ({gene_names()})")
    space = load_space(config["space"], name=config["space"].get("name"))
    values = {v for d in space.dimensions if d.gene == gene for v in d.candidate_values()}
    return gene if len(values) > 1 else None
