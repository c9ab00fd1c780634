"""The Pareto front: its figures (against GMAdds, and against latency when latency is an
objective) and table, what is known of a predicted latency's error, where the paper's own
designs landed, and how to take a front trial out of the study."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import document as doc
from analysis import plots
from analysis.costs import LATENCY_COST, latency_label, latency_text, table_error_text
from analysis.load import DEFAULT_STORAGE, frame_objectives
from analysis.published_front import comparable_published
from analysis.sections.common import (
    figure_block,
    figure_name,
    has_values,
    joined_with_and,
    miou_label,
)
from analysis.tables import front_table, gene_variation, reference_table, scheduled_frame
from workbench.record import GMADDS, KIND_ABLATION, LATENCY, MIOU, StudyKey

# What a front figure draws, whatever its cost axis.
_FRONT_MARKS = (
    "Faded: dominated trials; black step line: the front of these two objectives; red ticks on "
    "the axis: over-budget trials"
)


def front_section(
    df: pd.DataFrame, front: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path
) -> list[doc.Block]:
    names = joined_with_and(o.name for o in frame_objectives(df))
    blocks: list[doc.Block] = [doc.Heading("Pareto front")]
    if has_values(df, MIOU, GMADDS):
        blocks.append(_madds_front(df, attrs, out_dir))
    if LATENCY in (o.name for o in frame_objectives(df)) and has_values(df, MIOU, LATENCY):
        blocks.append(_latency_front(df, attrs, out_dir))
    table_error = table_error_text(df)
    if table_error is not None:
        blocks.append(doc.Paragraph(table_error))
    genes, fixed = gene_variation(df)
    blocks += [
        doc.Paragraph(
            f"The front of {names} over the feasible finished trials"
            f"{' (the top rung reached)' if scheduled_frame(df) else ''}, by GMAdds. Genes shown "
            "are the ones that varied; a head's own genes are empty in other heads' rows."
        ),
        doc.Table(front_table(front, genes)),
    ]
    designs = reference_table(df, front)
    if not designs.empty:
        blocks += [doc.Paragraph("The paper's own designs in this study:"), doc.Table(designs)]
    if fixed:
        fixed_text = ", ".join(f"{gene} {value}" for gene, value in fixed.items())
        blocks.append(doc.Paragraph(f"Genes fixed in every finished trial: {fixed_text}."))
    return blocks


def _madds_front(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> doc.Figure:
    # Only a Cityscapes study is comparable with the papers' Cityscapes numbers.
    cityscapes = attrs.get(StudyKey.DATASET) == "cityscapes"
    published = comparable_published() if cityscapes else ()
    figure = plots.front_figure(
        df,
        title=f"{df.attrs['study_name']}: mIoU against GMAdds",
        miou_label=miou_label(attrs),
        budget=attrs.get(StudyKey.GMADDS_BUDGET),
        published=published,
    )
    caption = f"mIoU against GMAdds. {_FRONT_MARKS} (GMAdds only)."
    if published:
        caption += (
            " Hollow markers: published numbers (DFANet paper and others), not trials "
            "of this study; their split and input size are in the legend."
        )
    return figure_block(figure, out_dir, "front", caption)


def _latency_front(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> doc.Figure:
    """The front against latency, for a study that optimises it (one that does not compares
    the heads at equal latency, in the heads section)."""
    budget = ((attrs.get(StudyKey.CONFIG) or {}).get("study") or {}).get("latency_budget_ms")
    figure = plots.front_figure(
        df,
        title=f"{df.attrs['study_name']}: mIoU against {latency_label(df).lower()}",
        miou_label=miou_label(attrs),
        cost=LATENCY_COST,
        budget=budget,
    )
    caption = f"mIoU against latency. {latency_text(df)}. {_FRONT_MARKS} (latency only)."
    return figure_block(figure, out_dir, figure_name("front", LATENCY_COST), caption)


def export_section(
    study_name: str, front: pd.DataFrame, attrs: Mapping[str, Any]
) -> list[doc.Block]:
    """How to take each front trial out of a search, and to retrain the front; nothing for an
    ablation (a retraining is one) or an empty front."""
    if attrs.get(StudyKey.KIND) == KIND_ABLATION or front.empty:
        return []
    where = _storage_argument(attrs)
    exports = [
        f"trial #{number}: `python -m analysis.export study={study_name} trial={number}{where}`"
        for number in front["number"].astype(int)
    ]
    commands = (
        *exports,
        f"every front trial (add `onnx=true` for ONNX files): `python -m analysis.export "
        f"study={study_name} trial=front{where}`",
        f"retrain the front over seeds with the full recipe: `python -m experiments.retrain "
        f"study={study_name}{where}`",
    )
    return [
        doc.Paragraph("Take a front trial out (genes YAML for `experiments.train`):"),
        doc.Bullets(commands),
    ]


def _storage_argument(attrs: Mapping[str, Any]) -> str:
    """` storage=...` for a command that reads this study, or nothing for the default storage
    (the stored config has every password masked)."""
    storage = (attrs.get(StudyKey.CONFIG) or {}).get("storage") or {}
    location = storage.get("url") if storage.get("kind") == "rdb" else storage.get("path")
    return "" if location in (None, DEFAULT_STORAGE) else f" storage={location}"
