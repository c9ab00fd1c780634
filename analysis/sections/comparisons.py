"""What the trials say beyond the front: its hypervolume through the study, the heads at equal
MAdds and at equal latency, latency (measured or predicted) against MAdds, and which genes
matter for each objective."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from analysis import document as doc
from analysis import plots
from analysis.costs import LATENCY_COST, MADDS_COST, Cost, latency_text, recorded_costs
from analysis.heads import heads_leaders, heads_verdict
from analysis.hypervolume import ReferencePoint, hypervolume_history
from analysis.importance import param_importances
from analysis.load import HEAD, finished, frame_objectives
from analysis.sections.common import (
    figure_block,
    figure_name,
    has_values,
    joined_with_and,
    miou_label,
)
from analysis.stats import madds_latency_agreement
from analysis.tables import best_per_head, budget_levels, compact_genes, gene_variation
from workbench.record import LATENCY, MIOU


def hypervolume_section(df: pd.DataFrame, point: ReferencePoint, out_dir: Path) -> list[doc.Block]:
    objectives = frame_objectives(df)
    history = hypervolume_history(df, point.values)
    figure = plots.hypervolume_figure(
        history, point, objectives, title=f"{df.attrs['study_name']}: hypervolume by trial"
    )
    return [
        doc.Heading("Hypervolume"),
        doc.Paragraph(
            f"Hypervolume of the front: {history.iloc[-1]:.4g}, against the reference point "
            f"{point.describe(objectives)}. Only points better than the reference in every "
            "objective count."
        ),
        figure_block(figure, out_dir, "hypervolume", "Hypervolume of the front after each trial."),
    ]


def heads_section(
    df: pd.DataFrame,
    attrs: Mapping[str, Any],
    out_dir: Path,
    spread: tuple[str, float] | None,
) -> list[doc.Block]:
    """The heads at equal MAdds and, when the trials have a latency, at equal latency too: the
    same fronts and table against either cost; the verdict on the seed spread and the training
    budget is said once, under MAdds."""
    at_latency = has_values(df, HEAD, MIOU, LATENCY)
    budgets = _budgets(df, MADDS_COST)
    blocks, named = _heads_at_equal(df, attrs, out_dir, MADDS_COST, budgets)
    blocks.append(doc.Paragraph(heads_verdict(df, budgets, attrs, spread)))
    if at_latency:
        budgets = _budgets(df, LATENCY_COST)
        latency_blocks, latency_named = _heads_at_equal(df, attrs, out_dir, LATENCY_COST, budgets)
        blocks += [*latency_blocks, doc.Paragraph(heads_leaders(df, budgets, LATENCY_COST))]
        named = sorted({*named, *latency_named})
    trials = finished(df)
    chosen = trials[trials["number"].isin(named)].sort_values("number")
    varying, _ = gene_variation(df)
    genes = compact_genes(chosen)[[HEAD, *(g for g in varying if g != HEAD)]]
    genes.insert(0, "trial", chosen["number"].map(lambda n: f"#{int(n)}"))
    return [
        doc.Heading("Heads at equal MAdds" + (" and at equal latency" if at_latency else "")),
        *blocks,
        doc.Paragraph("The genes of the trials named above:"),
        doc.Table(genes.reset_index(drop=True)),
    ]


def _budgets(df: pd.DataFrame, cost: Cost) -> list[float]:
    return budget_levels(finished(df)[cost.column].dropna())


def _heads_at_equal(
    df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path, cost: Cost, budgets: list[float]
) -> tuple[list[doc.Block], list[int]]:
    """One front per head against `cost`, and the best mIoU per head within each of its
    budgets; the trials that table names."""
    table, named = best_per_head(df, budgets, cost)
    figure = plots.head_fronts_figure(
        df,
        title=f"One front per head, at equal {cost.name}",
        miou_label=miou_label(attrs),
        cost=cost,
    )
    caption = "Each head's own front (step line); faded markers: all of that head's trials."
    shown = joined_with_and([*(c.name for c in recorded_costs(df, cost)), "trial"])
    text = f"Best mIoU per head within each {cost.name} budget (its {shown} in brackets)"
    if cost == LATENCY_COST:
        caption += f" {latency_text(df)}."
        text += f". {latency_text(df)}"
    blocks: list[doc.Block] = [
        figure_block(figure, out_dir, figure_name("fronts_per_head", cost), caption),
        doc.Paragraph(text + ":"),
        doc.Table(table),
    ]
    return blocks, named


def latency_section(df: pd.DataFrame, out_dir: Path) -> list[doc.Block]:
    figure = plots.latency_figure(df)
    rho, count = madds_latency_agreement(df)
    verdict = (
        "too few trials to say"
        if math.isnan(rho)
        else f"Spearman's rho = {rho:.2f} over {count} trials: MAdds rank these architectures "
        f"by latency {_agreement(rho)}"
    )
    return [
        doc.Heading("Latency"),
        doc.Paragraph(f"{latency_text(df)} against MAdds: {verdict}."),
        figure_block(
            figure,
            out_dir,
            "latency",
            "Each trial's latency against its GMAdds; Spearman's rho says how well MAdds ranks "
            "the architectures by speed on the device the latency is for.",
        ),
    ]


def importance_section(study: optuna.Study, df: pd.DataFrame, out_dir: Path) -> list[doc.Block]:
    importances = param_importances(study, set(finished(df)["number"]))
    figure = plots.importance_figure(importances, "Parameter importance per objective")
    notes = [f"{i.objective}: {i.note}" for i in importances if i.note]
    blocks: list[doc.Block] = [
        doc.Heading("Parameter importance"),
        figure_block(
            figure,
            out_dir,
            "importance",
            "PED-ANOVA importance of each Optuna parameter for each objective, over the "
            "feasible finished trials (what separates the best quarter from the rest).",
        ),
    ]
    if notes:
        blocks.append(doc.Bullets(tuple(notes)))
    return blocks


def _agreement(rho: float) -> str:
    if rho >= 0.9:
        return "almost exactly"
    if rho >= 0.7:
        return "well, with exceptions"
    if rho >= 0.4:
        return "only loosely"
    return "hardly at all"
