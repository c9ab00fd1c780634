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
from search_space.space import SearchSpace, load_space
from workbench.record import objective_directions, objective_names
from workbench.storage import StorageSettings


@dataclass(frozen=True)
class LatencyMeasurement:
    """How a trial's latency is measured (`study.latency`): on the trial's device, before
    training, with the CHEAP protocol of `search_space.latency` (a few seconds), with the
    worker's threads, on the deployed path by default: the figure a deployment would see."""

    measure: bool  # record it even when it is neither an objective nor a budget
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
    def measures_latency(self) -> bool:
        return self.latency_objective or self.latency_budget_ms is not None or self.latency.measure

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
