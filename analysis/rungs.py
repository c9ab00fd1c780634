"""A multi-fidelity schedule read back: lineages, rungs and how well a short rung ranks like a
long one. Pure functions of a trials frame (`load.load_trials`).

In a scheduled study an architecture is a lineage of trials: its root trained to rung 0, each
promotion a new trial (`promoted_from`) that continued the checkpoint of the one below, one
rung further. Only the complete, feasible, non-duplicate trials (finished, promoted, stopped)
belong to a lineage: a failed promotion left its parent as the lineage's last trial.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pandas as pd

from analysis.load import HEAD, RUNG
from analysis.stats import MIN_PAIRS, kendall_tau, spearman
from analysis.tables import present
from workbench.record import (
    GMADDS,
    MIOU,
    ScheduleKey,
    StudyKey,
    TrialKey,
    TrialStatus,
)

LINEAGE_STATUSES = (TrialStatus.FINISHED, TrialStatus.PROMOTED, TrialStatus.STOPPED)
RESULTS = "results"  # a lineage's [[rung, steps, mIoU], ...], by rung
TAU = "Kendall's tau"
RHO = "Spearman's rho"


def miou_column(rung: int) -> str:
    """The column of `lineages` holding the mIoU each architecture reached at `rung`."""
    return f"mIoU rung {rung}"


def schedule_of(df: pd.DataFrame) -> dict[str, Any] | None:
    return df.attrs.get(StudyKey.SCHEDULE)


def members(df: pd.DataFrame) -> pd.DataFrame:
    """The trials that make up lineages: complete, feasible, not duplicates, with a rung."""
    return df[df["status"].isin(LINEAGE_STATUSES) & df[RUNG].notna()]


def top_rung(df: pd.DataFrame) -> int | None:
    """The highest rung any architecture reached: the rung the front is drawn from."""
    rungs = members(df)[RUNG]
    return int(rungs.max()) if len(rungs) else None


def rung_steps(df: pd.DataFrame) -> dict[int, int]:
    """Training steps of each rung: the schedule's, then what the trials recorded for rungs it
    does not name (a schedule written before this key, or a frame built without attrs)."""
    steps: dict[int, int] = {}
    schedule = schedule_of(df) or {}
    for rung, value in enumerate(schedule.get(ScheduleKey.RUNGS) or []):
        steps[rung] = int(value)
    for row in lineages(df)[RESULTS]:
        for rung, value, _ in row:
            steps.setdefault(rung, int(value))
    return dict(sorted(steps.items()))


def lineages(df: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: its root and last trial, the highest rung and steps reached,
    the last trial's status (finished at the top rung, or stopped), head, GMAdds and mIoU, the
    mIoU at every rung it completed (`miou_column`), and `results` for plotting."""
    chosen = members(df)
    roots = _roots(chosen)
    rows = [_lineage(group) for _, group in chosen.groupby(chosen["number"].map(roots))]
    rungs = sorted({rung for row in rows for rung, _, _ in row[RESULTS]})
    for row in rows:
        by_rung = {rung: miou for rung, _, miou in row[RESULTS]}
        row.update({miou_column(r): by_rung.get(r, math.nan) for r in rungs})
    columns = ["root", "last", RUNG, "steps", "status", HEAD, GMADDS, MIOU, RESULTS]
    table = pd.DataFrame(rows, columns=[*columns, *map(miou_column, rungs)])
    if HEAD not in df:
        table = table.drop(columns=HEAD)
    return table.sort_values("root", ignore_index=True)


def rung_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per rung (every rung of the schedule, reached or not): its steps, the trials that
    completed it and how many of them were promoted to the next."""
    chosen = members(df)
    rows = []
    for rung, steps in _all_rung_steps(df).items():
        at_rung = chosen[chosen[RUNG] == rung]
        rows.append(
            {
                "rung": rung,
                "steps": steps,
                "completed": len(at_rung),
                "promoted": int((at_rung["status"] == TrialStatus.PROMOTED).sum()),
            }
        )
    return pd.DataFrame(rows, columns=["rung", "steps", "completed", "promoted"])


def rung_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """For each pair of consecutive rungs reached, and for the first against the top one: how
    well the lower rung's mIoU ranks the architectures that completed both like the higher
    rung's (Kendall's tau, Spearman's rho, and how many). NaN, with a note, below 3."""
    table = lineages(df)
    steps = rung_steps(df)
    rows = []
    for low, high in _rung_pairs(sorted({int(r) for r in members(df)[RUNG]})):
        both = table[[miou_column(low), miou_column(high)]].dropna()
        x, y = both.iloc[:, 0], both.iloc[:, 1]
        tau, rho = kendall_tau(x, y), spearman(x, y)
        rows.append(
            {
                "from rung": low,
                "from steps": steps.get(low),
                "to rung": high,
                "to steps": steps.get(high),
                "architectures": len(both),
                TAU: tau,
                RHO: rho,
                "note": _agreement_note(len(both), tau),
            }
        )
    columns = ["from rung", "from steps", "to rung", "to steps", "architectures", TAU, RHO, "note"]
    return pd.DataFrame(rows, columns=columns)


