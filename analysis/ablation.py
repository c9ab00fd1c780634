"""The ablation table: per variant, mIoU over seeds with a confidence interval, its cost, the
paired difference to the baseline over the seeds both share, and the paper's figure.

Seeds are paired because a seed fixes initialisation and data order for every variant alike:
the paired difference removes that shared noise, which an unpaired comparison would not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis.load import finished
from workbench.record import GMADDS, MIOU, AblationKey, TrialKey

COLUMNS = (
    "variant", "seeds", "mIoU mean", "mIoU std", "CI low", "CI high", GMADDS, "params M",
    "diff vs baseline", "diff CI low", "diff CI high", "p (paired t)", "paper row",
    "paper mIoU", "paper GMAdds",
)  # fmt: skip


def mean_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float, float]:
    """(mean, sample std, CI low, CI high) of the mean, Student's t; NaN spread for one value."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, data.size - 1)) * std / math.sqrt(data.size)
    return mean, std, mean - half, mean + half


def paired_difference(
    variant: Mapping[int, float], baseline: Mapping[int, float], confidence: float
) -> tuple[float, float, float, float, int]:
    """(mean difference, CI low, CI high, two-sided paired-t p-value, pairs) over shared seeds."""
    seeds = sorted(set(variant) & set(baseline))
    differences = np.array([variant[seed] - baseline[seed] for seed in seeds], dtype=float)
    if differences.size == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    mean, std, low, high = mean_interval(differences, confidence)
    if differences.size < 2:
        return mean, low, high, math.nan, 1
    if std == 0:  # identical differences: no noise to test against
        return mean, mean, mean, 0.0 if mean != 0 else 1.0, differences.size
    t_value = mean / (std / math.sqrt(differences.size))
    p_value = float(2 * stats.t.sf(abs(t_value), differences.size - 1))
    return mean, low, high, p_value, differences.size


def ablation_table(
    df: pd.DataFrame, ablation: Mapping[str, Any], confidence: float = 0.95
) -> pd.DataFrame:
    """One row per variant, in the ablation's order; `df` is `load.load_trials`'s frame."""
    done = finished(df)
    by_variant: dict[str, dict[int, float]] = {
        str(name): dict(
            zip(group[TrialKey.SEED].astype(int), group[MIOU].astype(float), strict=True)
        )
        for name, group in done.groupby(TrialKey.VARIANT)
    }
    baseline = by_variant.get(str(ablation[AblationKey.BASELINE]), {})
    rows = []
    for name, described in ablation[AblationKey.VARIANTS].items():
        scores = by_variant.get(name, {})
        trials = done[done[TrialKey.VARIANT] == name]
        mean, std, low, high = (
            mean_interval(list(scores.values()), confidence) if scores else (math.nan,) * 4
        )
        diff, diff_low, diff_high, p_value, _ = (
            paired_difference(scores, baseline, confidence)
            if name != ablation[AblationKey.BASELINE]
            else (0.0, math.nan, math.nan, math.nan, 0)
        )
        rows.append(
            (
                name, len(scores), mean, std, low, high,
                float(trials[GMADDS].iloc[0]) if len(trials) else math.nan,
                float(trials[TrialKey.N_PARAMS].iloc[0]) / 1e6 if len(trials) else math.nan,
                diff, diff_low, diff_high, p_value, described.get(AblationKey.PAPER_ROW, ""),
                described.get(AblationKey.PAPER_MIOU, math.nan),
                described.get(AblationKey.PAPER_GMADDS, math.nan),
            )
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_ablation(table: pd.DataFrame) -> str:
    """The table for a terminal or Markdown: numbers rounded, empty cells as '-'."""
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            digits = 3 if column in ("p (paired t)", "params M") else 2
            shown[column] = shown[column].map(lambda v, d=digits: "-" if v != v else f"{v:.{d}f}")
    return shown.to_string(index=False)


def ablation_figure(table: pd.DataFrame, df: pd.DataFrame, *, title: str) -> Figure:
    """Mean mIoU per variant with its confidence interval; each seed's result as a dot."""
    figure = Figure(figsize=(max(6.0, 1.1 * len(table)), 4.2), layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(table))
    low = (table["mIoU mean"] - table["CI low"]).fillna(0)
    high = (table["CI high"] - table["mIoU mean"]).fillna(0)
    ax.errorbar(positions, table["mIoU mean"], yerr=[low, high], fmt="o", color="tab:blue",
                capsize=5, markersize=7, label="mean, 95% CI over seeds")  # fmt: skip
    done = finished(df)
    for position, name in zip(positions, table["variant"], strict=True):
        seeds = done[done[TrialKey.VARIANT] == name][MIOU]
        ax.scatter(np.full(len(seeds), position + 0.12), seeds, s=14, color="0.45", zorder=3,
                   label="one seed" if position == 0 else None)  # fmt: skip
    ax.set_xticks(positions, table["variant"], rotation=20, ha="right")
    ax.set_ylabel("validation mIoU (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return figure
