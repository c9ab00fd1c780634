"""A study's settings (objectives, latency, budgets) and its multi-objective early stopping,
on a real SQLite storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import IntDistribution

from experiments.config import compose_config
from experiments.study.early_stopping import EarlyStoppingConfig, MultiObjectiveStopper
from experiments.study.settings import LatencyMeasurement, StudySettings
from workbench.record import GMADDS, LATENCY, MIOU, TrialKey


def study_section(**overrides: Any) -> dict[str, Any]:
    """The demo study's `study:` section as the command composes it, with `overrides`."""
    return {**compose_config("search", ["+study=demo"])["study"], **overrides}


def test_objectives_follow_the_latency_settings() -> None:
    plain = StudySettings.from_dict(study_section())
    assert plain.objective_names == [MIOU, GMADDS]
    assert plain.directions == ["maximize", "minimize"]
    assert plain.measures_latency  # the demo records it

    three = StudySettings.from_dict(study_section(latency_objective=True))
    assert three.objective_names == [MIOU, GMADDS, LATENCY]
    assert three.directions == ["maximize", "minimize", "minimize"]

    budget = StudySettings.from_dict(study_section(latency_budget_ms=12))
    assert budget.objective_names == [MIOU, GMADDS]
    assert budget.latency_budget_ms == 12.0

    how = {"measure": False, "source": "measure", "table": None, "batch": 4, "fast_path": True,
           "dtype": "fp32"}  # fmt: skip
    unmeasured = StudySettings.from_dict(study_section(latency=how))
    assert unmeasured.latency == LatencyMeasurement(
        measure=False, source="measure", table=None, batch=4, fast_path=True, dtype="fp32"
    )
    assert not unmeasured.measures_latency


def test_the_input_size_is_spelled_hxw_or_a_list() -> None:
    assert StudySettings.from_dict(study_section(input_size="512x1024")).input_size == (512, 1024)
    assert StudySettings.from_dict(study_section(input_size=[64, 128])).input_size == (64, 128)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"latency_budget_ms": 0}, "study.latency_budget_ms must be > 0, got 0.0"),
        ({"latency": {"measure": True, "source": "measure", "table": None, "batch": 0,
                      "fast_path": True, "dtype": "fp32"}},
         "study.latency.batch must be >= 1, got 0"),
        ({"latency": {"measure": True, "source": "measure", "table": None, "batch": 1,
                      "fast_path": True, "dtype": "int8"}},
         "study.latency.dtype must be one of"),
        ({"latency": {"measure": True, "source": "guess", "table": None, "batch": 1,
                      "fast_path": True, "dtype": "fp32"}},
         "study.latency.source must be one of ['measure', 'table'], got 'guess'"),
        ({"latency": {"measure": True, "repeats": 3}},
         "study.latency has unknown keys ['repeats']"),
        ({"n_workers": 0}, "study.n_workers must be >= 1, got 0"),
        ({"n_trails": 5}, "study has unknown keys ['n_trails']"),
        ({"input_size": "512"}, "study.input_size: expected an input size as HxW"),
        ({"n_trials": "abc"}, "study.n_trials must be an int, got 'abc'"),
        ({"keep_checkpoints": "yes"}, "study.keep_checkpoints must be true or false, got 'yes'"),
        ({"gmadds_budget": "low"}, "study.gmadds_budget must be null or a number, got 'low'"),
        ({"reference_designs": "dfanet_a"}, "study.reference_designs must be a list"),
        ({"schedule": {"enabled": "no", "reduction": 3, "min_steps": 20, "stratify": None,
                       "references_to_top": True, "probes": 2}},
         "study.schedule.enabled must be true or false, got 'no'"),
        ({"schedule": {"enabled": True, "reduction": 3, "min_steps": 20, "stratify": None,
                       "references_to_top": True, "probes": -2}},
         "study.schedule.probes must be >= 0, got -2"),
        ({"schedule": {"enabled": True, "reduction": 3, "min_steps": 20, "stratify": None,
                       "references_to_top": True, "probes": 3}},
         "study.schedule.probes must be even, got 3: probes are compared in pairs"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_field(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        StudySettings.from_dict(study_section(**values))
    assert message in str(error.value)


# ------------------------------------------------------------------------- early stopping
def finished_trial(
    number: int, miou_at_40: float, *, gmadds: float, latency_ms: float
) -> optuna.trial.FrozenTrial:
    costs = {TrialKey.GMADDS: gmadds, TrialKey.LATENCY_MS: latency_ms}
    return optuna.trial.create_trial(
        params={"x": number},
        distributions={"x": IntDistribution(0, 100)},
        values=[miou_at_40 + 5, gmadds],
        user_attrs={TrialKey.CURVE: [[20, miou_at_40 - 5], [40, miou_at_40]], **costs},
    )


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    """Four finished trials at 1 GMAdds and 10 ms; one costlier; one infeasible."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/s.db", directions=["maximize", "minimize"]
    )
    for number, miou in enumerate((30.0, 31.0, 32.0, 33.0)):
        study.add_trial(finished_trial(number, miou, gmadds=1.0, latency_ms=10.0))
    study.add_trial(finished_trial(4, 50.0, gmadds=3.0, latency_ms=10.0))
    infeasible = finished_trial(5, 50.0, gmadds=0.5, latency_ms=1.0)
    infeasible.set_user_attr(TrialKey.INFEASIBLE, True)
    study.add_trial(infeasible)
    return study


def stopper(study: optuna.Study, costs: dict[str, float], **config: Any) -> MultiObjectiveStopper:
    settings = {"enabled": True, "min_dominating": 3, "margin": 0.0, "min_step": 0, **config}
    return MultiObjectiveStopper(EarlyStoppingConfig(**settings), study, costs)


def test_a_trial_beaten_by_enough_cheaper_trials_stops(study: optuna.Study) -> None:
    reason = stopper(study, {TrialKey.GMADDS: 1.0}).reason_to_stop(40, 20.0)
    assert reason is not None
    assert "beaten by 4 finished trials" in reason and "#0, #1, #2, #3" in reason
    assert "#4" not in reason and "#5" not in reason  # costlier; infeasible


def test_only_trials_that_cost_no_more_count(study: optuna.Study) -> None:
    # At 0.9 GMAdds every finished trial costs more: nothing can dominate this one.
    assert stopper(study, {TrialKey.GMADDS: 0.9}).reason_to_stop(40, 20.0) is None
    # With latency an objective, a faster trial is not dominated by slower ones.
    faster = {TrialKey.GMADDS: 5.0, TrialKey.LATENCY_MS: 9.0}
    assert stopper(study, faster).reason_to_stop(40, 20.0) is None
    assert stopper(study, faster | {TrialKey.LATENCY_MS: 10.0}).reason_to_stop(40, 20.0)


def test_margin_step_and_switch(study: optuna.Study) -> None:
    costs = {TrialKey.GMADDS: 1.0}
    # 31.5: beaten by two trials only (32, 33), fewer than min_dominating.
    assert stopper(study, costs).reason_to_stop(40, 31.5) is None
    # A margin of 10 points: 20 + 10 is beaten by 31, 32, 33 only: still three.
    assert stopper(study, costs, margin=10.0).reason_to_stop(40, 20.0)
    assert stopper(study, costs, margin=12.0).reason_to_stop(40, 20.0) is None
    assert stopper(study, costs, min_step=50).reason_to_stop(40, 0.0) is None
    assert stopper(study, costs, enabled=False).reason_to_stop(40, 0.0) is None
    # No finished trial evaluated at step 30: no evidence either way.
    assert stopper(study, costs).reason_to_stop(30, 0.0) is None
