"""A study trained under a multi-fidelity schedule: its rungs, the architectures through them,
and how well a short rung ranks like a long one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import document as doc
from analysis import plots
from analysis.rungs import (
    RHO,
    TAU,
    first_to_top,
    lineages,
    rung_agreement,
    rung_counts,
    rung_steps,
    steps_spent,
    top_rung,
)
from analysis.sections.common import figure_block, joined_with_and, miou_label, write_frame_csv
from analysis.tables import EMPTY, number
from workbench.record import ScheduleKey, StudyKey, TrialStatus


def schedule_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    write_frame_csv(lineages(df), out_dir / "lineages.csv")
    figure = plots.rung_curves_figure(
        df,
        title=f"{df.attrs['study_name']}: mIoU through the rungs",
        miou_label=miou_label(attrs),
    )
    return [
        doc.Heading("Multi-fidelity schedule"),
        doc.Paragraph(_schedule_text(df, attrs[StudyKey.SCHEDULE])),
        figure_block(
            figure,
            out_dir,
            "rungs",
            "mIoU of each architecture at every rung it completed, one line per architecture. "
            "Solid: reached the top rung (the front's candidates); faded: stopped below it.",
        ),
        doc.Paragraph("Trials per rung (completed it; of them, promoted to the next):"),
        doc.Table(rung_counts(df).map(lambda v: EMPTY if v is None else str(v))),
        doc.Paragraph(_agreement_text(df)),
        doc.Table(_agreement_table(rung_agreement(df))),
        doc.Attachment(out_dir / "lineages.csv", "one row per architecture: its rungs' mIoU"),
    ]


def _schedule_text(df: pd.DataFrame, schedule: Mapping[str, Any]) -> str:
    rungs = [int(steps) for steps in schedule.get(ScheduleKey.RUNGS) or []]
    reduction = schedule.get(ScheduleKey.REDUCTION)
    stratify = schedule.get(ScheduleKey.STRATIFY)
    top = top_rung(df)
    table = lineages(df)
    reached = int((table["status"] == TrialStatus.FINISHED).sum())
    top_steps = rung_steps(df).get(top) if top is not None else None
    spent, full = steps_spent(df)
    text = (
        f"Trials trained through rungs of {joined_with_and(map(str, rungs))} steps; at each rung "
        f"the top 1/{reduction} of its trials (non-dominated sorting on mIoU and cost) were "
        f"promoted to the next (reduction factor {reduction}), "
        + (
            f"each {stratify} a bracket of its own (the top 1/{reduction} of each {stratify}'s "
            "trials at a rung), "
            if stratify
            else ""
        )
        + "and, once no more trials could reach a rung, its whole non-dominated front"
        + (f" and each {stratify}'s best" if stratify else "")
        + ". A promoted trial continues the checkpoint of the one below, so an architecture's "
        f"steps are spent once. The front is drawn from the top rung reached, rung {top} "
        f"({top_steps} steps): {reached} of the {len(table)} architectures reached it."
    )
    if rungs and top_steps != rungs[-1]:
        text += f" The schedule's last rung ({rungs[-1]} steps) was not reached."
    if full:
        text += (
            f" In all, {spent:,} training steps were spent: {100 * spent / full:.0f}% of the "
            f"{full:,} that training all {len(table)} architectures to {top_steps} steps takes."
        )
    return text


def _agreement_text(df: pd.DataFrame) -> str:
    row = first_to_top(df)
    caveat = (
        " The sample is the promoted trials only, biased towards the architectures that did "
        "well at the lower rung: a correlation over that narrowed range is not the proxy's "
        "agreement over the whole space (`python -m experiments.research.proxy_fidelity` "
        "measures that on chosen architectures)."
    )
    if row is None:
        return "Only one rung was reached: no agreement between rungs to measure." + caveat
    where = (
        f"between rung {row['from rung']} ({row['from steps']} steps) and the top rung "
        f"({row['to steps']} steps), over the {row['architectures']} architectures that "
        "reached both"
    )
    if math.isnan(row[TAU]):
        return f"How well a short rung ranks like a long one: {where}, {row['note']}." + caveat
    return (
        f"How well a short rung ranks like a long one: {where}: Kendall's tau "
        f"{row[TAU]:.2f}, Spearman's rho {row[RHO]:.2f}." + caveat
    )


def _agreement_table(agreement: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rungs": _arrows(agreement["from rung"], agreement["to rung"]),
            "steps": _arrows(agreement["from steps"], agreement["to steps"]),
            "architectures": agreement["architectures"].astype(str),
            TAU: agreement[TAU].map(number),
            RHO: agreement[RHO].map(number),
            "note": agreement["note"],
        }
    )


def _arrows(low: pd.Series, high: pd.Series) -> list[str]:
    return [f"{a} → {b}" for a, b in zip(low, high, strict=True)]
