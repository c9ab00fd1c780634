from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis.ablation import mean_interval, paired_difference
from experiments.config import compose_config, compose_option, read_section
from experiments.study.proposers import AblationProposer, AblationSettings
from experiments.study.samplers import GridCellSampler
from tests.support import run_command, tiny_budget
from workbench.record import (
    KIND_ABLATION,
    StudyKey,
    TrialKey,
    objective_directions,
    objective_names,
)


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


def ablation_section(**overrides: Any) -> dict[str, Any]:
    """The Table 3 ablation's section as the command composes it, with `overrides`."""
    return {**compose_config("ablate", ["+ablation=table3"])["ablation"], **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"baseline": "c"}, "ablation 'table3': baseline 'c' is not a variant"),
        ({"seeds": []}, "ablation 'table3': `seeds` must be distinct integers, got ()"),
        ({"seeds": [0, 0]}, "`seeds` must be distinct integers, got (0, 0)"),
        ({"seeds": [0, "1"]}, "ablation.seeds[1] must be an int, got '1'"),
        ({"variants": {}}, "ablation 'table3': `variants` must be a non-empty mapping"),
        ({"variants": {"A x1": None}}, "ablation.variants.A x1 must be a mapping, got None"),
        ({"bases": "x"}, "ablation has unknown keys ['bases']"),
    ],
)  # fmt: skip
def test_bad_ablation_configs_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        read_section(AblationSettings, ablation_section(**overrides), "ablation")
    assert message in str(error.value)


def test_a_bad_gene_names_its_variant() -> None:
    settings = read_section(
        AblationSettings,
        ablation_section(variants={"A x1": {}, "b": {"towers": 9}}),
        "ablation",
    )
    with pytest.raises(ValueError, match="ablation 'table3', variant 'b': gene 'towers'"):
        AblationProposer.from_settings(settings, (128, 256))


def test_the_demo_profile_runs_an_ablation_on_the_built_in_data() -> None:
    """`+profile=demo` switches data, recipe, seeds and name, wherever it stands on the command
    line; the former `+ablation=NAME_demo` spelling composes the same config."""
    for ablation in ("heads", "table2", "table3", "table4"):
        full = compose_config("ablate", [f"+ablation={ablation}"])
        demo = compose_config("ablate", [f"+ablation={ablation}", "+profile=demo"])
        assert (full["dataset"]["name"], demo["dataset"]["name"]) == ("cityscapes", "synthetic")
        assert (full["ablation"]["seeds"], demo["ablation"]["seeds"]) == ([0, 1, 2], [0, 1])
        assert (full["study"]["name"], demo["study"]["name"]) == (
            f"ablation-{ablation}",
            f"ablation-{ablation}-demo",
        )
        assert demo == compose_config("ablate", ["+profile=demo", f"+ablation={ablation}"])
        assert demo == compose_config("ablate", [f"+ablation={ablation}_demo"])
        recipe = "multifidelity" if ablation == "heads" else "proxy"
        assert full["trainer"] == compose_option("trainer", f"{recipe}_cityscapes")
        assert demo["trainer"] == compose_option("trainer", f"{recipe}_demo")
    # The heads are compared at the demo study's top rung: the report's seed spread is
    # measured at the steps the demo study compares them at.
    study = compose_config("search", ["+study=demo"])
    heads = compose_config("ablate", ["+ablation=heads", "+profile=demo"])
    assert heads["trainer"] == study["trainer"]


def _write_tiny_ablation(tmp_path: Path) -> Path:
    """An ablation of its own, which `+profile=demo` runs on the built-in data, two seeds,
    as the study `ablation-tiny-demo`."""
    configs = tmp_path / "conf" / "ablation"
    configs.mkdir(parents=True)
    (configs / "tiny.yaml").write_text(
        "# @package _global_\n"
        "ablation:\n  name: tiny\n  base: backbone_b\n  baseline: one tower\n"
        "  variants:\n    one tower: {}\n    two towers: {towers: 2}\n"
    )
    return tmp_path / "conf"


TINY_CELLS = [("one tower", 0), ("one tower", 1), ("two towers", 0), ("two towers", 1)]


