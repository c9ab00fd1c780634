"""The report of one study: `report.md` beside its figures and CSV files, and a self-contained
`report.html` (figures and CSV files embedded) that opens offline.

    python -m analysis.report study=NAME [storage=URL] [out=DIR] [reference=V1,V2[,V3]]

`storage` is an SQLAlchemy URL (default `sqlite:///outputs/studies.db`) or the path of an
Optuna journal file; `out` defaults to `outputs/reports/NAME`; `reference` is the hypervolume's
reference point, one value per objective in the study's order (default: see
`hypervolume.default_reference`). The options are also `--study NAME` etc. (`workbench.cli`);
the command is not a Hydra app: conf/ has a `study` group that `study=` would select.

A study with no feasible finished trial has no front, hypervolume or importance to report:
`write_report` then writes nothing and raises `NoFinishedTrialsError`, whose message gives the
trial counts and the failure reasons; the command prints it and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure

from analysis import document as doc
from analysis import plots
from analysis.ablation import ablation_figure, ablation_table
from analysis.heads import heads_ablation_spread, heads_verdict
from analysis.hypervolume import (
    ReferencePoint,
    default_reference,
    hypervolume_history,
)
from analysis.importance import param_importances
from analysis.load import (
    DEFAULT_STORAGE,
    HEAD,
    StorageNotFoundError,
    StudyNotFoundError,
    finished,
    frame_objectives,
    load_study,
    load_trials,
    study_names,
)
from analysis.pareto import pareto_front
from analysis.published_front import comparable_published
from analysis.retrain_verdict import linked_retrainings, retrain_table, verdict
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
from analysis.stats import madds_latency_agreement
from analysis.tables import (
    EMPTY,
    best_per_head,
    budget_levels,
    compact_genes,
    front_table,
    gene_variation,
    number,
    outcome_counts,
    reasons,
    reference_table,
    scheduled_frame,
)
from workbench.cli import CommandParser
from workbench.files import write_csv, write_text
from workbench.record import (
    GMADDS,
    KIND_ABLATION,
    LATENCY,
    MIOU,
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_PRUNED,
    StudyKey,
    TrialKey,
)
from workbench.secrets import mask_secrets
from workbench.storage import StorageError

# Genes the terminal table shows: the ones that set a network's size at a glance.
TERMINAL_GENES = (HEAD, "towers", "widths")


class NoFinishedTrialsError(ValueError):
    """The study has no feasible finished trial, so nothing to report but its failures."""


class UsageError(ValueError):
    """Arguments that do not fit (the command prints its usage)."""


def write_report(
    study: optuna.Study, out_dir: Path, *, reference: Sequence[float] | None = None
) -> Path:
    """Write the report, figures and CSV files into `out_dir`; return the path of report.md."""
    df = load_trials(study)
    if finished(df).empty:
        raise NoFinishedTrialsError(_no_result_message(study.study_name, df))
    attrs = study.user_attrs
    # Checked before anything is written: a wrong reference point leaves no half report.
    point = _reference_point(df, attrs, reference) if len(frame_objectives(df)) >= 2 else None
    out_dir.mkdir(parents=True, exist_ok=True)
    front = pareto_front(df)
    _write_csv(df, out_dir / "trials.csv")
    _write_csv(front, out_dir / "pareto.csv")

    blocks: list[doc.Block] = [
        doc.Heading(f"Study `{study.study_name}`", level=1),
        doc.Paragraph(_summary(df, front, attrs)),
        doc.Heading("What was run"),
        doc.Table(_what_was_run(df, attrs)),
        *_outcomes(df),
        *_front_section(df, front, attrs, out_dir),
    ]
    if attrs.get(StudyKey.KIND) != KIND_ABLATION and not front.empty:
        blocks += [
            doc.Paragraph("Take a front trial out (genes YAML for `experiments.train`):"),
            _export_commands(study.study_name, front, attrs),
        ]
    if attrs.get(StudyKey.SCHEDULE):
        blocks += _schedule_section(df, attrs, out_dir)
    if StudyKey.RETRAIN_OF in attrs:
        blocks += _retrain_section(df, attrs, out_dir)
    elif attrs.get(StudyKey.KIND) == KIND_ABLATION and StudyKey.ABLATION in attrs:
        blocks += _ablation_section(df, attrs, out_dir)
    else:
        blocks += _retrained_section(study)
    if point is not None:
        blocks += _hypervolume_section(df, point, out_dir)
    if _has_values(df, HEAD, MIOU, GMADDS):
        blocks += _heads_section(df, attrs, out_dir, heads_ablation_spread(study))
    if _has_values(df, LATENCY, GMADDS):
        blocks += _latency_section(df, out_dir)
    blocks += _importance_section(study, df, out_dir)
    blocks += [
        doc.Heading("Files"),
        doc.Attachment(out_dir / "trials.csv", "every trial: state, objectives, genes, attributes"),
        doc.Attachment(out_dir / "pareto.csv", "the trials on the Pareto front, same columns"),
    ]
    markdown = out_dir / "report.md"
    write_text(markdown, doc.to_markdown(blocks))
    write_text(out_dir / "report.html", doc.to_html(blocks, title=f"Study {study.study_name}"))
    return markdown


def format_front(df: pd.DataFrame) -> str:
    """The Pareto front of a trials frame (`load.load_trials`) as a short terminal table."""
    front = pareto_front(df)
    if front.empty:
        return "no feasible finished trial: no Pareto front"
    return doc.text_table(front_table(front, TERMINAL_GENES))


# ------------------------------------------------------------------------------------ sections
def _summary(df: pd.DataFrame, front: pd.DataFrame, attrs: Mapping[str, Any]) -> str:
    names = ", ".join(f"{o.name} ({o.direction})" for o in frame_objectives(df))
    return (
        f"A {attrs.get(StudyKey.KIND, 'study')} on {_dataset_text(attrs)} over {names}: "
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
        "input size": _size_text(attrs.get(StudyKey.INPUT_SIZE)),
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
    for status, column, title in (
        (STATUS_FAILED, TrialKey.FAIL_REASON, "Why trials failed"),
        (STATUS_PRUNED, TrialKey.PRUNE_REASON, "Why trials were pruned"),
    ):
        lines = reasons(df, status, column)
        if lines:
            blocks += [doc.Paragraph(title + ":"), doc.Bullets(tuple(lines))]
    return blocks


def _front_section(
    df: pd.DataFrame, front: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path
) -> list[doc.Block]:
    *first, last = [o.name for o in frame_objectives(df)]
    names = f"{', '.join(first)} and {last}" if first else last
    blocks: list[doc.Block] = [doc.Heading("Pareto front")]
    if _has_values(df, MIOU, GMADDS):
        # Only a Cityscapes study is comparable with the papers' Cityscapes numbers.
        cityscapes = attrs.get(StudyKey.DATASET) == "cityscapes"
        published = comparable_published() if cityscapes else ()
        figure = plots.front_figure(
            df,
            title=f"{df.attrs['study_name']}: mIoU against GMAdds",
            miou_label=_miou_label(attrs),
            budget=attrs.get(StudyKey.GMADDS_BUDGET),
            published=published,
        )
        caption = (
            "mIoU against GMAdds. Faded: dominated trials; black step line: the front of these "
            "two objectives; red ticks on the axis: over-budget trials (GMAdds only)."
        )
        if published:
            caption += (
                " Hollow markers: published numbers (DFANet paper and others), not trials "
                "of this study; their split and input size are in the legend."
            )
        blocks.append(_figure(figure, out_dir, "front", caption))
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


def _schedule_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    _write_csv(lineages(df), out_dir / "lineages.csv")
    figure = plots.rung_curves_figure(
        df,
        title=f"{df.attrs['study_name']}: mIoU through the rungs",
        miou_label=_miou_label(attrs),
    )
    return [
        doc.Heading("Multi-fidelity schedule"),
        doc.Paragraph(_schedule_text(df, attrs[StudyKey.SCHEDULE])),
        _figure(
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
    rungs = [int(steps) for steps in schedule.get("rungs") or []]
    reduction = schedule.get("reduction")
    stratify = schedule.get("stratify")
    top = top_rung(df)
    table = lineages(df)
    reached = int((table["status"] == STATUS_FINISHED).sum())
    top_steps = rung_steps(df).get(top) if top is not None else None
    spent, full = steps_spent(df)
    text = (
        f"Trials trained through rungs of {_and(f'{s}' for s in rungs)} steps; at each rung "
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


def _and(items: Iterable[str]) -> str:
    """'25, 100 and 400'."""
    *first, last = list(items) or [EMPTY]
    return f"{', '.join(first)} and {last}" if first else last


def _hypervolume_section(df: pd.DataFrame, point: ReferencePoint, out_dir: Path) -> list[doc.Block]:
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
        _figure(figure, out_dir, "hypervolume", "Hypervolume of the front after each trial."),
    ]


def _heads_section(
    df: pd.DataFrame,
    attrs: Mapping[str, Any],
    out_dir: Path,
    spread: tuple[str, float] | None,
) -> list[doc.Block]:
    trials = finished(df)
    budgets = budget_levels(trials[GMADDS].dropna())
    table, named = best_per_head(df, budgets)
    figure = plots.head_fronts_figure(
        df, title="One front per head, at equal MAdds", miou_label=_miou_label(attrs)
    )
    chosen = trials[trials["number"].isin(named)].sort_values("number")
    varying, _ = gene_variation(df)
    genes = compact_genes(chosen)[[HEAD, *(g for g in varying if g != HEAD)]]
    genes.insert(0, "trial", chosen["number"].map(lambda n: f"#{int(n)}"))
    return [
        doc.Heading("Heads at equal MAdds"),
        _figure(
            figure,
            out_dir,
            "fronts_per_head",
            "Each head's own front (step line); faded markers: all of that head's trials.",
        ),
        doc.Paragraph(
            "Best mIoU per head within each GMAdds budget (its GMAdds and trial in brackets):"
        ),
        doc.Table(table),
        doc.Paragraph(heads_verdict(df, budgets, attrs, spread)),
        doc.Paragraph("The genes of the trials named above:"),
        doc.Table(genes.reset_index(drop=True)),
    ]


def _latency_section(df: pd.DataFrame, out_dir: Path) -> list[doc.Block]:
    figure = plots.latency_figure(df, title="Measured latency against MAdds")
    rho, count = madds_latency_agreement(df)
    verdict = (
        "too few trials to say"
        if math.isnan(rho)
        else f"Spearman's rho = {rho:.2f} over {count} trials: MAdds rank these architectures "
        f"by latency {_agreement(rho)}"
    )
    return [
        doc.Heading("Latency"),
        doc.Paragraph(f"Measured latency against MAdds: {verdict}."),
        _figure(
            figure,
            out_dir,
            "latency",
            "Latency as measured by the search against GMAdds; Spearman's rho says how well "
            "MAdds ranks the architectures by speed on that device.",
        ),
    ]


def _agreement(rho: float) -> str:
    if rho >= 0.9:
        return "almost exactly"
    if rho >= 0.7:
        return "well, with exceptions"
    if rho >= 0.4:
        return "only loosely"
    return "hardly at all"


def _importance_section(study: optuna.Study, df: pd.DataFrame, out_dir: Path) -> list[doc.Block]:
    importances = param_importances(study, set(finished(df)["number"]))
    figure = plots.importance_figure(importances, "Parameter importance per objective")
    notes = [f"{i.objective}: {i.note}" for i in importances if i.note]
    blocks: list[doc.Block] = [
        doc.Heading("Parameter importance"),
        _figure(
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


# ------------------------------------------------------------------------------------- helpers
def _ablation_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    ablation = attrs[StudyKey.ABLATION]
    table = ablation_table(df, ablation)
    write_csv(table, out_dir / "ablation.csv")
    figure = ablation_figure(table, df, title=f"Ablation {ablation['name']}")
    return [
        doc.Heading("Ablation"),
        doc.Paragraph(
            f"Baseline: {ablation['baseline']}; seeds {ablation['seeds']}. mIoU is the mean over "
            "seeds with a 95% Student-t interval; the difference to the baseline is paired by "
            "seed (its interval and a two-sided paired t-test). The paper's figures are its "
            "Cityscapes val results at 1024x1024, beside ours for reference "
            f"({_dataset_text(attrs)})."
        ),
        doc.Table(table.pipe(_rounded)),
        _figure(figure, out_dir, "ablation", "mIoU per variant: mean, 95% CI and every seed"),
        doc.Attachment(out_dir / "ablation.csv", "the ablation table"),
    ]


def _retrain_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    retrain_of = attrs[StudyKey.RETRAIN_OF]
    search = retrain_of["study"]
    table = retrain_table(df, retrain_of)
    write_csv(table, out_dir / "retrain.csv")
    steps = (attrs.get(StudyKey.TRAINER) or {}).get("steps")
    figure = plots.retrain_figure(
        table, title=f"{search}: proxy against {steps}-step retraining", proxy_label="proxy mIoU"
    )
    return [
        doc.Heading(f"Retraining of `{search}`"),
        doc.Paragraph(
            f"Trials of the search `{search}` retrained with the full recipe ({steps} steps) "
            f"over seeds {attrs[StudyKey.ABLATION]['seeds']}: {verdict(table)} The proxy mIoU "
            "is the search's (after its proxy steps); the retrained one is the mean over seeds "
            "with a 95% Student-t interval; non-dominated: no other retrained trial has a "
            "higher mean mIoU for no more GMAdds. The search's report: "
            f"`../{search}/report.md`."
        ),
        doc.Table(table.pipe(_rounded)),
        _figure(figure, out_dir, "retrain", "proxy mIoU (hollow) and retrained mean (filled)"),
        doc.Attachment(out_dir / "retrain.csv", "the retraining table"),
    ]


def _retrained_section(study: optuna.Study) -> list[doc.Block]:
    """Where the search's trials were retrained (`experiments.retrain`), what each found."""
    blocks: list[doc.Block] = []
    columns = ["trial", "GMAdds", "proxy mIoU", "seeds", "retrained mIoU", "CI low", "CI high",
               "non-dominated retrained"]  # fmt: skip
    for linked in linked_retrainings(study):
        table = retrain_table(load_trials(linked), linked.user_attrs[StudyKey.RETRAIN_OF])
        if not (table["seeds"] > 0).any():
            continue
        steps = (linked.user_attrs.get(StudyKey.TRAINER) or {}).get("steps")
        blocks += [
            doc.Paragraph(
                f"`{linked.study_name}` retrained trials of this search for {steps} steps over "
                f"seeds: {verdict(table)} Its report: `../{linked.study_name}/report.md`."
            ),
            doc.Table(table[columns].pipe(_rounded)),
        ]
    return [doc.Heading("Retrained with the full recipe"), *blocks] if blocks else []


