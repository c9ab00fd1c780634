"""The heads comparison is the headline: both studies search the heads space, measure every
head from their first trials, and the report says in words what the comparison shows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest

from analysis.heads import heads_verdict
from analysis.load import load_trials
from experiments.config import compose_config
from experiments.study.setup import prepare
from search_space.registry import HEAD_COMPARISON, get_arch
from search_space.spec import HEADS
from tests.support import merged, tiny_budget
from workbench.record import GMADDS, MIOU, StudyKey, TrialKey


@pytest.mark.parametrize("study", ["demo", "cityscapes"])
def test_both_studies_search_the_heads_space_from_every_heads_reference(study: str) -> None:
    config = compose_config("search", [f"+study={study}"])
    assert config["space"]["name"] == "heads"
    references = config["study"]["reference_designs"]
    assert {"dfanet_a", "dfanet_b"} <= set(references)
    # The head references are among the architectures the `--heads` cost table prices.
    assert {
        name for name in HEAD_COMPARISON if name.startswith(("aspp", "icnet", "bisenet"))
    } <= set(references)
    assert {get_arch(name).head for name in references} == set(HEADS)


def test_the_first_trials_give_every_head_its_share(synthetic_root: Path, tmp_path: Path) -> None:
    config = compose_config("search", merged("+study=demo", *tiny_budget(synthetic_root, tmp_path)))
    setup = prepare(config)
    first = setup.proposer.initial_trials()
    per_head = Counter(params["head"] for params, _ in first)
    assert per_head == {"dfa": 3, "aspp": 2, "icnet": 2, "bisenet": 2}  # DFA: three references
    assert len(first) < config["study"]["n_trials"]  # the sampler still has trials to spend
    again = prepare(config).proposer.initial_trials()
    assert again == first  # seeded: a resumed study enqueues the same draws


def _frame(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names([MIOU, GMADDS])
    for head, miou, gmadds in rows:
        study.add_trial(
            optuna.trial.create_trial(
                values=[miou, gmadds], user_attrs={TrialKey.SPEC: {"head": head}}
            )
        )
    return load_trials(study)


def test_the_verdict_names_the_leader_per_budget_and_weighs_it_against_the_spread() -> None:
    df = _frame([("dfa", 30.0, 0.05), ("icnet", 28.0, 0.04), ("bisenet", 35.0, 0.10)])
    attrs = {StudyKey.DATASET: "synthetic", StudyKey.TRAINER: {"steps": 80}}
    text = heads_verdict(df, [0.05], attrs, ("ablation-heads-demo", 1.5))
    assert "Within 0.05 GMAdds, dfa leads with 30.0 mIoU, 2.0 points above icnet" in text
    assert "at any cost, bisenet leads with 35.0 mIoU, 5.0 points above dfa" in text
    assert "standard deviation of 1.5 mIoU points" in text and "under about 3.0 points" in text
    assert "80 steps are known not to rank the heads" in text
    cityscapes = {StudyKey.DATASET: "cityscapes", StudyKey.TRAINER: {"steps": 10000}}
    unmeasured = heads_verdict(df, [], cityscapes, None)
    assert "+ablation=heads +profile=demo" in unmeasured and "known not to rank" not in unmeasured
