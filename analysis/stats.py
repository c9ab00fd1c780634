"""Small statistics the reports need: rank correlations over paired values, NaN where too few
pairs (or a constant side) make them meaningless."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import finished
from workbench.record import GMADDS, LATENCY

# Below this many pairs a rank correlation says nothing (two points are always in order).
MIN_PAIRS = 3


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, ties given their average
    rank (scipy's definition). NaN when fewer than 3 paired values or one side is constant."""
    paired = _paired(x, y)
    if paired is None:
        return math.nan
    ranks = paired.rank(method="average")
    return float(np.corrcoef(ranks["x"], ranks["y"])[0, 1])


def kendall_tau(x: pd.Series, y: pd.Series) -> float:
    """Kendall's tau-b (scipy's, ties accounted for): the balance of concordant over discordant
    pairs. NaN when fewer than 3 paired values or one side is constant."""
    paired = _paired(x, y)
    if paired is None:
        return math.nan
    return float(stats.kendalltau(paired["x"], paired["y"]).statistic)


def _paired(x: pd.Series, y: pd.Series) -> pd.DataFrame | None:
    """The rows where both are present, or None when they cannot be ranked against each other.
    Positional: callers pass two columns of one frame, or two arrays in the same order."""
    paired = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)})
    paired = paired.dropna()
    if len(paired) < MIN_PAIRS or paired["x"].nunique() < 2 or paired["y"].nunique() < 2:
        return None
    return paired


def madds_latency_agreement(df: pd.DataFrame) -> tuple[float, int]:
    """How well MAdds rank a study's architectures by latency (measured or predicted, as the
    trials recorded it): Spearman's rho over the feasible finished trials that have both, and
    how many there are."""
    trials = finished(df).dropna(subset=[LATENCY, GMADDS])
    return spearman(trials[GMADDS], trials[LATENCY]), len(trials)
