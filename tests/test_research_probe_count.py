"""How the probes' estimate shrinks with their number: draws and errors on a hand-made table whose
within-bracket tau and expected errors are computed by hand, the command on its JSON, and the
Markdown of an older proxy_fidelity run read back with its heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.probe_fidelity import Measured
from experiments.config import compose_option
from experiments.research.probe_count import (
    draw_probes,
    error_by_count,
    main,
    probes_per_bracket,
    read_json_table,
    read_markdown_table,
    recommended,
    supported,
    table_agreement,
)
from experiments.research.proxy_fidelity import ARCHITECTURES_KEY, sample_members
from search_space.cost import count_madds
from search_space.space import load_space

# Bracket a: four architectures, one pair of them (the last two) swapped at the top; bracket b:
# two, swapped. Within-bracket pairs: a's 6 (5 alike, 1 not) and b's 1 (not): tau = 3/7.
TABLE = [
    Measured("a0", "a", 1, 1),
    Measured("a1", "a", 2, 2),
    Measured("a2", "a", 3, 4),
    Measured("a3", "a", 4, 3),
    Measured("b0", "b", 1, 2),
    Measured("b1", "b", 2, 1),
]


def test_probes_go_in_pairs_to_the_brackets_in_turn() -> None:
    assert probes_per_bracket(2, ["a", "b"]) == {"a": 2, "b": 0}
    assert probes_per_bracket(6, ["a", "b"]) == {"a": 4, "b": 2}
    assert supported(TABLE, 6) and not supported(TABLE, 8)  # b holds two, not four
    with pytest.raises(ValueError, match="even count of 2 or more, got 3"):
        probes_per_bracket(3, ["a", "b"])


def test_draws_are_seeded_and_stay_in_their_brackets() -> None:
    first = draw_probes(TABLE, 4, np.random.default_rng(7))
    assert first == draw_probes(TABLE, 4, np.random.default_rng(7))
    assert sorted(p.bracket for p in first) == ["a", "a", "b", "b"]
    assert len(set(first)) == 4


def test_errors_by_count_against_the_hand_computed_ones() -> None:
    assert table_agreement(TABLE).tau == pytest.approx(3 / 7)
    errors = error_by_count(TABLE, [2, 4, 6, 8], draws=1500, seed=0)
    assert [e.probes for e in errors] == [2, 4, 6]
    two, four, six = errors
    # Two probes, both in a: one of its 6 pairs, tau 1 (5 of them) or -1: E|error| = 5/7.
    assert two.mean_abs_error == pytest.approx(5 / 7, abs=0.03) and two.mean_pairs == 1
    # Four: a pair of a and b's pair (always swapped): tau 0 (5 in 6) or -1: E|error| = 25/42.
    assert four.mean_abs_error == pytest.approx(25 / 42, abs=0.03) and four.mean_pairs == 2
    # Six: the whole table every time.
    assert (six.mean_abs_error, six.coverage, six.mean_pairs) == (0.0, 1.0, 7)
    assert recommended(errors, tolerance=0.25) == 6
    assert recommended(errors, tolerance=0.0) is None


def test_the_command_prints_the_table_and_saves_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "fidelity.json"
    rows = [{"label": m.name, "head": m.bracket, "gmadds": 0.1, "short": m.first, "long": m.top}
            for m in TABLE]  # fmt: skip
    table.write_text(json.dumps({ARCHITECTURES_KEY: rows}))
    plot = tmp_path / "count.png"
    code = main(["--table", str(table), "--counts", "2", "4", "6", "8", "--draws", "200",
                 "--plot", str(plot)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "6 architectures (a 4, b 2); within-bracket tau of the whole table 0.43 over 7" in out
    assert "| 6 | 100% | 0.000 | 100% | 7.0 |" in out
    assert "its error is understated" in out  # 4 and 6 of 6 architectures
    assert "left out (some bracket holds fewer architectures than they draw): [8]" in out
    assert "recommended: 6 probes" in out
    assert plot.stat().st_size > 1000


def test_bad_tables_and_counts_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "bad.json"
    table.write_text(json.dumps({ARCHITECTURES_KEY: [{"label": "x", "short": 1.0}]}))
    with pytest.raises(SystemExit):
        main(["--table", str(table)])
    with pytest.raises(ValueError, match="expected proxy_fidelity's JSON"):
        read_json_table(table)
    with pytest.raises(ValueError, match="even count"):
        error_by_count(TABLE, [2, 5], draws=1, seed=0)


def test_an_older_markdown_table_gets_its_heads_back(tmp_path: Path) -> None:
    space = load_space(compose_option("space", "heads")).with_fixed({"input_size": [128, 256]})
    members = sample_members(space, 1, 0)
    lines = [
        "| architecture | GMAdds @ 128x256 | mIoU, 20 steps | mIoU, 180 steps |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {count_madds(spec).gmadds:.3f} | {5 + i}.00 ± 0.50 | {20 - i}.25 |"
        for i, (label, spec) in enumerate(members)
    ]
    path = tmp_path / "fidelity.md"
    path.write_text("\n".join(lines) + "\n\nKendall's tau ...\n")
    table = read_markdown_table(path, "heads", 0)
    assert [(m.name, m.bracket) for m in table] == [(label, spec.head) for label, spec in members]
    assert (table[0].first, table[0].top) == (5.0, 20.25)
    # Another seed draws other random members, whose GMAdds do not match the table's.
    with pytest.raises(ValueError, match="--sampler-seed 1 draws: pass the run's"):
        read_markdown_table(path, "heads", 1)
