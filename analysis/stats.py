"""Small statistics the reports need, without scipy (not a dependency of the project)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.load import finished
from analysis.record import GMADDS, LATENCY


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, ties given their average
    rank (scipy's definition). NaN when fewer than 3 paired values or one side is constant."""
    paired = pd.DataFrame({"x": x.to_numpy(), "y": y.to_numpy()}).dropna()
    if len(paired) < 3:
        return math.nan
    ranks = paired.rank(method="average")
    if ranks["x"].nunique() < 2 or ranks["y"].nunique() < 2:
        return math.nan
    return float(np.corrcoef(ranks["x"], ranks["y"])[0, 1])


def madds_latency_agreement(df: pd.DataFrame) -> tuple[float, int]:
    """How well MAdds rank a study's architectures by measured latency: Spearman's rho over the
    feasible finished trials that have both, and how many there are."""
    trials = finished(df).dropna(subset=[LATENCY, GMADDS])
    return spearman(trials[GMADDS], trials[LATENCY]), len(trials)
