"""The tables people read: the front, the best architecture per head under budgets of MAdds or
latency, trial outcomes and their reasons. Every function returns strings ready to print or
render."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from analysis.costs import MADDS_COST, Cost, recorded_costs
from analysis.load import HEAD, finished, frame_objectives
from search_space.spec import HEAD_GENES, HEADS, gene_names
from workbench.record import (
    GMADDS,
    LATENCY,
    MIOU,
    StudyKey,
    TrialKey,
    TrialStatus,
)

# Only a study with a multi-fidelity schedule has these: elsewhere they are not even zero.
SCHEDULE_STATUSES = (TrialStatus.PROMOTED, TrialStatus.STOPPED)
EMPTY = "—"


def number(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return EMPTY
    return f"{value:.{digits}f}"


def compact_genes(df: pd.DataFrame) -> pd.DataFrame:
    """One column per gene, list genes joined with '/' (`48/96/192`), and the genes of heads
    other than the row's own left empty: the spec carries them, but they have no effect."""
    columns: dict[str, pd.Series] = {}
    for gene in gene_names():
        items = [c for c in df.columns if c.startswith(f"{gene}.") and c[len(gene) + 1 :].isdigit()]
        if gene in df.columns:
            columns[gene] = df[gene].map(_gene_value)
        elif items:
            columns[gene] = df[items].apply(
                lambda row: "/".join(_gene_value(v, in_list=True) for v in row if present(v)),
                axis=1,
            )
    genes = pd.DataFrame(columns, index=df.index)
    if HEAD in genes:
        for head, owned in HEAD_GENES.items():
            for gene in set(owned) & set(genes.columns):
                genes.loc[df[HEAD].notna() & (df[HEAD] != head), gene] = ""
    return genes


