"""Experiment tracking: one wandb run per trial, grouped by study (our own small callback; the
optuna-integration one is deprecated). Offline by default, written under `outputs/`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class TrialTracker(Protocol):
    def start(self, study_name: str, trial_number: int, config: Mapping[str, Any]) -> None: ...
    def log(self, values: Mapping[str, float], step: int | None = None) -> None: ...
    def finish(self, summary: Mapping[str, Any], state: str) -> None: ...


class NoTracking:
    def start(self, study_name: str, trial_number: int, config: Mapping[str, Any]) -> None:
        pass

    def log(self, values: Mapping[str, float], step: int | None = None) -> None:
        pass

    def finish(self, summary: Mapping[str, Any], state: str) -> None:
        pass


class WandbTracker:
    def __init__(self, *, project: str, mode: str, directory: Path) -> None:
        self.project = project
        # WANDB_MODE in the environment wins (tests set it to "disabled").
        self.mode = os.environ.get("WANDB_MODE", mode)
        self.directory = directory
        self.run: Any = None

    def start(self, study_name: str, trial_number: int, config: Mapping[str, Any]) -> None:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project,
            group=study_name,
            name=f"{study_name}-trial-{trial_number}",
            job_type="trial",
            config=dict(config),
            dir=str(self.directory),
            mode=self.mode,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True),  # one summary per trial would drown the log
        )

    def log(self, values: Mapping[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(values), step=step)

    def finish(self, summary: Mapping[str, Any], state: str) -> None:
        if self.run is None:
            return
        self.run.summary.update({**summary, "state": state})
        self.run.finish(exit_code=0 if state in ("COMPLETE", "PRUNED") else 1)
        self.run = None


@dataclass(frozen=True)
class TrackingSettings:
    """The `tracking:` section (`conf/tracking/wandb.yaml`; `tracking=none` turns it off)."""

    enabled: bool
    mode: str  # offline | online | disabled (WANDB_MODE in the environment wins)
    project: str
    dir: Path  # runs are written under dir/wandb


def make_tracker(settings: TrackingSettings) -> TrialTracker:
    if not settings.enabled:
        return NoTracking()
    return WandbTracker(project=settings.project, mode=settings.mode, directory=settings.dir)
