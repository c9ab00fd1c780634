"""The proxy-fidelity benchmark: its rank statistics by hand, and a tiny real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments.research.proxy_fidelity import (
    ARCHITECTURES_KEY,
    STEPS_KEY,
    main,
    noise_floor,
    rank_agreement,
)
from experiments.research.scoring import TrainingProgress
from tests.support import INPUT_SIZE, SMALL


def test_rank_agreement_by_hand() -> None:
    same = rank_agreement([10, 20, 30, 40], [1, 2, 3, 4], top_k=2)
    assert (same.kendall_tau, same.spearman_rho, same.top_k_overlap) == (1.0, 1.0, 2)
    reversed_ = rank_agreement([10, 20, 30, 40], [4, 3, 2, 1], top_k=2)
    assert (reversed_.kendall_tau, reversed_.spearman_rho, reversed_.top_k_overlap) == (-1, -1, 0)
    # One swap among four: 5 concordant pairs, 1 discordant -> tau = 4/6.
    swap = rank_agreement([1, 2, 3, 4], [1, 2, 4, 3], top_k=1)
    assert swap.kendall_tau == pytest.approx(4 / 6) and swap.top_k_overlap == 0


def test_noise_floor_is_the_mean_seed_std() -> None:
    assert noise_floor([[1.0, 3.0], [2.0, 2.0]]) == pytest.approx(math.sqrt(2) / 2)
    assert math.isnan(noise_floor([[1.0], [2.0]]))


def test_progress_counts_steps_so_that_mixed_budgets_get_an_honest_eta(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = TrainingProgress(total_steps=500)
    progress.record("dfanet_a, seed 0", steps=100, seconds=40.0, miou=0.1468)
    progress.record("dfanet_a, seed 0", steps=400, seconds=160.0, miou=0.3271)
    first, second = capsys.readouterr().err.splitlines()
    # 100 steps in 40 s: 2.5 steps/s, so the 400 left take 160 s.
    assert first == (
        "[100/500 steps] dfanet_a, seed 0: 14.68 mIoU after 100 steps in 40 s; "
        "2.50 steps/s, about 2.7 min left"
    )
    assert second.startswith("[500/500 steps]") and second.endswith("about 0.0 min left")


@pytest.mark.slow
def test_a_tiny_run_prints_the_table_and_the_agreement(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [
        f"dataset.root={synthetic_root}", *(f"dataset.{k}={v}" for k, v in SMALL.items()),
        f"input_size={INPUT_SIZE[0]}x{INPUT_SIZE[1]}", "trainer.batch_size=2",
        "trainer.eval_batch_size=6", "trainer.warmup_steps=1",
    ]  # fmt: skip
    out = tmp_path / "fidelity.md"
    code = main(["--archs", "2", "--short", "2", "--long", "4", "--seeds", "0", "1",
                 "--top-k", "2", "--out", str(out), *overrides])  # fmt: skip
    assert code == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "dfanet_a", "dfanet_b", "random 0", "random 1",
    ]  # fmt: skip
    # With two seeds each cell carries the spread the noise floor averages.
    assert all(row.count(" ± ") == 2 for row in rows[1:])
    assert "Kendall's tau" in text and "top-2 overlap" in text and "over 4 architectures" in text
    assert "noise floor" in text and "nan" not in text.split("noise floor")[1]
    # The DFA space has one head: every pair of the four is a within-head pair.
    assert "within heads (pairs of one head only, pooled), Kendall's tau" in text
    assert "over 6 pairs (95% interval" in text
    table = json.loads(out.with_suffix(".json").read_text())
    assert table[STEPS_KEY] == {"short": 2, "long": 4}
    architectures = table[ARCHITECTURES_KEY]
    assert [a["label"] for a in architectures] == ["dfanet_a", "dfanet_b", "random 0", "random 1"]
    assert {a["head"] for a in architectures} == {"dfa"}
    for architecture in architectures:
        assert len(architecture["short seeds"]) == len(architecture["long seeds"]) == 2
        mean = sum(architecture["long seeds"]) / 2
        assert architecture["long"] == pytest.approx(mean)
    printed = capsys.readouterr()
    assert "saved" in printed.out
    # A progress line per training: 4 architectures, 2 seeds, 2 budgets; 4 x 2 x (2 + 4) steps.
    lines = printed.err.splitlines()
    assert len([line for line in lines if " mIoU after " in line]) == 16
    assert lines[-1].startswith("[48/48 steps] random 1, seed 1: ")
