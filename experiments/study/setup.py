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
from experiments.study.samplers import GridCells, SamplerSettings, make_sampler
from experiments.study.schedule import Schedule
from experiments.study.settings import SearchSettings, StudySettings
from search_space.registry import get_arch
from search_space.space import SearchSpace
from search_space.spec import gene_names


@dataclass
class SearchSetup:
    search: SearchSettings  # the command's settings (an ablation's n_trials: its grid's size)
    # The config as composed: the study stores it (masked) for its report and compares its
    # defining keys on resume (`identity`); nothing reads it for what to do.
    composed: dict[str, Any]
    proposer: Proposer
    sampler: SamplerSettings | GridCells
    train_set: CityscapesDataset
    val_set: CityscapesDataset
    num_classes: int
    schedule: Schedule | None
    # Set by `start_study`, for `sampler_seed`: whether this command created the study; how
    # many trials it held when this command started.
    created: bool = False
    resumed_at: int = 0

    @property
    def settings(self) -> StudySettings:
        return self.search.study

    @property
    def input_size(self) -> tuple[int, int]:
        return self.search.input_size


def prepare(config: Mapping[str, Any]) -> SearchSetup:
    """Read the composed config (once: everything below gets typed settings) and check
    everything that can be checked before the first trial; raise on any error."""
    return set_up(SearchSettings.from_config(config), dict(config))


def set_up(search: SearchSettings, composed: dict[str, Any]) -> SearchSetup:
    """The setup of settings already read (`prepare`; a worker process gets them read)."""
    trainer, input_size = search.trainer, search.input_size
    schedule = None
    if search.study.schedule.enabled:
        if search.ablation is not None:
            raise ValueError(
                "study.schedule.enabled: an ablation trains every variant and seed to the "
                "same budget; turn the schedule off"
            )
        schedule = Schedule(
            search.study.schedule.rungs(trainer.steps),
            search.study.schedule.reduction,
            varied_gene(search.space, search.study.schedule.stratify),
            tuple(StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
                  for d in search.study.directions),
        )  # fmt: skip
    proposer: Proposer
    sampler: SamplerSettings | GridCells
    if search.ablation is not None:
        # An ablation is a grid of (variant, seed): every cell is enqueued, the grid sampler
        # serves whatever an extra worker or a failed cell's retry asks for beyond them.
        ablation = AblationProposer.from_settings(search.ablation, input_size)
        search = replace(search, study=replace(search.study, n_trials=ablation.n_trials))
        proposer = ablation
        sampler = GridCells(tuple(params for params, _ in ablation.initial_trials()))
    else:
        assert search.space is not None and search.sampler is not None  # SearchSettings checks
        proposer = SpaceProposer(
            search.space.with_fixed({"input_size": list(input_size)}),
            search.study.seed,
            search.study.reference_designs,
            search.study.first_trials_per_head,
        )
        for name in search.study.reference_designs:
            get_arch(name)  # an unknown name fails here, listing the registry
        sampler = search.sampler
    datasets = build_datasets(  # indexes and checks every file of the dataset
        search.dataset, input_size=input_size, scale_range=trainer.scale_range
    )
    make_sampler(sampler, search.study.seed)
    return SearchSetup(search, composed, proposer, sampler, *datasets, schedule=schedule)


def varied_gene(space: SearchSpace | None, gene: str | None) -> str | None:
    """`gene` if the study's space varies it, else None: brackets of a gene that every
    architecture shares would be one bracket with the floor of one promotion a rung."""
    if gene is None or space is None:
        return None
    if gene not in gene_names():
        raise ValueError(f"study.schedule.stratify={gene!r} is not a gene ({gene_names()})")
    values = {v for d in space.dimensions if d.gene == gene for v in d.candidate_values()}
    return gene if len(values) > 1 else None
