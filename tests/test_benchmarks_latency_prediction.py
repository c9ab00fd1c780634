"""The latency-prediction benchmark, run for real on a tiny space and three architectures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.benchmarks.latency_prediction import main
from search_space.latency_table.table import load_table
from tests.support import TINY_SPACE, run_main


def test_the_benchmark_builds_a_table_and_tests_it_on_held_out_networks(tmp_path: Path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(json.dumps(TINY_SPACE))  # JSON is YAML
    out = tmp_path / "bench"
    arguments = ["--build", "--space", str(space), "--input", "64x64", "--threads", "1"]
    result = run_main(main, [*arguments, "--calibration", "4", "--archs", "3", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    assert "64x64: 3 held-out networks, RMSPE" in result.stdout
    assert "Kendall's tau predicted" in result.stdout and "re-measure" in result.stdout
    rows = pd.read_csv(out / "tiny-1t.csv")
    assert len(rows) == 3 and (rows["measured_ms"] > 0).all() and (rows["remeasured_ms"] > 0).all()
    assert (out / "tiny-1t.png").stat().st_size > 0
    # Held out: none of the three is a network the table measured whole.
    table = load_table(out / "table-tiny-1t-64x64.json")
    measured = {json.dumps(n.genes, sort_keys=True) for n in table.corrections[(64, 64)].networks}
    tested = {json.dumps(json.loads(genes), sort_keys=True) for genes in rows["genes"]}
    assert not measured & tested
    # A table given instead of built: the same report from the file.
    table_file = str(out / "table-tiny-1t-64x64.json")
    again_out = str(tmp_path / "again")
    again = run_main(
        main, ["--table", table_file, "--space", str(space), "--archs", "3", "--out", again_out]
    )
    assert again.returncode == 0, again.stderr
