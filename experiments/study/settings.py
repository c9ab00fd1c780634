"""A study's settings: the `study:` section of the config (`conf/study/base.yaml` has every key,
with its comment and default; each study overrides some)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from experiments.config import check_at_least, checked_section
from experiments.study.early_stopping import EarlyStoppingConfig
from experiments.study.schedule import ScheduleConfig
from search_space.deploy import DTYPES
from workbench.cli import parse_size
from workbench.record import objective_directions, objective_names


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

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LatencyMeasurement:
        return cls(**checked_section(values, "study.latency", cls))


@dataclass(frozen=True)
class StudySettings:
    name: str
    n_trials: int  # finished architectures to reach (not promotions): re-running resumes
    n_workers: int  # processes on this host, each on its own trials
    seed: int
    input_size: tuple[int, int] | None  # None: the dataset's
    gmadds_budget: float | None  # above it a trial is infeasible, never trained
    reference_designs: tuple[str, ...]  # registered architectures enqueued first
    first_trials_per_head: int  # random draws enqueued after them until each head has this many
    max_failed_trials: int
    keep_checkpoints: bool
    threads_per_worker: int | None  # None: the cores shared among the workers
    latency_objective: bool  # latency_ms as a third objective
    latency_budget_ms: float | None  # above it a trial is infeasible, never trained
    latency: LatencyMeasurement
    early_stopping: EarlyStoppingConfig
    schedule: ScheduleConfig

    def __post_init__(self) -> None:
        check_at_least(self, "study", ("n_trials", "n_workers", "max_failed_trials"), 1)
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
        values = checked_section(values, "study", cls)
        optional = {
            "input_size": parse_size,
            "gmadds_budget": float,
            "threads_per_worker": int,
            "latency_budget_ms": float,
        }
        for key, convert in optional.items():
            values[key] = None if values[key] is None else convert(values[key])
        return cls(
            **{
                **values,
                "name": str(values["name"]),
                "reference_designs": tuple(values["reference_designs"]),
                "latency": LatencyMeasurement.from_dict(values["latency"]),
                "early_stopping": EarlyStoppingConfig.from_dict(values["early_stopping"]),
                "schedule": ScheduleConfig.from_dict(values["schedule"]),
            }
        )
