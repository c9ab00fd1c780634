"""Hypervolume of a front against a reference point, its history over trials, and the default
reference point.

The hypervolume is the volume of the union of the boxes spanned between each point and the
reference point (in minimisation terms: every objective turned into a loss). It is exact: a
sweep in 2-D, and for more objectives a slicing along the last objective that reduces each slab
to the volume one dimension lower. That is quadratic per added dimension, ample for fronts of
the tens of points a study produces. A point not strictly better than the reference in every
objective spans an empty box and adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Objective, finished, frame_objectives
from analysis.pareto import as_losses, non_dominated
from workbench.record import GMADDS, MIOU, StudyKey

# How far beyond the worst observed value a data-derived reference sits, as a fraction of that
# value's magnitude: the worst point of the front then still spans a box and counts.
REFERENCE_MARGIN = 0.1


@dataclass(frozen=True)
class ReferencePoint:
    values: tuple[float, ...]
    reasons: tuple[str, ...]

    def describe(self, objectives: Sequence[Objective]) -> str:
        return "; ".join(
            f"{objective.name} {value:.4g} ({reason})"
            for objective, value, reason in zip(objectives, self.values, self.reasons, strict=True)
        )


def hypervolume(values: np.ndarray, reference: Sequence[float], maximize: Sequence[bool]) -> float:
    """Exact hypervolume of the points (rows of `values`) for 2 or more objectives."""
    points = np.asarray(values, dtype=float).reshape(-1, len(maximize))
    if len(maximize) < 2:
        raise ValueError("the hypervolume needs at least 2 objectives")
    losses = as_losses(points, maximize)
    bound = as_losses(np.asarray(reference, dtype=float), maximize)
    inside = losses[np.all(losses < bound, axis=1)]
    if len(inside) == 0:
        return 0.0
    return _volume(inside, bound)


def _volume(losses: np.ndarray, bound: np.ndarray) -> float:
    if losses.shape[1] == 2:
        return _area(losses, bound)
    order = np.argsort(losses[:, -1], kind="stable")
    losses = losses[order]
    # Slab k lies between the k-th and the (k+1)-th lowest last coordinates; the points below
    # it are the first k+1, and the slab's cross-section is their volume one dimension lower.
    tops = np.append(losses[1:, -1], bound[-1])
    total = 0.0
    for k, (point, top) in enumerate(zip(losses, tops, strict=True)):
        if top > point[-1]:
            total += (top - point[-1]) * _volume(losses[: k + 1, :-1], bound[:-1])
    return total


def _area(losses: np.ndarray, bound: np.ndarray) -> float:
    losses = losses[np.lexsort((losses[:, 1], losses[:, 0]))]
    # Between consecutive x values the covered height is set by the lowest y seen so far.
    lowest = np.minimum.accumulate(losses[:, 1])
    widths = np.append(losses[1:, 0], bound[0]) - losses[:, 0]
    return float(np.sum(widths * (bound[1] - lowest)))


def default_reference(df: pd.DataFrame, study_attrs: Mapping[str, Any]) -> ReferencePoint:
    """mIoU: 0, the worst score there is, so the volume is the accuracy bought under the cost
    curve. GMAdds: the study's budget when it has one (no feasible trial exceeds it, and studies
    with the same budget compare). Any other objective (latency, an unnamed one): the worst
    value among the feasible finished trials, pushed out by 10% of its magnitude. Data-derived
    coordinates make volumes comparable only within one study; pass a reference to compare
    studies."""
    trials = finished(df)
    values: list[float] = []
    reasons: list[str] = []
    for objective in frame_objectives(df):
        budget = study_attrs.get(StudyKey.GMADDS_BUDGET)
        if objective.name == MIOU and objective.maximize:
            values.append(0.0)
            reasons.append("the lowest mIoU")
        elif objective.name == GMADDS and not objective.maximize and budget is not None:
            values.append(float(budget))
            reasons.append("the study's GMAdds budget")
        else:
            column = trials[objective.name]
            worst = column.max() if not objective.maximize else column.min()
            if math.isnan(worst):
                raise ValueError(f"no finished trial has a value for {objective.name}")
            margin = REFERENCE_MARGIN * abs(worst) or 1.0
            values.append(float(worst - margin if objective.maximize else worst + margin))
            reasons.append("the worst finished value + 10%")
    return ReferencePoint(tuple(values), tuple(reasons))


def hypervolume_history(df: pd.DataFrame, reference: Sequence[float]) -> pd.Series:
    """The hypervolume of the feasible finished trials numbered up to each trial number."""
    objectives = frame_objectives(df)
    names = [objective.name for objective in objectives]
    maximize = [objective.maximize for objective in objectives]
    counted = set(finished(df)["number"])
    ordered = df.sort_values("number")
    front = np.empty((0, len(names)))
    volume = 0.0
    history: dict[int, float] = {}
    for number, point in zip(ordered["number"], ordered[names].to_numpy(float), strict=True):
        if number in counted:
            # Only the running front matters: keeping just it keeps every step cheap.
            candidates = np.vstack([front, point])
            front = candidates[non_dominated(candidates, maximize)]
            volume = hypervolume(front, reference, maximize)
        history[int(number)] = volume
    return pd.Series(history, name="hypervolume", dtype=float).rename_axis("number")
