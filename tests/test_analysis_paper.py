"""The paper's figure and the MAdds table, rebuilt from the published numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.paper import main
from analysis.published_front import comparable_published, published_front
from search_space.registry import arch_names, reference
from tests.support import exit_code


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Counting every reference architecture takes seconds: the command runs once.
    out = tmp_path_factory.mktemp("paper")
    assert main([f"out={out}"]) == 0
    return out


@pytest.mark.slow
def test_command_writes_the_files(paper_dir: Path) -> None:
    for name in ("paper.md", "madds_vs_paper.csv", "published.csv", "accuracy_vs_compute.svg"):
        assert (paper_dir / name).is_file()
    assert (paper_dir / "accuracy_vs_compute.png").stat().st_size > 1000
    published = pd.read_csv(paper_dir / "published.csv")
    assert set(published["split"]) == {"val", "test"}
    assert "Table 4: DFANet A" in (paper_dir / "paper.md").read_text()
    assert exit_code(main, ["colour=red"]) == 2


def test_every_reproducible_row_is_compared(paper_dir: Path) -> None:
    table = pd.read_csv(paper_dir / "madds_vs_paper.csv")
    assert len(table) == sum(len(reference(name).paper_rows) for name in arch_names())
    dfanet_a = table[table["paper row"] == "Table 4: DFANet A"].iloc[0]
    assert dfanet_a["our GMAdds"] == pytest.approx(3.42, abs=0.01)
    assert dfanet_a["paper GMAdds"] == 3.4
    assert dfanet_a["ratio"] == pytest.approx(3.42 / 3.4, abs=0.01)


def test_published_fronts_never_mix_splits() -> None:
    rows = comparable_published()
    flags = dict(zip((r.model + r.split for r in rows), published_front(rows), strict=True))
    # DFANet A' (test, 1.7 G) is on the test front; the val front starts at Backbone B.
    assert flags["DFANet A'test"] and flags["Backbone Bval"]
    assert not flags["ENettest"]  # 3.8 G, 57%: dominated by DFANet A' (1.7 G, 70.3%)
