"""A study's set-up: everything checked before the first trial, from the composed config to
the `SearchSetup` the study's life cycle and workers run on."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optuna.study import StudyDirection

from experiments.data import CityscapesDataset
from experiments.data.from_config import build_datasets
from experiments.study.proposers import AblationProposer, Proposer, SpaceProposer
from experiments.study.samplers import GridCells, SamplerSettings, make_sampler
from experiments.study.schedule import Schedule
from experiments.study.settings import SearchSettings, StudySettings
from search_space.latency_table import LatencyTable, load_table
from search_space.latency_table.table import size_text
from search_space.parts import space_parts
from search_space.registry import get_arch
from search_space.space import SearchSpace
from search_space.spec import gene_names
from workbench.record import TrialKey

log = logging.getLogger(__name__)


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
    latency_table: LatencyTable | None = None  # study.latency.source=table: read and checked
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
        schedule = make_schedule(search.study, trainer.steps, search.space)
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
        for name in search.study.reference_designs:
            get_arch(name)  # an unknown name fails here, listing the registry
        proposer = space_proposer(search.study, search.space, input_size, schedule)
        first = [attrs for _, attrs in proposer.initial_trials()]
        search = replace(search, study=covering_first_trials(search.study, first))
        sampler = search.sampler
    datasets = build_datasets(  # indexes and checks every file of the dataset
        search.dataset,
        input_size=input_size,
        scale_range=trainer.scale_range,
        augment_on=trainer.augment_on,
    )
    make_sampler(sampler, search.study.seed)
    latency_table = study_latency_table(search.study, search.space, input_size, datasets[2])
    return SearchSetup(
        search, composed, proposer, sampler, *datasets, schedule=schedule,
        latency_table=latency_table,
    )  # fmt: skip


def study_latency_table(
    study: StudySettings, space: SearchSpace | None, input_size: tuple[int, int], num_classes: int
) -> LatencyTable | None:
    """The latency table of `study.latency.source=table`, refused before any trial if it
    cannot predict every architecture the study may propose (another input size, class count
    or space) or if a `study.latency` setting contradicts it."""
    settings = study.latency
    if settings.source != "table" or not study.wants_latency:
        return None
    assert settings.table is not None  # LatencyMeasurement checks
    table = load_table(Path(settings.table))
    settings.check_table(table)
    where = f"study.latency.table={settings.table}"
    if tuple(input_size) not in table.input_sizes:
        sizes = ", ".join(map(size_text, table.input_sizes))
        raise ValueError(
            f"{where} covers input sizes {sizes}, not the study's {size_text(input_size)}"
        )
    if table.num_classes != num_classes:
        raise ValueError(
            f"{where} was built for {table.num_classes} classes, the dataset has {num_classes}"
        )
    if space is not None:
        needed = space_parts(space.with_fixed({"input_size": list(input_size)}), num_classes)
        missing = [part for part in needed if part not in table.entries]
        if missing:
            raise ValueError(
                f"{where} (space '{table.space}') lacks {len(missing)} part(s) of space "
                f"'{space.name}' at {size_text(input_size)}, first {missing[0].key}; build one "
                f"for it: python -m search_space.latency_table --space {space.name} "
                f"--input {size_text(input_size)}"
            )
    log.info("latency predicted from %s: %s", settings.table, table.describe_device())
    return table


def make_schedule(study: StudySettings, steps: int, space: SearchSpace | None) -> Schedule:
    """The study's schedule, its brackets those of a gene its space varies."""
    settings = study.schedule
    return Schedule(
        settings.rungs(steps),
        settings.reduction,
        varied_gene(space, settings.stratify),
        tuple(StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
              for d in study.directions),
        references_to_top=settings.references_to_top,
        probes=settings.probes,
    )  # fmt: skip


def space_proposer(
    study: StudySettings,
    space: SearchSpace,
    input_size: tuple[int, int],
    schedule: Schedule | None,
) -> SpaceProposer:
    """A search's proposer: probes only under a schedule (they are what it trains to the top
    whatever their rank), spread over its brackets."""
    return SpaceProposer(
        space.with_fixed({"input_size": list(input_size)}),
        study.seed,
        study.reference_designs,
        study.first_trials_per_head,
        probes=0 if schedule is None else schedule.probes,
        bracket_gene=None if schedule is None else schedule.stratify,
        gmadds_budget=study.gmadds_budget,
    )


def covering_first_trials(
    study: StudySettings, first: Sequence[Mapping[str, Any]]
) -> StudySettings:
    """The study with a target no lower than its first trials (`first`: the user attributes
    each is enqueued with). They are enqueued before any result and run whatever the target
    (`rule.decide`): a lower target would only misstate what the study trains. Raised, it
    says so, naming what the first trials are."""
    if study.n_trials >= len(first):
        return study
    kinds = {TrialKey.REFERENCE: "reference designs", TrialKey.FIRST_DRAW: "first draws per "
             "head", TrialKey.PROBE: "probes"}  # fmt: skip
    parts = ", ".join(
        f"{count} {name}"
        for key, name in kinds.items()
        if (count := sum(key in attrs for attrs in first))
    )
    log.warning(
        "study.n_trials=%d is below the %d first trials (%s): raised to %d",
        study.n_trials, len(first), parts, len(first),
    )  # fmt: skip
    return replace(study, n_trials=len(first))


def varied_gene(space: SearchSpace | None, gene: str | None) -> str | None:
    """`gene` if the study's space varies it, else None: brackets of a gene that every
    architecture shares would be one bracket with the floor of one promotion a rung."""
    if gene is None or space is None:
        return None
    if gene not in gene_names():
        raise ValueError(f"study.schedule.stratify={gene!r} is not a gene ({gene_names()})")
    values = {v for d in space.dimensions if d.gene == gene for v in d.candidate_values()}
    return gene if len(values) > 1 else None
