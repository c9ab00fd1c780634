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
from experiments.training.step import precision_of_amp
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


def test_a_study_stored_with_the_former_speed_keys_resumes() -> None:
    """Before the per-device speed settings a definition held `trainer.amp` and
    `trainer.channels_last` (both true by default), no `trainer.cpu`/`trainer.cuda` and no
    `trainer.loss_fetch_every`."""
    current = definition("+study=demo")
    assert not any(key.startswith("trainer.cuda.") for key in current)  # a CPU study
    old = without(current, "trainer.cpu.", "trainer.loss_fetch_every")
    old.update({"trainer.amp": True, "trainer.channels_last": True})
    check_definition(old, current, "demo")  # on a CPU neither key did anything
    # On CUDA, amp=true meant bf16 autocast (fp16 without bf16): a precision that defines.
    cuda = study_definition(compose_config("search", ["+study=demo"]), (64, 128), ["mIoU"], "cuda")
    stored_cuda = {**without(cuda, "trainer.cuda.", "trainer.loss_fetch_every"), **old}
    stored_cuda["device_type"] = "cuda"
    amp = precision_of_amp(True)
    with pytest.raises(
        StudyMismatchError, match=rf"trainer\.cuda\.precision: stored '{amp}', now 'fp32'"
    ):
        check_definition(stored_cuda, cuda, "demo")
    for same in ("trainer.amp=true", f"trainer.cuda.precision={amp}"):
        config = compose_config("search", ["+study=demo", same])
        check_definition(stored_cuda, study_definition(config, (64, 128), ["mIoU"], "cuda"), "")


def test_speed_settings_other_than_precision_may_change() -> None:
    """A CPU study's definition holds no `trainer.cuda` key; on any device only the
    precision of its own kind defines it."""
    current = definition("+study=demo")
    assert definition("+study=demo", "trainer.cuda.precision=bf16") == current
    speed = ["trainer.cpu.step_mode=compile", "trainer.loss_fetch_every=1"]
    assert definition("+study=demo", *speed) == current
    with pytest.raises(StudyMismatchError, match=r"trainer\.cpu\.precision: stored 'fp32'"):
        check_definition(current, definition("+study=demo", "trainer.cpu.precision=bf16"), "")


def test_the_reference_list_may_change_and_what_the_schedule_carries_up_may_not() -> None:
    """A design added on resume is enqueued and climbs like the others (each trial carries its
    own mark), so the list may change; the schedule's own settings are stored for the report."""
    stored = definition("+study=demo")
    check_definition(stored, definition("+study=demo", "study.reference_designs=[dfanet_a]"), "d")
    for changed in ("study.schedule.references_to_top=false", "study.schedule.probes=4"):
        with pytest.raises(StudyMismatchError, match=changed.split("=")[0].replace(".", r"\.")):
            check_definition(stored, definition("+study=demo", changed), "demo")
    # Stored before they existed: any value (the stored study's trials measure the same).
    check_definition(
        without(stored, "study.schedule.references_to_top", "study.schedule.probes"),
        definition("+study=demo", "study.schedule.probes=4"),
        "demo",
    )
