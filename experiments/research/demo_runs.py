"""The demo study run twice or more on one temporary storage, the same architectures each time:
what the savings benchmarks share (`stopping_savings`, `schedule_savings`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from analysis.hypervolume import hypervolume
from analysis.load import finished
from experiments.config import compose_config
from experiments.study.workers import search
from workbench.record import GMADDS, MIOU


def run_demo_study(name: str, storage: Path, overrides: Sequence[str]) -> optuna.Study:
    """The demo study under `name`, with the random sampler and the demo's seed: two runs
    with the same `study.n_trials` draw the same architectures in the same order (a promotion
    or an enqueued design takes its parameters from the storage, not from the sampler)."""
    config = compose_config(
        "search",
        [
            "+study=demo",
            f"study.name={name}",
            "sampler=random",
            "tracking=none",
            # One worker and no probes: two workers finish trials in an order that varies, and
            # the schedule arm's probes would be draws the arm without a schedule never makes.
            "study.n_workers=1",
            "study.schedule.probes=0",
            f"storage.url=sqlite:///{storage}",
            f"output_dir={storage.parent}",
            *overrides,
        ],
    )
    return search(config)


def front_hypervolume(front: pd.DataFrame, reference: tuple[float, float]) -> float:
    """Hypervolume of (mIoU, GMAdds) points against `reference`."""
    points = front[[MIOU, GMADDS]].to_numpy(dtype=np.float64)
    return hypervolume(points, reference, maximize=(True, False))


def shared_reference(runs: Sequence[pd.DataFrame]) -> tuple[float, float]:
    """One reference point for every run: mIoU 0 and 1.1 times the costliest trial."""
    worst_cost = max(float(finished(df)[GMADDS].max()) for df in runs)
    return 0.0, 1.1 * worst_cost
