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
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from analysis import document as doc
from analysis.heads import heads_ablation_spread
from analysis.hypervolume import ReferencePoint, default_reference
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
from analysis.sections.common import has_values, write_frame_csv
from analysis.sections.comparisons import (
    heads_section,
    hypervolume_section,
    importance_section,
    latency_section,
)
from analysis.sections.front import export_section, front_section
from analysis.sections.multi_fidelity import schedule_section
from analysis.sections.over_seeds import ablation_section, retrain_section, retrained_section
from analysis.sections.overview import no_result_message, overview_section
from analysis.tables import front_table
from workbench.cli import CommandParser
from workbench.files import write_text
from workbench.record import GMADDS, KIND_ABLATION, LATENCY, MIOU, StudyKey
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
    """Write the report, figures and CSV files into `out_dir`; return the path of report.md.
    Which sections a study gets, and in what order, is decided here; `analysis.sections` builds
    them."""
    df = load_trials(study)
    if finished(df).empty:
        raise NoFinishedTrialsError(no_result_message(study.study_name, df))
    attrs = study.user_attrs
    # Checked before anything is written: a wrong reference point leaves no half report.
    point = _reference_point(df, attrs, reference) if len(frame_objectives(df)) >= 2 else None
    out_dir.mkdir(parents=True, exist_ok=True)
    front = pareto_front(df)
    write_frame_csv(df, out_dir / "trials.csv")
    write_frame_csv(front, out_dir / "pareto.csv")

    blocks: list[doc.Block] = [
        doc.Heading(f"Study `{study.study_name}`", level=1),
        *overview_section(df, front, attrs),
        *front_section(df, front, attrs, out_dir),
        *export_section(study.study_name, front, attrs),
    ]
    spread = heads_ablation_spread(study)  # the seed noise floor beside it: two sections read it
    if attrs.get(StudyKey.SCHEDULE):
        blocks += schedule_section(df, attrs, out_dir, spread)
    if StudyKey.RETRAIN_OF in attrs:
        blocks += retrain_section(df, attrs, out_dir)
    elif attrs.get(StudyKey.KIND) == KIND_ABLATION and StudyKey.ABLATION in attrs:
        blocks += ablation_section(df, attrs, out_dir)
    else:
        blocks += retrained_section(study)
    if point is not None:
        blocks += hypervolume_section(df, point, out_dir)
    if has_values(df, HEAD, MIOU, GMADDS):
        blocks += heads_section(df, attrs, out_dir, spread)
    if has_values(df, LATENCY, GMADDS):
        blocks += latency_section(df, out_dir)
    blocks += importance_section(study, df, out_dir)
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
