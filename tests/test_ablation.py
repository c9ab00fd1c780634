from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis.ablation import mean_interval, paired_difference
from experiments.study.proposers import AblationProposer
from tests.support import run_command, tiny_budget


def test_mean_interval_by_hand() -> None:
    # [1, 2, 3]: mean 2, sample std 1; t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3).
    mean, std, low, high = mean_interval([1.0, 2.0, 3.0], 0.95)
    assert (mean, std) == (2.0, 1.0)
    assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    assert math.isnan(mean_interval([5.0], 0.95)[2])


def test_paired_difference_by_hand() -> None:
    # Differences [2, 3] over seeds 0 and 1 (seed 7 has no pair): mean 2.5, std 1/sqrt(2),
    # t = 2.5 / (std / sqrt(2)) = 5 with 1 degree of freedom, where Student's t is Cauchy:
    # p = 1 - 2 atan(5) / pi, and t(0.975, 1) = tan(0.475 pi).
    variant = {0: 3.0, 1: 5.0, 7: 9.0}
    baseline = {0: 1.0, 1: 2.0}
    mean, low, high, p_value, pairs = paired_difference(variant, baseline, 0.95)
    assert (mean, pairs) == (2.5, 2)
    assert p_value == pytest.approx(1 - 2 * math.atan(5) / math.pi, rel=1e-9)
    half = math.tan(0.475 * math.pi) * (1 / math.sqrt(2)) / math.sqrt(2)
    assert (low, high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}, 0.95)[3] == 0.0


def test_bad_ablation_configs_are_named() -> None:
    variants = {"a": {}, "b": {"towers": 2}}
    with pytest.raises(ValueError, match="baseline 'c'"):
        AblationProposer.from_config(
            {"name": "t", "variants": variants, "seeds": [0], "baseline": "c"}, (128, 256)
        )
    with pytest.raises(ValueError, match="variant 'b': gene 'towers'"):
        AblationProposer.from_config(
            {"name": "t", "variants": {"b": {"towers": 9}}, "seeds": [0]}, (128, 256)
        )
    with pytest.raises(ValueError, match="seeds"):
        AblationProposer.from_config({"name": "t", "variants": variants, "seeds": []}, (64, 64))


@pytest.mark.slow
def test_demo_ablation_runs_end_to_end(synthetic_root: Path, tmp_path: Path) -> None:
    configs = tmp_path / "conf" / "ablation"
    configs.mkdir(parents=True)
    (configs / "tiny.yaml").write_text(
        "# @package _global_\n"
        "study:\n  name: ablation-tiny\n"
        "ablation:\n  name: tiny\n  base: backbone_b\n  baseline: one tower\n"
        "  seeds: [0, 1]\n  variants:\n    one tower: {}\n    two towers: {towers: 2}\n"
    )
    result = run_command(
        "experiments.ablate",
        f"--config-dir={tmp_path / 'conf'}",
        "+ablation=tiny",
        *tiny_budget(synthetic_root, tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(
        study_name="ablation-tiny", storage=f"sqlite:///{tmp_path}/studies.db"
    )
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted((t.user_attrs["variant"], t.params["seed"]) for t in trials) == [
        ("one tower", 0), ("one tower", 1), ("two towers", 0), ("two towers", 1),
    ]  # fmt: skip
    assert study.user_attrs["kind"] == "ablation"
    table = pd.read_csv(tmp_path / "outputs" / "reports" / "ablation-tiny" / "ablation.csv")
    assert list(table["variant"]) == ["one tower", "two towers"]
    assert list(table["seeds"]) == [2, 2]
    assert table.loc[1, "paper row"] == "Table 3: Backbone B x2"
    by_seed = {(t.user_attrs["variant"], t.params["seed"]): t.values[0] for t in trials}
    expected = ((by_seed[("two towers", 0)] - by_seed[("one tower", 0)])
                + (by_seed[("two towers", 1)] - by_seed[("one tower", 1)])) / 2  # fmt: skip
    assert table.loc[1, "diff vs baseline"] == pytest.approx(expected)
    assert "two towers" in result.stdout
    assert (tmp_path / "outputs" / "reports" / "ablation-tiny" / "ablation.png").is_file()
