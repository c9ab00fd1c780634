"""Tables, text rendering and the small statistics behind the reports."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.document import Attachment, Bullets, Heading, Paragraph, Table, to_html, to_markdown
from analysis.stats import spearman
from analysis.tables import budget_levels, compact_genes, reasons
from workbench.record import TrialKey, TrialStatus


def test_spearman_matches_hand_computed_ranks() -> None:
    x = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # Ranks [1, 3, 2, 4, 5] and, with a tie, [1, 2.5, 2.5, 4, 5]: Pearson's r of the ranks is
    # 9.5 / sqrt(10 * 9.5), by hand.
    y = pd.Series([10.0, 20.0, 20.0, 30.0, 40.0])
    expected = 9.5 / math.sqrt(10 * 9.5)
    assert spearman(pd.Series([1.0, 3.0, 2.0, 4.0, 5.0]), y) == pytest.approx(expected)
    assert math.isnan(spearman(x[:2], x[:2]))
    assert math.isnan(spearman(x, pd.Series([1.0] * 5)))


def test_budget_levels_are_round_and_admit_a_trial() -> None:
    assert budget_levels(pd.Series([0.3, 0.9, 4.2])) == [0.5, 1.0, 2.0]
    assert budget_levels(pd.Series([0.11, 0.5, 9.0]), count=2) == [0.5, 5.0]
    assert budget_levels(pd.Series([1.5, 1.5])) == []


def test_compact_genes_join_lists_and_blank_other_heads_genes() -> None:
    df = pd.DataFrame(
        {
            "widths.0": [32, 48],
            "widths.1": [64, 96],
            "widths.2": [128, 192],
            "head": ["dfa", "aspp"],
            "decoder_channels": [32, 32],
            "aspp_channels": [128, 64],
            "fc_attention": [True, False],
        }
    )
    genes = compact_genes(df)
    assert genes["widths"].tolist() == ["32/64/128", "48/96/192"]
    assert genes["decoder_channels"].tolist() == ["32", ""]
    assert genes["aspp_channels"].tolist() == ["", "64"]
    assert genes["fc_attention"].tolist() == ["on", "off"]


def test_reasons_are_grouped() -> None:
    failed = TrialStatus.FAILED
    df = pd.DataFrame(
        {
            "number": [0, 1, 2, 3],
            "status": [failed, failed, TrialStatus.FINISHED, failed],
            TrialKey.FAIL_REASON: ["OOM", "OOM", None, None],
        }
    )
    assert reasons(df, failed, TrialKey.FAIL_REASON) == [
        "2 trials (#0, #1): OOM",
        "1 trial (#3): no reason recorded",
    ]


def test_markdown_and_html_say_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    blocks = [
        Heading("Title <1>", level=1),
        Paragraph("see `a.csv` | pipes"),
        Bullets(("one", "two")),
        Table(pd.DataFrame({"a|b": ["1", "2"]})),
        Attachment(tmp_path / "a.csv", "a file"),
    ]
    markdown = to_markdown(blocks)
    assert "# Title <1>" in markdown and "| a\\|b |" in markdown and "- two" in markdown
    assert "[`a.csv`](a.csv)" in markdown
    page = to_html(blocks, "t")
    assert "<h1>Title &lt;1&gt;</h1>" in page and "<code>a.csv</code>" in page
    assert 'href="data:text/csv;base64,eAoxCg=="' in page
