"""The published figures (DFANet, CVPR 2019, and a few others): reference data, read-only.

`data/published_results.csv` is the project's copy of the papers' numbers. The cost command
reads it to print our MAdds beside the paper's; the analysis overlays it on plots.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class PublishedResult:
    source: str
    table: str
    model: str
    dataset: str
    split: str
    input_size: tuple[int, int] | None
    gmadds: float | None
    params_m: float | None
    time_ms: float | None
    fps: float | None
    gpu: str
    miou: float | None
    note: str


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@cache
def published_results() -> tuple[PublishedResult, ...]:
    path = resources.files("search_space") / "data" / "published_results.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(
        PublishedResult(
            source=row["source"],
            table=row["table"],
            model=row["model"],
            dataset=row["dataset"],
            split=row["split"],
            input_size=(int(row["input_h"]), int(row["input_w"])) if row["input_h"] else None,
            gmadds=_number(row["gmadds"]),
            params_m=_number(row["params_m"]),
            time_ms=_number(row["time_ms"]),
            fps=_number(row["fps"]),
            gpu=row["gpu"],
            miou=_number(row["miou"]),
            note=row["note"],
        )
        for row in rows
    )


def find_published(table: str, model: str) -> PublishedResult:
    for row in published_results():
        if row.source.startswith("DFANet") and row.table == table and row.model == model:
            return row
    raise KeyError(f"no published DFANet row for {model!r} in {table}")