def gene_variation(df: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Among the finished trials: the genes that took more than one value, and the value of
    each of the others (fixed by the space, or never moved by the sampler)."""
    genes = compact_genes(finished(df))
    varying: list[str] = []
    fixed: dict[str, str] = {}
    for gene in genes.columns:
        values = genes[gene].replace("", pd.NA).dropna()
        if values.nunique() > 1:
            varying.append(gene)
        elif len(values):
            fixed[gene] = str(values.iloc[0])
    return varying, fixed


def front_table(front: pd.DataFrame, genes: Sequence[str]) -> pd.DataFrame:
    """Trial, paper design, the genes asked for (head first), then the measurements, and under
    a multi-fidelity schedule the training steps each trial reached."""
    compact = compact_genes(front)
    table = pd.DataFrame(index=front.index)
    table["trial"] = front["number"].map(lambda n: f"#{int(n)}")
    if TrialKey.REFERENCE in front:
        table["paper design"] = front[TrialKey.REFERENCE].map(lambda r: r if present(r) else "")
    for gene in sorted(genes, key=lambda g: g != HEAD):
        if gene in compact:
            table[gene] = compact[gene]
    table = pd.concat([table, _measurements(front)], axis=1)
    if scheduled_frame(front):
        table["steps"] = front.get(TrialKey.STEPS, pd.Series(index=front.index)).map(
            lambda s: str(int(s)) if present(s) else EMPTY
        )
    return table.reset_index(drop=True)


def reference_table(df: pd.DataFrame, front: pd.DataFrame) -> pd.DataFrame:
    """Where the paper's own designs (enqueued first) landed in this study."""
    if TrialKey.REFERENCE not in df:
        return pd.DataFrame()
    # A design promoted through the rungs appears once: where its lineage ended.
    designs = df[df[TrialKey.REFERENCE].map(present) & (df["status"] != TrialStatus.PROMOTED)]
    table = pd.DataFrame(index=designs.index)
    table["trial"] = designs["number"].map(lambda n: f"#{int(n)}")
    table["paper design"] = designs[TrialKey.REFERENCE]
    table["status"] = designs["status"]
    table["on the front"] = designs["number"].isin(front["number"]).map({True: "yes", False: "no"})
    return pd.concat([table, _measurements(designs)], axis=1).reset_index(drop=True)


def _measurements(trials: pd.DataFrame) -> pd.DataFrame:
    """The study's objectives, then mIoU, GMAdds, parameters and latency when recorded."""
    names = [o.name for o in frame_objectives(trials)]
    names += [n for n in (MIOU, GMADDS) if n not in names]
    table = pd.DataFrame(index=trials.index)
    for name in names:
        if name in trials:
            table[name] = trials[name].map(number)
    if TrialKey.N_PARAMS in trials:
        table["params (M)"] = (pd.to_numeric(trials[TrialKey.N_PARAMS], errors="coerce") / 1e6).map(
            number
        )
    if LATENCY in trials and LATENCY not in table and trials[LATENCY].notna().any():
        table[LATENCY] = trials[LATENCY].map(number)
    return table


def budget_levels(gmadds: pd.Series, count: int = 3) -> list[float]:
    """Up to `count` round budgets (1-2-5 series) that admit at least one trial and are below
    the most expensive one; the table adds 'any budget' after them."""
    low, high = float(gmadds.min()), float(gmadds.max())
    if not low > 0:
        return []
    exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    levels = [m * 10.0**e for e in exponents for m in (1, 2, 5) if low <= m * 10.0**e < high]
    if len(levels) <= count:
        return levels
    step = len(levels) / count
    return [levels[round(step * (i + 1)) - 1] for i in range(count)]


def best_per_head(
    df: pd.DataFrame, budgets: Sequence[float], cost: Cost = MADDS_COST
) -> tuple[pd.DataFrame, list[int]]:
    """Rows: budgets of `cost` (then 'any'); columns: heads; cells: the best mIoU within the
    budget, its costs (`cost` first) and trial. Also returns the trial numbers named, to list
    their genes."""
    trials = finished(df).dropna(subset=[MIOU, cost.column])
    shown = recorded_costs(df, cost)
    heads = [h for h in HEADS if h in set(trials[HEAD])] + sorted(
        set(trials[HEAD].dropna()) - set(HEADS)
    )
    rows: list[dict[str, str]] = []
    named: list[int] = []
    for budget in [*budgets, math.inf]:
        label = "any" if math.isinf(budget) else f"≤ {cost.budget_text(budget)}"
        row = {f"{cost.name} budget": label}
        for head in heads:
            fitting = trials[(trials[HEAD] == head) & (trials[cost.column] <= budget)]
            if fitting.empty:
                row[head] = EMPTY
                continue
            best = fitting.sort_values([MIOU, cost.column], ascending=[False, True]).iloc[0]
            costs = ", ".join(
                c.value_text(best[c.column]) for c in shown if present(best[c.column])
            )
            row[head] = f"{best[MIOU]:.2f} ({costs}, #{int(best['number'])})"
            named.append(int(best["number"]))
        rows.append(row)
    return pd.DataFrame(rows), sorted(set(named))


def outcome_counts(df: pd.DataFrame) -> dict[TrialStatus, int]:
    counts = df["status"].value_counts()
    scheduled = scheduled_frame(df)
    return {
        status: int(counts.get(status, 0))
        for status in TrialStatus
        if scheduled or status not in SCHEDULE_STATUSES
    }


def scheduled_frame(df: pd.DataFrame) -> bool:
    """Whether the trials trained under a multi-fidelity schedule (they record their rung)."""
    return bool(df.attrs.get(StudyKey.SCHEDULE)) or (
        TrialKey.RUNG in df and df[TrialKey.RUNG].notna().any()
    )


def reasons(df: pd.DataFrame, status: TrialStatus, column: str) -> list[str]:
    """Identical reasons grouped: '2 trials (#3, #7): CUDA out of memory'."""
    trials = df[df["status"] == status]
    if trials.empty:
        return []
    text = trials[column] if column in trials else pd.Series(index=trials.index, dtype=object)
    text = text.map(lambda r: str(r) if present(r) else "no reason recorded")
    lines = []
    for reason, group in trials.groupby(text, sort=False):
        numbers = ", ".join(f"#{int(n)}" for n in sorted(group["number"]))
        count = len(group)
        lines.append(f"{count} trial{'s' if count > 1 else ''} ({numbers}): {reason}")
    return lines


def present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _gene_value(value: object, in_list: bool = False) -> str:
    if not present(value):
        return ""
    if isinstance(value, bool):
        if in_list:
            return "1" if value else "0"
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        # Columns with gaps (a gene absent from some trials) hold ints as floats.
        return str(int(value))
    return str(value)
