"""The record's names are what every stored study holds: renaming one strands the studies
already written (a report rebuilt from them would find nothing under the new name). Every other
test reaches the names through `workbench.record`; this one alone spells them out, so that a
rename fails here and is made on purpose, with a migration."""

from __future__ import annotations

import pytest

from workbench.record import (
    KIND_ABLATION,
    KIND_SEARCH,
    AblationKey,
    Constraint,
    RetrainKey,
    ScheduleKey,
    StudyKey,
    TrialKey,
    TrialStatus,
    objective_directions,
    objective_names,
)

STORED: dict[type, set[str]] = {
    TrialKey: {
        "spec", "n_params", "madds", "gmadds", "fvcore_total", "latency", "latency_ms", "seed",
        "reference", "variant", "first_draw", "infeasible", "host", "device", "device_name",
        "curve", "steps", "final_loss", "train_seconds", "wall_seconds", "images_per_second",
        "per_class_iou", "fail_reason", "prune_reason", "retry_of", "duplicate_of", "rung",
        "rung_results", "promoted_from", "resumed_from_step", "checkpoint",
    },
    Constraint: {"gmadds_budget", "latency_budget"},
    StudyKey: {
        "kind", "space", "ablation", "dataset", "split", "input_size", "sampler", "seed",
        "gmadds_budget", "trainer", "versions", "config", "definition", "initialised",
        "schedule", "retrain_of",
    },
    AblationKey: {
        "name", "baseline", "seeds", "variants", "spec", "paper_row", "paper_miou",
        "paper_gmadds",
    },
    ScheduleKey: {"rungs", "reduction", "stratify"},
    RetrainKey: {"study", "trials", "number", "miou", "gmadds", "steps", "on_front"},
}  # fmt: skip


def names(holder: type) -> set[str]:
    return {value for name, value in vars(holder).items() if name.isupper()}


@pytest.mark.parametrize("holder", list(STORED), ids=lambda holder: holder.__name__)
def test_every_stored_name_is_still_written_and_read_as_it_was(holder: type) -> None:
    assert STORED[holder] <= names(holder), sorted(STORED[holder] - names(holder))


def test_objectives_and_kinds_keep_their_names() -> None:
    assert objective_names(latency=True) == ["mIoU", "GMAdds", "latency_ms"]
    assert objective_directions(objective_names(latency=True)) == [
        "maximize",
        "minimize",
        "minimize",
    ]
    assert (KIND_SEARCH, KIND_ABLATION) == ("search", "ablation")


def test_statuses_read_as_their_text_in_the_order_a_report_counts_them() -> None:
    """Statuses are derived, not stored, but trials.csv and every report print them."""
    assert [str(status) for status in TrialStatus] == [
        "finished", "promoted", "stopped", "infeasible", "duplicate", "pruned", "failed",
        "running", "waiting",
    ]  # fmt: skip
    assert TrialStatus("failed") is TrialStatus.FAILED and f"{TrialStatus.FAILED}" == "failed"
