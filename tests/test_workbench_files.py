from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.files import write_atomically, write_csv, write_text


def test_a_writer_that_fails_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    write_text(path, "the first report\n")

    def half_then_fail(temporary: Path) -> None:
        temporary.write_text("half a rep")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_text() == "the first report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no partial file left


def test_the_temporary_keeps_the_suffix_writers_read_the_format_from(tmp_path: Path) -> None:
    suffixes: list[str] = []

    def record(temporary: Path) -> None:
        suffixes.append(temporary.suffix)
        temporary.write_bytes(b"png")

    write_atomically(tmp_path / "front.png", record)
    assert suffixes == [".png"] and (tmp_path / "front.png").read_bytes() == b"png"
    write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv")
    assert pd.read_csv(tmp_path / "t.csv")["a"].tolist() == [1, 2]
