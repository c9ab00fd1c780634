"""Report files written whole or not at all: several hosts that finish one study together each
write its report into the same folder, and a reader must never find a file half-written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary)` into a sibling with the same suffix (matplotlib and pandas read the
    format from it), then rename it over `path`: the last writer wins, whole."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_csv(table: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda temporary: table.to_csv(temporary, index=False))
