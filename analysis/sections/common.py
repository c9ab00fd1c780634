"""What several sections share: figures saved beside the report, CSV files, how the dataset is
named in captions and labels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis import document as doc
from analysis import plots
from analysis.costs import MADDS_COST, Cost
from analysis.load import finished
from analysis.tables import EMPTY
from workbench.files import write_csv
from workbench.record import StudyKey


def figure_name(base: str, cost: Cost) -> str:
    """`front` against GMAdds, `front_latency` against latency: a figure's file name."""
    return base if cost == MADDS_COST else f"{base}_{cost.name}"


def figure_block(figure: Figure, out_dir: Path, name: str, caption: str) -> doc.Figure:
    png, svg = plots.save_figure(figure, out_dir, name)
    return doc.Figure(png, svg, caption)


def write_frame_csv(df: pd.DataFrame, path: Path) -> None:
    """Lists and dicts (curves, per-class IoU) as JSON, so the file reads back unambiguously."""
    encoded = df.map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
    write_csv(encoded, path)


def has_values(df: pd.DataFrame, *columns: str) -> bool:
    """Whether some feasible finished trial has a value in every one of `columns`."""
    trials = finished(df)
    return all(c in trials for c in columns) and trials[list(columns)].notna().all(axis=1).any()


def dataset_text(attrs: Mapping[str, Any]) -> str:
    size = size_text(attrs.get(StudyKey.INPUT_SIZE))
    details = ", ".join(t for t in (attrs.get(StudyKey.SPLIT), size and f"input {size}") if t)
    return f"{attrs.get(StudyKey.DATASET, 'an unnamed dataset')}" + (
        f" ({details})" if details else ""
    )


def miou_label(attrs: Mapping[str, Any]) -> str:
    return f"mIoU (%), {dataset_text(attrs)}"


def size_text(size: object) -> str | None:
    if isinstance(size, list | tuple) and len(size) == 2:
        return f"{size[0]}x{size[1]}"
    return None


def joined_with_and(items: Iterable[str]) -> str:
    """'25, 100 and 400'."""
    *first, last = list(items) or [EMPTY]
    return f"{', '.join(first)} and {last}" if first else last
