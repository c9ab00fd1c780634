"""The prepared GPU check, run end to end as its CPU dry run (`DEVICE=cpu QUICK=1`): every
command the GPU runs is valid and writes its table, and the summary names every part."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SCRIPT = REPO / "experiments" / "benchmarks" / "gpu_check.sh"
PARTS = ("inference", "train_512x1024", "train_shared", "train_cityscapes", "cuda_tests",
         "demo_study", "schedule_sizing")  # fmt: skip


@pytest.mark.slow
def test_the_dry_run_runs_every_part_and_writes_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check"
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "OUT": str(out), "PYTHON": sys.executable,
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    result = subprocess.run(
        [str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in (out / "summary.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| part")
    }
    logs = {part: (out / f"{part}.log").read_text() for part in rows}
    assert rows == dict.fromkeys(PARTS, "0"), logs
    for part in ("inference", "train_512x1024", "train_shared", "train_cityscapes"):
        assert list((out / part).glob("*.csv")), f"{part} wrote no table: {logs[part]}"
    assert "| dfanet_a | 1 |" in logs["inference"] and "| dfanet_b | 1 |" in logs["inference"]
    assert "Trainer x2: first step" in logs["train_shared"]
    assert re.search(r"finished 1/1 .*\| [0-9.]+ CPU-h$", logs["demo_study"], re.MULTILINE)
    # The Cityscapes part's Trainer gave the seconds per step that the sizing ran with.
    measured = re.search(r"\(Trainer\): ([0-9.]+)$", (out / "summary.md").read_text())
    assert measured and float(measured.group(1)) > 0
    assert f"--seconds-per-step {measured.group(1)}" in result.stdout
    assert "GPU-hours" in logs["schedule_sizing"]
