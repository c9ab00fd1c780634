"""A study command's settings: the `study:` section (`conf/study/base.yaml` has every key, with
its comment and default; each study overrides some), and the whole composed config of
`experiments.search` and `experiments.ablate`, read once at the command's entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from experiments.config import CommandSettings, check_at_least, read_section
from experiments.data.from_config import DatasetSettings, InputSize
from experiments.study.early_stopping import EarlyStoppingConfig
from experiments.study.proposers import AblationSettings
from experiments.study.samplers import SamplerSettings
from experiments.study.schedule import ScheduleConfig
from experiments.study.tracking import TrackingSettings
from experiments.training.trainer import TrainerConfig
from search_space.deploy import DTYPES
from search_space.latency_table import LatencyTable
from search_space.space import SearchSpace, load_space
from workbench.record import objective_directions, objective_names
from workbench.storage import StorageSettings

LATENCY_SOURCES = ("measure", "table")


@dataclass(frozen=True)
class LatencyMeasurement:
    """How a trial's latency is found (`study.latency`). `source=measure`: timed on the trial's
    device, before training, with the CHEAP protocol of `search_space.latency` (a few seconds),
    the worker's threads, on the deployed path by default. `source=table`: predicted from a
    latency table measured on the device the network will run on; nothing is timed."""

    measure: bool  # record it even when it is neither an objective nor a budget
    source: str
    table: str | None
    batch: int
    fast_path: bool  # BN folded, channels-last, inference mode
    dtype: str

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"study.latency.batch must be >= 1, got {self.batch}")
        if self.dtype not in DTYPES:
            raise ValueError(
                f"study.latency.dtype must be one of {list(DTYPES)}, got {self.dtype!r}"
            )
        if self.source not in LATENCY_SOURCES:
            raise ValueError(
                f"study.latency.source must be one of {list(LATENCY_SOURCES)}, got {self.source!r}"
            )
        if (self.source == "table") != (self.table is not None):
            raise ValueError(
                "study.latency.source=table needs study.latency.table=FILE (a latency table "
                "from python -m search_space.latency_table), and a table needs source=table"
            )

    def check_table(self, table: LatencyTable) -> None:
        """The table's batch, dtype and path are what its figures mean: a `study.latency`
        setting that says otherwise is an error, not silently overruled."""
        contradictions = [
            f"study.latency.{key}={ours!r} but the table's is {theirs!r}"
            for key, ours, theirs in (
                ("batch", self.batch, table.batch),
                ("dtype", self.dtype, table.dtype),
            )
            if ours != theirs
        ]
        if not self.fast_path:
            contradictions.append(
                f"study.latency.fast_path=false (eager) but the table times {table.path!r}"
            )
        if contradictions:
            raise ValueError(
                f"study.latency.table={self.table}: {'; '.join(contradictions)}. Set them to "
                "the table's values, or build a table with yours."
            )


@dataclass(frozen=True)
class StudySettings:
    """The `study:` section."""

    name: str
    n_trials: int  # finished architectures to reach (not promotions): re-running resumes
    n_workers: int  # processes on this host, each on its own trials
    seed: int
    input_size: InputSize | None  # None: the dataset's
    gmadds_budget: float | None  # above it a trial is infeasible, never trained
    reference_designs: tuple[str, ...]  # registered architectures enqueued first
    first_trials_per_head: int  # random draws enqueued after them until each head has this many
    max_failed_trials: int
    keep_checkpoints: bool
    threads_per_worker: int | None  # None: the cores shared among the workers
    workers_per_gpu: int  # at most this many of the host's workers train on one GPU at once
    latency_objective: bool  # latency_ms as a third objective
    latency_budget_ms: float | None  # above it a trial is infeasible, never trained
    latency: LatencyMeasurement
    early_stopping: EarlyStoppingConfig
    schedule: ScheduleConfig

    def __post_init__(self) -> None:
        check_at_least(
            self, "study", ("n_trials", "n_workers", "workers_per_gpu", "max_failed_trials"), 1
        )
        if self.schedule.enabled and self.early_stopping.enabled:
            # Two rules deciding which trials train on would fight; the schedule subsumes
            # early stopping (a trial not promoted stops at its rung).
            raise ValueError(
                "study.schedule.enabled and study.early_stopping.enabled are both true: "
                "choose one (the schedule stops at each rung the trials it does not promote)"
            )
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise ValueError(f"study.latency_budget_ms must be > 0, got {self.latency_budget_ms}")

    @property
    def objective_names(self) -> list[str]:
        return objective_names(latency=self.latency_objective)

    @property
    def directions(self) -> list[str]:
        return objective_directions(self.objective_names)

    @property
    def wants_latency(self) -> bool:
        """Whether each trial records a latency (measured or predicted)."""
        return self.latency_objective or self.latency_budget_ms is not None or self.latency.measure

    @property
    def measures_latency(self) -> bool:
        """Whether each trial times its network on this host's device."""
        return self.wants_latency and self.latency.source == "measure"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> StudySettings:
        return read_section(cls, values, "study")


@dataclass(frozen=True)
class SearchSettings(CommandSettings):
    """The composed config of a study command: a search has a `space` and a `sampler`, an
    ablation its `ablation` instead (a grid, which needs neither)."""

    study: StudySettings
    dataset: DatasetSettings
    trainer: TrainerConfig
    storage: StorageSettings
    tracking: TrackingSettings
    space: Annotated[SearchSpace, load_space] | None
    sampler: SamplerSettings | None
    ablation: AblationSettings | None

    def __post_init__(self) -> None:
        if self.ablation is None and (self.space is None or self.sampler is None):
            raise ValueError("a search needs a `space` and a `sampler` section")
        if self.ablation is not None and self.space is not None:
            raise ValueError(
                "the config has both `ablation` and `space`: an ablation trains its variants, "
                "a search samples its space; run one of them"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        """The study's input size: its own, else the dataset's."""
        return self.study.input_size or self.dataset.input_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SearchSettings:
        if "study" not in config:
            raise ValueError(
                "choose a study: python -m experiments.search +study=demo (built-in data, a few "
                "minutes on a CPU) or +study=cityscapes (dataset.root=/path/to/cityscapes)"
            )
        # What a search or an ablation lacks is absent from its config (conf/search.yaml,
        # conf/ablate.yaml), not null.
        kind = {"space": None, "sampler": None, "ablation": None}
        return read_section(cls, {**kind, **config}, "")
