"""Did the front hold? A search's chosen trials retrained with the full recipe over seeds.

`experiments.retrain` trains the chosen trials of a search as an ablation (one variant per
trial, `#N`, over seeds) in a linked study, `<search>-retrain`, in the same storage. It stores
what the search measured for each (`StudyKey.RETRAIN_OF`); this module sets that beside the
retrained mean and interval, ranks both (Kendall's tau, Spearman's rho) and says which trials
are still non-dominated in (retrained mean mIoU, GMAdds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd

from analysis.ablation import mean_interval
from analysis.load import finished
from analysis.pareto import non_dominated
from analysis.stats import kendall_tau, spearman
from workbench.record import GMADDS, MIOU, RetrainKey, StudyKey, TrialKey

RETRAIN_SUFFIX = "-retrain"
COLUMNS = (
    "trial", GMADDS, "proxy mIoU", "proxy steps", "on the proxy front", "seeds",
    "retrained mIoU", "std", "CI low", "CI high", "non-dominated retrained",
)  # fmt: skip


def retrain_study_name(search: str) -> str:
    return f"{search}{RETRAIN_SUFFIX}"


def variant_label(number: int) -> str:
    return f"#{number}"


def retrain_table(df: pd.DataFrame, retrain_of: Mapping[str, Any]) -> pd.DataFrame:
    """One row per retrained trial, cheapest first; `df` is the retrain study's trials frame."""
    done = finished(df)
    rows = []
    for label, proxy in retrain_of[RetrainKey.TRIALS].items():
        scores = done.loc[done[TrialKey.VARIANT] == label, MIOU].astype(float).tolist()
        mean, std, low, high = mean_interval(scores, 0.95) if scores else (math.nan,) * 4
        rows.append(
            (label, proxy[RetrainKey.GMADDS], proxy[RetrainKey.MIOU], proxy[RetrainKey.STEPS],
             proxy[RetrainKey.ON_FRONT], len(scores), mean, std, low, high)
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS[:-1])).sort_values([GMADDS, "trial"])
    trained = table["seeds"] > 0
    held = np.zeros(len(table), dtype=bool)
    if trained.any():
        points = table.loc[trained, ["retrained mIoU", GMADDS]].to_numpy(dtype=float)
        held[trained.to_numpy()] = non_dominated(points, [True, False])
    table[COLUMNS[-1]] = held
    return table.reset_index(drop=True)


def rank_agreement(table: pd.DataFrame) -> tuple[float, float]:
    """(Kendall's tau, Spearman's rho) between the proxy and the retrained mIoU; NaN when
    fewer than three trials are retrained."""
    trained = table[table["seeds"] > 0]
    proxy, retrained = trained["proxy mIoU"], trained["retrained mIoU"]
    return kendall_tau(proxy, retrained), spearman(proxy, retrained)


def front_held(table: pd.DataFrame) -> tuple[int, int]:
    """(proxy front trials still non-dominated after retraining, proxy front trials retrained)."""
    front = table[table["on the proxy front"] & (table["seeds"] > 0)]
    return int(front["non-dominated retrained"].sum()), len(front)


def verdict(table: pd.DataFrame) -> str:
    """One sentence: did the front hold, and did the ranking."""
    held, of = front_held(table)
    tau, rho = rank_agreement(table)
    ranks = (
        f"Kendall's tau {tau:.2f}, Spearman's rho {rho:.2f} between the two rankings"
        if not math.isnan(tau)
        else "too few trials retrained to rank (three are needed)"
    )
    still = ", ".join(table.loc[table["non-dominated retrained"], "trial"])
    front = f"the front held: {held} of {of}" if of else "no trial of the proxy front retrained"
    return f"{front}; non-dominated after retraining: {still or 'none'}; {ranks}."


def linked_retrainings(study: optuna.Study) -> list[optuna.Study]:
    """The retrainings of `study`'s trials stored beside it (whatever their names), by name."""
    storage = study._storage  # the same storage, whatever its URL (a password is not needed)
    return [
        optuna.load_study(study_name=summary.study_name, storage=storage)
        for summary in sorted(
            optuna.get_all_study_summaries(storage, include_best_trial=False),
            key=lambda summary: summary.study_name,
        )
        if (summary.user_attrs.get(StudyKey.RETRAIN_OF) or {}).get(RetrainKey.STUDY)
        == study.study_name
    ]