def first_to_top(df: pd.DataFrame) -> pd.Series | None:
    """The row of `rung_agreement` between the first rung and the top one, if two rungs were
    reached: how well the cheapest measurement ranks like the one the front is drawn from."""
    agreement = rung_agreement(df)
    top = top_rung(df)
    row = agreement[(agreement["from rung"] == 0) & (agreement["to rung"] == top)]
    return row.iloc[0] if len(row) else None


def steps_trained(df: pd.DataFrame) -> int:
    """Training steps the study ran: each complete trial that trained (not a duplicate's copy,
    not an infeasible placeholder) from the step it resumed at (0 unless a promotion) to its
    own. A promotion whose checkpoint was missing restarted at 0 and counts in full."""
    trained = df[df["status"].isin(LINEAGE_STATUSES)]
    steps = pd.to_numeric(trained.get(TrialKey.STEPS), errors="coerce").fillna(0)
    start = trained.get(TrialKey.RESUMED_FROM_STEP)
    resumed = pd.to_numeric(start, errors="coerce").fillna(0) if start is not None else 0
    return int((steps - resumed).sum())


def steps_spent(df: pd.DataFrame) -> tuple[int, int]:
    """Training steps spent (`steps_trained`), and what training every architecture to the
    top rung would cost."""
    top = top_rung(df)
    top_steps = rung_steps(df).get(top) if top is not None else None
    if top_steps is None:
        return 0, 0  # nothing reached, or trials that never recorded their steps
    return steps_trained(df), len(lineages(df)) * top_steps


# ------------------------------------------------------------------------------------ helpers
def _roots(chosen: pd.DataFrame) -> dict[int, int]:
    """Each member's root: up through `promoted_from` while the parent is a member."""
    parents: dict[int, int] = {}
    if TrialKey.PROMOTED_FROM in chosen:
        for number, parent in zip(chosen["number"], chosen[TrialKey.PROMOTED_FROM], strict=True):
            if present(parent):
                parents[int(number)] = int(parent)
    known = set(chosen["number"].astype(int))
    roots = {}
    for number in known:
        root, seen = number, {number}
        while parents.get(root) in known and parents[root] not in seen:  # a cycle never loops
            root = parents[root]
            seen.add(root)
        roots[number] = root
    return roots


def _lineage(group: pd.DataFrame) -> dict[str, Any]:
    ordered = group.sort_values([RUNG, "number"])
    last = ordered.iloc[-1]
    # The last trial's record carries the whole lineage; the members fill any rung it lacks.
    results: dict[int, tuple[int, float]] = {}
    for rung, steps, miou in _list(last.get(TrialKey.RUNG_RESULTS)):
        results[int(rung)] = (int(steps), float(miou))
    for _, member in ordered.iterrows():
        steps = member.get(TrialKey.STEPS)
        if present(steps):
            results.setdefault(int(member[RUNG]), (int(steps), float(member[MIOU])))
    steps_reached = last.get(TrialKey.STEPS)
    if not present(steps_reached) and results:
        steps_reached = results[max(results)][0]
    return {
        "root": int(ordered.iloc[0]["number"]),
        "last": int(last["number"]),
        RUNG: int(last[RUNG]),
        "steps": int(steps_reached) if present(steps_reached) else math.nan,
        "status": last["status"],
        HEAD: last.get(HEAD),
        GMADDS: last.get(GMADDS, math.nan),
        MIOU: last[MIOU],
        RESULTS: [[rung, steps, miou] for rung, (steps, miou) in sorted(results.items())],
    }


def _all_rung_steps(df: pd.DataFrame) -> dict[int, int | None]:
    """Every rung of the schedule and every rung reached, with its steps where known."""
    steps: dict[int, int | None] = dict(rung_steps(df))
    for rung in members(df)[RUNG].astype(int):
        steps.setdefault(int(rung), None)
    return dict(sorted(steps.items()))


def _rung_pairs(reached: list[int]) -> list[tuple[int, int]]:
    pairs = list(pairwise(reached))
    if len(reached) > 2:
        pairs.append((reached[0], reached[-1]))
    return pairs


def _agreement_note(count: int, tau: float) -> str:
    if count < MIN_PAIRS:
        return f"fewer than {MIN_PAIRS} architectures completed both: no rank correlation"
    if math.isnan(tau):
        return "one rung's mIoU is the same for all: no rank correlation"
    return ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
