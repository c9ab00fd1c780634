"""Early stopping for a multi-objective study, which Optuna does not provide.

At each evaluation, a trial whose validation mIoU is beaten at the same step by at least
`min_dominating` finished, feasible trials that cost no more (MAdds, and latency when it is an
objective) is stopped: those trials already show that, at this budget, it will not reach the
front. It is stored as PRUNED with its curve and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from experiments.config import checked_section
from workbench.record import TrialKey


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool
    min_dominating: int  # finished trials that must beat this one at the same step
    margin: float  # mIoU points by which they must beat it
    min_step: int  # never stop before this step

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EarlyStoppingConfig:
        return cls(**checked_section(values, "study.early_stopping", cls))


def curve_value_at(curve: list[list[float]] | None, step: int) -> float | None:
    for point_step, miou in curve or ():
        if int(point_step) == step:
            return float(miou)
    return None


class MultiObjectiveStopper:
    def __init__(
        self, config: EarlyStoppingConfig, study: optuna.Study, costs: Mapping[str, float]
    ) -> None:
        """`costs`: this trial's figures that a dominating trial must not exceed, by the user
        attribute that stores them (`gmadds`, `latency_ms`)."""
        self.config = config
        self.study = study
        self.costs = dict(costs)

    def reason_to_stop(self, step: int, miou: float) -> str | None:
        """None to go on, or why the trial should stop."""
        if not self.config.enabled or step < self.config.min_step:
            return None
        finished = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        better = []
        for trial in finished:
            attrs = trial.user_attrs
            if (
                attrs.get(TrialKey.INFEASIBLE)
                or TrialKey.DUPLICATE_OF in attrs
                or any(attrs.get(name, float("inf")) > mine for name, mine in self.costs.items())
            ):
                continue
            theirs = curve_value_at(attrs.get(TrialKey.CURVE), step)
            if theirs is not None and theirs > miou + self.config.margin:
                better.append(trial.number)
        if len(better) < self.config.min_dominating:
            return None
        costs = ", ".join(f"{name} {value:.3f}" for name, value in self.costs.items())
        return (
            f"at step {step} its validation mIoU {miou:.2f} was beaten by {len(better)} "
            f"finished trials that cost no more ({costs}): "
            f"{', '.join(f'#{n}' for n in better[:10])}"
        )
