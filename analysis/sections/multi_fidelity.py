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
from analysis.probe_fidelity import (
    RungFidelity,
    Sample,
    fidelity_sentence,
    pairs_within,
    plural,
    rung_fidelity,
)
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


def schedule_section(
    df: pd.DataFrame,
    attrs: Mapping[str, Any],
    out_dir: Path,
    spread: tuple[str, float] | None,
) -> list[doc.Block]:
    """The schedule, its rungs, and how well its first rung ranked like the top one: on the
    probes, the references apart, and over the promoted trials (biased); `spread` is the seed
    noise floor of an ablation beside the study (`heads.heads_ablation_spread`)."""
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
        *_fidelity_blocks(rung_fidelity(df), spread),
        doc.Paragraph(_agreement_text(df)),
        doc.Table(_agreement_table(rung_agreement(df))),
        doc.Attachment(out_dir / "lineages.csv", "one row per architecture: its rungs' mIoU"),
    ]


def _always_promoted_clause(schedule: Mapping[str, Any]) -> str:
    """Who climbs whatever their rank, as the stored schedule says (absent in studies stored
    before references and probes climbed: none then)."""
    climbers = []
    if schedule.get(ScheduleKey.REFERENCES_TO_TOP):
        climbers.append("the reference designs")
    if schedule.get(ScheduleKey.PROBES):
        climbers.append(f"the {schedule[ScheduleKey.PROBES]} probes")
    if not climbers:
        return ""
    return f"; {joined_with_and(climbers)} went on to the top rung whatever their rank"


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
        + _always_promoted_clause(schedule)
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


def _fidelity_blocks(fidelity: RungFidelity, spread: tuple[str, float] | None) -> list[doc.Block]:
    """The unbiased measure first: the probes, the seed noise floor beside them, and the
    references apart, with the table of both."""
    blocks: list[doc.Block] = [
        doc.Paragraph(
            "Did the first rung rank like the top one, in this study on this data? "
            + fidelity_sentence(fidelity)
            + _noise_text(fidelity.probes, spread)
        )
    ]
    if fidelity.references.measured or fidelity.references.short_of_top:
        blocks.append(doc.Paragraph(_references_text(fidelity.references)))
    if fidelity.probes.measured or fidelity.references.measured:
        blocks.append(doc.Table(_measured_table(fidelity)))
    return blocks


def _noise_text(probes: Sample, spread: tuple[str, float] | None) -> str:
    if spread is None:
        return (
            " No heads ablation on the same data, input size and steps is stored beside this "
            "study, so the seed noise floor is not measured here."
        )
    name, std = spread
    text = (
        f" The heads ablation `{name}` beside this study measures a seed-to-seed standard "
        f"deviation of {std:.1f} mIoU points at the top rung's steps"
    )
    pairs = probes.agreement.pairs.count if probes.agreement else 0
    if not pairs:
        return text + "."
    close = pairs_within(
        [m.top for m in probes.measured], [m.bracket for m in probes.measured], 2 * std
    )
    return text + (
        f": {close} of the {pairs} probe pairs differ by less than {2 * std:.1f} points at the "
        "top rung, an order another seed could swap, so not even a perfect first rung would "
        "order every pair alike."
    )


def _references_text(references: Sample) -> str:
    text = (
        "The reference designs are hand-picked, not a sample of the space, so they are reported "
        f"apart and never pooled with the probes: {len(references.measured)} reached the top "
        "rung"
    )
    agreement = references.agreement
    if agreement is None:
        return text + ", no two in the same bracket: no within-bracket pair."
    return text + (
        f"; over their {plural(agreement.pairs.count, 'within-bracket pair')}, Kendall's tau "
        f"{agreement.tau:.2f} ({agreement.confidence:.0%} interval {agreement.low:.2f} to "
        f"{agreement.high:.2f})."
    )


def _measured_table(fidelity: RungFidelity) -> pd.DataFrame:
    first = f"mIoU, first rung ({fidelity.first_steps} steps)"
    top = f"mIoU, top rung ({fidelity.top_steps} steps)"
    rows = [
        {
            "name": m.name,
            "kind": kind,
            "bracket": m.bracket,
            first: number(m.first),
            top: number(m.top),
        }
        for kind, sample in (("probe", fidelity.probes), ("reference", fidelity.references))
        for m in sorted(sample.measured, key=lambda m: (m.bracket, m.name))
    ]
    return pd.DataFrame(rows, columns=["name", "kind", "bracket", first, top])


def _agreement_text(df: pd.DataFrame) -> str:
    row = first_to_top(df)
    caveat = (
        " Biased: these architectures were chosen by their results (most were promoted for "
        "doing well at the rung below), so the range is narrowed to the ones that did well "
        "early and this figure is not the first rung's agreement over the space; the probes' "
        "figure above is."
    )
    if row is None:
        return "Over the promoted trials: only one rung was reached, no agreement to measure."
    where = (
        f"between rung {row['from rung']} ({row['from steps']} steps) and the top rung "
        f"({row['to steps']} steps), over the {row['architectures']} architectures that "
        "reached both"
    )
    if math.isnan(row[TAU]):
        return f"Over the promoted trials, {where}: {row['note']}." + caveat
    return (
        f"Over the promoted trials, {where}: Kendall's tau {row[TAU]:.2f}, Spearman's rho "
        f"{row[RHO]:.2f}." + caveat
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