def _export_commands(study_name: str, front: pd.DataFrame, attrs: Mapping[str, Any]) -> doc.Block:
    """How to take each front trial out of the study, and to retrain the front."""
    where = _storage_argument(attrs)
    exports = [
        f"trial #{number}: `python -m analysis.export study={study_name} trial={number}{where}`"
        for number in front["number"].astype(int)
    ]
    return doc.Bullets(
        (
            *exports,
            f"every front trial (add `onnx=true` for ONNX files): `python -m analysis.export "
            f"study={study_name} trial=front{where}`",
            f"retrain the front over seeds with the full recipe: `python -m experiments.retrain "
            f"study={study_name}{where}`",
        )
    )


def _storage_argument(attrs: Mapping[str, Any]) -> str:
    """` storage=...` for a command that reads this study, or nothing for the default storage
    (the stored config has every password masked)."""
    storage = (attrs.get(StudyKey.CONFIG) or {}).get("storage") or {}
    location = storage.get("url") if storage.get("kind") == "rdb" else storage.get("path")
    return "" if location in (None, DEFAULT_STORAGE) else f" storage={location}"


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round(3)


def _figure(figure: Figure, out_dir: Path, name: str, caption: str) -> doc.Figure:
    png, svg = plots.save_figure(figure, out_dir, name)
    return doc.Figure(png, svg, caption)


