"""Pareto fronts for any number of objectives and any mix of directions.

Dominance: a dominates b when a is at least as good in every objective and strictly better in
one. A trial is on the front when no other candidate dominates it, so duplicates (equal values)
are all on the front, as in Optuna's `best_trials`. Only feasible finished trials are
candidates (`load.finished`): pruned, failed and over-budget trials never enter a front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.load import Objective, finished, frame_objectives
from workbench.record import GMADDS


def as_losses(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """The same points with every objective turned into one to minimise."""
    return np.asarray(values, dtype=float) * np.where(maximize, -1.0, 1.0)


def non_dominated(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """A boolean mask over the rows of `values` (points x objectives): True on the front."""
    losses = as_losses(values, maximize)
    on_front = np.ones(len(losses), dtype=bool)
    # One vectorised comparison per point keeps memory linear in the number of trials.
    for index, point in enumerate(losses):
        dominates = np.all(losses <= point, axis=1) & np.any(losses < point, axis=1)
        on_front[index] = not dominates.any()
    return on_front


def pareto_front(df: pd.DataFrame, objectives: Sequence[Objective] | None = None) -> pd.DataFrame:
    """The rows of a trials frame on the front of `objectives` (default: the study's), sorted by
    GMAdds when it is one of them (the order of a front plotted against compute)."""
    objectives = tuple(objectives or frame_objectives(df))
    names = [objective.name for objective in objectives]
    candidates = finished(df).dropna(subset=names)
    mask = non_dominated(candidates[names].to_numpy(), [o.maximize for o in objectives])
    front = candidates[mask]
    first = objectives[0]
    if GMADDS in names:
        return front.sort_values([GMADDS, "number"])
    return front.sort_values([first.name, "number"], ascending=[not first.maximize, True])
