"""The report's opening: one sentence on the study, what was run, the device time its trials
spent, and how its trials ended (with the reasons of those that failed or were pruned)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis import document as doc
from analysis.device_time import device_hours_text, device_time, device_time_table, runs_of_frame
from analysis.load import finished, frame_objectives
from analysis.sections.common import dataset_text, size_text
from analysis.tables import outcome_counts, reasons, scheduled_frame
from workbench.record import StudyKey, TrialKey, TrialStatus

# The trials that ended without a result, the attribute that says why, and its heading.
WHY_NOT_FINISHED = (
    (TrialStatus.FAILED, TrialKey.FAIL_REASON, "Why trials failed"),
    (TrialStatus.PRUNED, TrialKey.PRUNE_REASON, "Why trials were pruned"),
)


def overview_section(
    df: pd.DataFrame, front: pd.DataFrame, attrs: Mapping[str, Any]
) -> list[doc.Block]:
    return [
        doc.Paragraph(_summary(df, front, attrs)),
        doc.Heading("What was run"),
        doc.Table(_what_was_run(df, attrs)),
        *_device_time(df),
        *_outcomes(df),
    ]


def no_result_message(name: str, df: pd.DataFrame) -> str:
    """Why a study has no report: its trial counts and the reasons its trials did not finish."""
    counts = ", ".join(f"{count} {status}" for status, count in outcome_counts(df).items() if count)
    lines = [f"study {name!r} has no feasible finished trial ({counts or 'no trials'}): no report"]
    for status, column, _ in WHY_NOT_FINISHED:
        lines += [f"  {status}: {line}" for line in reasons(df, status, column)]
    return "\n".join(lines)


def _summary(df: pd.DataFrame, front: pd.DataFrame, attrs: Mapping[str, Any]) -> str:
    names = ", ".join(f"{o.name} ({o.direction})" for o in frame_objectives(df))
    return (
        f"A {attrs.get(StudyKey.KIND, 'study')} on {dataset_text(attrs)} over {names}: "
        f"{len(df)} trials, {len(finished(df))} feasible and finished"
        f"{' at the top rung' if scheduled_frame(df) else ''}, "
        f"{len(front)} on the Pareto front."
    )


def _what_was_run(df: pd.DataFrame, attrs: Mapping[str, Any]) -> pd.DataFrame:
    budget = attrs.get(StudyKey.GMADDS_BUDGET)
    versions = attrs.get(StudyKey.VERSIONS) or {}
    rows = {
        "kind": attrs.get(StudyKey.KIND),
        "dataset": attrs.get(StudyKey.DATASET),
        "split": attrs.get(StudyKey.SPLIT),
        "input size": size_text(attrs.get(StudyKey.INPUT_SIZE)),
        "space": attrs.get(StudyKey.SPACE),
        "sampler": attrs.get(StudyKey.SAMPLER),
        "seed": attrs.get(StudyKey.SEED),
        "GMAdds budget": "none" if budget is None else f"{float(budget):.2f}",
        "objectives": ", ".join(f"{o.name} ({o.direction})" for o in frame_objectives(df)),
        "training budget per trial": _mapping_text(attrs.get(StudyKey.TRAINER)),
        "versions": _mapping_text(versions),
    }
    return pd.DataFrame(
        {"": list(rows), "value": ["—" if v is None else str(v) for v in rows.values()]}
    )


def _device_time(df: pd.DataFrame) -> list[doc.Block]:
    times = device_time(runs_of_frame(df))
    if not times:
        return []
    return [
        doc.Heading("Device time"),
        doc.Paragraph(
            f"The trials spent {device_hours_text(times)}. Device-hours: the time each device "
            "ran at least one trial (a GPU shared by several workers counts once); "
            "trial-hours: the sum of the trials' runs, training and evaluations."
        ),
        doc.Table(device_time_table(times)),
    ]


def _outcomes(df: pd.DataFrame) -> list[doc.Block]:
    counts = outcome_counts(df)
    blocks: list[doc.Block] = [
        doc.Heading("Trials"),
        doc.Table(pd.DataFrame({"status": list(counts), "trials": list(counts.values())})),
        doc.Paragraph(
            "finished: trained and measured within the budget; infeasible: over the GMAdds "
            "budget, never trained (their mIoU is not a measurement and appears nowhere); "
            "pruned: stopped early; failed: raised an error."
            + (
                " Under the multi-fidelity schedule, finished means at the top rung reached; "
                "promoted: finished a rung and continued at the next (its continuation is its "
                "result); stopped: finished a rung below the top one and was not promoted."
                if scheduled_frame(df)
                else ""
            )
        ),
    ]
    for status, column, title in WHY_NOT_FINISHED:
        lines = reasons(df, status, column)
        if lines:
            blocks += [doc.Paragraph(title + ":"), doc.Bullets(tuple(lines))]
    return blocks


def _mapping_text(mapping: object) -> str | None:
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    return ", ".join(f"{key} {value}" for key, value in mapping.items())
