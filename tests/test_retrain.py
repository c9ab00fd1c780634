"""`experiments.retrain`: a real tiny study's front retrained over two seeds in a linked study of
the same storage, interrupted and resumed; its report and the search's link to it; the recipe
it picks for the data; what the analysis makes of retrained results."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis.load import load_trials
from analysis.pareto import pareto_front
from analysis.retrain_verdict import front_held, rank_agreement, retrain_table, verdict
from experiments.retrain import main as retrain_main
from experiments.retrain import retrain_config
from tests.support import (
    command_group,
    run_command,
    run_main,
    tiny_budget,
    trial_running,
    wait_until,
)
from workbench.record import GMADDS, MIOU, RetrainKey, StudyKey, TrialKey


def copied_search(tiny_search: Path, tmp_path: Path) -> Path:
    """The session's tiny search in a storage of this test's own."""
    shutil.copy(tiny_search / "studies.db", tmp_path / "studies.db")
    return tmp_path / "studies.db"


def retrain_arguments(root: Path, tmp_path: Path, database: Path) -> list[str]:
    # The tiny budget's overrides, at steps enough for a signal to land mid-trial.
    budget = [o for o in tiny_budget(root, tmp_path) if not o.startswith("storage.")]
    return [
        "study=tiny", f"storage=sqlite:///{database}", "seeds=[0,1]", *budget,
        "trainer.steps=60", "trainer.eval_every=0",
    ]  # fmt: skip


@pytest.mark.slow
def test_the_front_is_retrained_over_seeds_and_resumed_after_an_interruption(
    tiny_search: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    database = copied_search(tiny_search, tmp_path)
    url = f"sqlite:///{database}"
    front = [int(n) for n in pareto_front(load_trials(optuna.load_study(
        study_name="tiny", storage=url)))["number"]]  # fmt: skip
    arguments = retrain_arguments(synthetic_root, tmp_path, database)
    with command_group("experiments.retrain", *arguments) as process:
        # Once the trial has chosen its cell (variant, seed): an interruption mid-training.
        chosen = lambda: trial_running(database, TrialKey.VARIANT)  # noqa: E731
        wait_until(chosen, timeout=120, what="a retraining to start")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    assert process.returncode == 130

    result = run_command("experiments.retrain", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    retrain = optuna.load_study(study_name="tiny-retrain", storage=url)
    complete = retrain.get_trials(states=(TrialState.COMPLETE,))
    cells = sorted((t.user_attrs[TrialKey.VARIANT], t.user_attrs[TrialKey.SEED]) for t in complete)
    assert cells == sorted((f"#{n}", seed) for n in front for seed in (0, 1))
    assert len(retrain.get_trials(states=(TrialState.FAIL,))) == 1  # the interrupted one
    for trial in complete:
        assert trial.user_attrs[TrialKey.STEPS] == 60

    report = (tmp_path / "outputs" / "reports" / "tiny-retrain" / "report.md").read_text()
    assert "Retraining of `tiny`" in report and "the front held:" in report
    assert (tmp_path / "outputs" / "reports" / "tiny-retrain" / "retrain.png").is_file()
    search_report = (tmp_path / "outputs" / "reports" / "tiny" / "report.md").read_text()
    assert "Retrained with the full recipe" in search_report
    assert "../tiny-retrain/report.md" in search_report


def test_the_full_recipe_of_the_searchs_data_is_the_default(
    tiny_search: Path, tmp_path: Path
) -> None:
    search = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_search}/studies.db")
    trials = search.get_trials()[:2]
    config = retrain_config(search, trials, [0, 1], "sqlite:///x.db", None, [])
    assert config["trainer"]["steps"] == 400  # the demo recipe, on the built-in data
    assert config["dataset"] == search.user_attrs[StudyKey.CONFIG]["dataset"]
    assert config["storage"]["url"] == "sqlite:///x.db"
    assert config["study"]["name"] == "tiny-retrain"
    assert config["output_dir"] == search.user_attrs[StudyKey.CONFIG]["output_dir"]
    assert config["study"]["keep_checkpoints"] is True  # the networks to ship
    variants = config["ablation"]["variants"]
    assert list(variants) == ["#0", "#1"]
    assert variants["#1"] | {"input_size": [64, 128]} == trials[1].user_attrs[TrialKey.SPEC]
    moved = retrain_config(search, trials, [0], "sqlite:///x.db", "proxy_demo",
                           ["dataset.root=/elsewhere"])  # fmt: skip
    assert moved["dataset"]["root"] == "/elsewhere" and moved["trainer"]["steps"] == 80
    named = retrain_config(search, trials, [0], "sqlite:///x.db", None, [], name="tiny-heads")
    assert named["study"]["name"] == "tiny-heads"  # found by what it stores, not its name


def test_a_missing_study_or_bad_seeds_fail_before_any_work(tiny_search: Path) -> None:
    url = f"sqlite:///{tiny_search}/studies.db"
    missing = run_main(retrain_main, ["study=nope", f"storage={url}"])
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr
    seeds = run_main(retrain_main, ["study=tiny", f"storage={url}", "seeds=[0,0]"])
    assert seeds.returncode == 2 and "seeds must be distinct" in seeds.stderr


def _table(rows: list[tuple[str, float, float, bool, list[float]]]) -> pd.DataFrame:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names([MIOU, GMADDS])
    proxies = {}
    for label, gmadds, proxy, on_front, seeds in rows:
        proxies[label] = {
            RetrainKey.MIOU: proxy,
            RetrainKey.GMADDS: gmadds,
            RetrainKey.STEPS: 80,
            RetrainKey.ON_FRONT: on_front,
        }
        for seed, miou in enumerate(seeds):
            cell = {TrialKey.VARIANT: label, TrialKey.SEED: seed}
            study.add_trial(optuna.trial.create_trial(values=[miou, gmadds], user_attrs=cell))
    return retrain_table(load_trials(study), {RetrainKey.STUDY: "s", RetrainKey.TRIALS: proxies})


def test_the_front_held_counts_proxy_front_trials_still_non_dominated() -> None:
    table = _table([
        ("#1", 0.05, 12.0, True, [30.0, 32.0]),
        ("#2", 0.08, 14.0, True, [29.0, 29.0]),  # dominated once retrained: #1 is cheaper
        ("#3", 0.10, 15.0, True, [36.0, 38.0]),
        ("#4", 0.20, 13.0, False, [35.0, 35.0]),  # off the proxy front, dominated by #3
    ])  # fmt: skip
    assert list(table["trial"]) == ["#1", "#2", "#3", "#4"]
    assert table["retrained mIoU"].tolist() == [31.0, 29.0, 37.0, 35.0]
    assert table["non-dominated retrained"].tolist() == [True, False, True, False]
    assert front_held(table) == (2, 3)
    tau, rho = rank_agreement(table)
    assert tau == pytest.approx(1 / 3) and rho == pytest.approx(0.4)  # 4 of 6 pairs agree
    assert verdict(table).startswith(
        "the front held: 2 of 3; non-dominated after retraining: #1, #3"
    )