def _reference_point(
    df: pd.DataFrame, attrs: Mapping[str, Any], given: Sequence[float] | None
) -> ReferencePoint:
    if given is None:
        return default_reference(df, attrs)
    objectives = frame_objectives(df)
    if len(given) != len(objectives):
        raise UsageError(
            f"the reference point needs {len(objectives)} values "
            f"({', '.join(o.name for o in objectives)}), got {len(given)}"
        )
    return ReferencePoint(tuple(map(float, given)), ("given",) * len(given))


def _has_values(df: pd.DataFrame, *columns: str) -> bool:
    trials = finished(df)
    return all(c in trials for c in columns) and trials[list(columns)].notna().all(axis=1).any()


def _dataset_text(attrs: Mapping[str, Any]) -> str:
    size = _size_text(attrs.get(StudyKey.INPUT_SIZE))
    details = ", ".join(t for t in (attrs.get(StudyKey.SPLIT), size and f"input {size}") if t)
    return f"{attrs.get(StudyKey.DATASET, 'an unnamed dataset')}" + (
        f" ({details})" if details else ""
    )


def _miou_label(attrs: Mapping[str, Any]) -> str:
    return f"mIoU (%), {_dataset_text(attrs)}"


def _size_text(size: object) -> str | None:
    if isinstance(size, list | tuple) and len(size) == 2:
        return f"{size[0]}x{size[1]}"
    return None


