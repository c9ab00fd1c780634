"""What defines a study, and settings added after studies were stored: a defining key absent
from a stored definition means the value it had before it existed (`ADDED_LATER`), so stored
studies still resume; on a real SQLite storage, through the command's own `prepare` and
`start_study`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from experiments.config import compose_config
from experiments.study.identity import (
    ADDED_LATER,
    StudyMismatchError,
    check_definition,
    study_definition,
)
from experiments.study.lifecycle import start_study
from experiments.study.setup import prepare
from tests.support import tiny_search_arguments
from workbench.record import StudyKey


def definition(*overrides: str, config_name: str = "search") -> dict[str, Any]:
    return study_definition(compose_config(config_name, overrides), (64, 128), ["mIoU"], "cpu")


def without(values: dict[str, Any], *prefixes: str) -> dict[str, Any]:
    """A definition as stored before the keys under `prefixes` existed."""
    return {k: v for k, v in values.items() if not k.startswith(prefixes)}


def test_a_key_added_later_reads_as_its_old_value() -> None:
    # A study stored before schedules existed ran none; the settings of one changed nothing.
    unscheduled = definition("+study=demo", "study.schedule.enabled=false")
    check_definition(without(unscheduled, "study.schedule."), unscheduled, "demo")
    scheduled = definition("+study=demo")  # the demo study runs its schedule
    with pytest.raises(StudyMismatchError) as error:
        check_definition(without(scheduled, "study.schedule."), scheduled, "demo")
    changes = [line.strip() for line in str(error.value).splitlines() if ": stored " in line]
    assert changes == ["study.schedule.enabled: stored False, now True"]
    # An ablation stored before `retrain_of` and `base` had keys: no retraining, DFANet A.
    ablation = definition("+ablation=table3", "+profile=demo", config_name="ablate")
    check_definition(without(ablation, "ablation.retrain_of"), ablation, "ablation-table3-demo")
    assert ablation["ablation.retrain_of"] is None


def test_a_key_absent_and_not_added_later_is_a_change() -> None:
    current = definition("+study=demo")
    with pytest.raises(StudyMismatchError, match=r"trainer\.lr: stored \(not set\), now 0\.1"):
        check_definition(without(current, "trainer.lr"), current, "demo")


def test_every_key_added_later_is_a_defining_key() -> None:
    """The table names keys that the definitions hold (a renamed key would be read nowhere)."""
    defining = {
        *definition("+study=demo"),
        *definition("+study=cityscapes"),
        *definition("+ablation=heads", config_name="ablate"),
    }
    assert set(ADDED_LATER) <= defining


def test_a_study_stored_before_a_setting_existed_resumes(
    synthetic_root: Path, tmp_path: Path
) -> None:
    arguments = tiny_search_arguments(synthetic_root, tmp_path)
    study = start_study(prepare(compose_config("search", arguments)))
    stored = study.user_attrs[StudyKey.DEFINITION]
    old = without(stored, "study.schedule.")  # stored before the schedule existed
    study.set_user_attr(StudyKey.DEFINITION, old)

    resumed = start_study(prepare(compose_config("search", arguments)))
    assert resumed.user_attrs[StudyKey.DEFINITION] == old  # resumed as it was stored

    # A value other than the one the key had before it existed is a change.
    scheduled = [*arguments, "study.schedule.enabled=true", "study.schedule.min_steps=2"]
    with pytest.raises(
        StudyMismatchError, match=r"study\.schedule\.enabled: stored False, now True"
    ):
        start_study(prepare(compose_config("search", scheduled)))
    # A stored definition without a key that is not in the table is refused as before.
    study.set_user_attr(StudyKey.DEFINITION, without(old, "trainer.lr"))
    with pytest.raises(StudyMismatchError, match=r"trainer\.lr: stored \(not set\), now 0\.1"):
        start_study(prepare(compose_config("search", arguments)))
    storage = f"sqlite:///{tmp_path}/studies.db"
    assert optuna.get_all_study_names(storage) == ["tiny"]