def _cells(study: optuna.Study) -> list[tuple[str, int]]:
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    return sorted((t.user_attrs[TrialKey.VARIANT], t.params["seed"]) for t in trials)


@pytest.mark.slow
def test_demo_ablation_runs_end_to_end(synthetic_root: Path, tmp_path: Path) -> None:
    result = run_command(
        "experiments.ablate",
        f"--config-dir={_write_tiny_ablation(tmp_path)}",
        "+ablation=tiny",
        "+profile=demo",
        *tiny_budget(synthetic_root, tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(
        study_name="ablation-tiny-demo", storage=f"sqlite:///{tmp_path}/studies.db"
    )
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert _cells(study) == TINY_CELLS
    assert study.user_attrs[StudyKey.KIND] == KIND_ABLATION
    table = pd.read_csv(tmp_path / "outputs" / "reports" / "ablation-tiny-demo" / "ablation.csv")
    assert list(table["variant"]) == ["one tower", "two towers"]
    assert list(table["seeds"]) == [2, 2]
    assert table.loc[1, "paper row"] == "Table 3: Backbone B x2"
    by_seed = {(t.user_attrs[TrialKey.VARIANT], t.params["seed"]): t.values[0] for t in trials}
    expected = ((by_seed[("two towers", 0)] - by_seed[("one tower", 0)])
                + (by_seed[("two towers", 1)] - by_seed[("one tower", 1)])) / 2  # fmt: skip
    assert table.loc[1, "diff vs baseline"] == pytest.approx(expected)
    assert "two towers" in result.stdout
    assert (tmp_path / "outputs" / "reports" / "ablation-tiny-demo" / "ablation.png").is_file()


@pytest.mark.slow
def test_an_ablation_resumes_past_a_trial_cut_before_its_cell_was_chosen(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # What a signal or a killed process between the two choices leaves: a failed trial that
    # chose its variant and no seed. Optuna's BruteForceSampler raised on every trial after it.
    storage = f"sqlite:///{tmp_path}/studies.db"
    names = objective_names(latency=False)
    study = optuna.create_study(
        study_name="ablation-tiny-demo", storage=storage, directions=objective_directions(names)
    )
    cut = study.ask()
    cut.suggest_categorical("variant", ["one tower", "two towers"])
    study.tell(cut, state=TrialState.FAIL)
    result = run_command(
        "experiments.ablate",
        f"--config-dir={_write_tiny_ablation(tmp_path)}",
        "+ablation=tiny",
        "+profile=demo",
        *tiny_budget(synthetic_root, tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="ablation-tiny-demo", storage=storage)
    assert _cells(study) == TINY_CELLS


def test_the_grid_sampler_gives_the_first_cell_nobody_holds() -> None:
    cells = [{"variant": v, "seed": s} for s in (0, 1) for v in ("a", "b")]
    study = optuna.create_study(sampler=GridCellSampler(cells))

    def choose(trial: optuna.Trial) -> tuple[str, int]:
        variant = trial.suggest_categorical("variant", ["a", "b", "c"])  # c: in no cell
        return str(variant), int(trial.suggest_categorical("seed", [0, 1]))

    held = study.ask()
    assert choose(held) == ("a", 0)  # a running trial holds its cell
    assert choose(study.ask()) == ("b", 0)
    study.tell(held, state=TrialState.FAIL)  # a failed one holds nothing: its cell is retried
    assert choose(study.ask()) == ("a", 0)
    partial = study.ask({"variant": optuna.distributions.CategoricalDistribution(["a", "b", "c"])})
    assert partial.params == {"variant": "a"}
    study.tell(partial, state=TrialState.FAIL)  # cut before its seed: no error, no cell
    assert choose(study.ask()) == ("a", 1)
    assert choose(study.ask()) == ("b", 1)
    assert choose(study.ask()) == ("a", 0)  # every cell held: the first, a repeat
    study.enqueue_trial({"variant": "c"})
    with pytest.raises(ValueError, match=re.escape("no cell with {'variant': 'c'} and 'seed'")):
        choose(study.ask())