def _mapping_text(mapping: object) -> str | None:
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    return ", ".join(f"{key} {value}" for key, value in mapping.items())


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    """Lists and dicts (curves, per-class IoU) as JSON, so the file reads back unambiguously."""
    encoded = df.map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
    write_csv(encoded, path)


def _no_result_message(name: str, df: pd.DataFrame) -> str:
    counts = ", ".join(f"{count} {status}" for status, count in outcome_counts(df).items() if count)
    lines = [f"study {name!r} has no feasible finished trial ({counts or 'no trials'}): no report"]
    for status, column in ((STATUS_FAILED, "fail_reason"), (STATUS_PRUNED, "prune_reason")):
        lines += [f"  {status}: {line}" for line in reasons(df, status, column)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analysis.report", description=__doc__)
    parser.add_argument("--study", help="the study's name (without it: list the studies)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="SQLAlchemy URL or journal file")
    parser.add_argument("--out", type=Path, help="default: outputs/reports/<study>")
    parser.add_argument("--reference", type=_numbers, help="V1,V2[,V3]: the hypervolume's")
    args = parser.parse_args(argv)
    try:
        if args.study is None:
            names = ", ".join(study_names(args.storage)) or "none"
            parser.error(f"no study given; studies in {mask_secrets(args.storage)}: {names}")
        study = load_study(args.study, args.storage)
        out_dir = args.out or Path("outputs/reports") / study.study_name
        path = write_report(study, out_dir, reference=args.reference)
    except UsageError as error:
        parser.error(str(error))
    except (StorageNotFoundError, StorageError, StudyNotFoundError, NoFinishedTrialsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_front(load_trials(study)))
    print(f"\nreport: {path}\n        {path.with_suffix('.html')}")
    return 0


def _numbers(text: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers V1,V2[,V3], got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
