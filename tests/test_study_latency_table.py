"""A study whose latency comes from a table (`study.latency.source=table`): predicted, never
timed, and the table's content part of the study's definition."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from experiments.config import compose_config
from experiments.study.setup import prepare
from search_space.latency import Protocol, predict_latency
from search_space.latency_table.build import build_table
from search_space.latency_table.table import LatencyTable, load_table
from search_space.space import load_space
from search_space.spec import ArchSpec
from tests.support import TINY_SPACE, run_command, tiny_budget, tiny_search_arguments
from workbench.record import LATENCY, TrialKey

QUICK = Protocol(warmup=1, min_repeats=2, max_repeats=3, budget_s=0.05)
INPUT = (64, 128)  # the tiny budget's


def tiny_table(path: Path, *, threads: int = 1) -> LatencyTable:
    table = build_table(
        load_space(TINY_SPACE),
        [INPUT],
        device=torch.device("cpu"),
        threads=threads,
        calibration_networks=2,
        part_protocol=QUICK,
        network_protocol=QUICK,
        progress=None,
    )
    table.save(path)
    return load_table(path)  # as the study reads it: times to the nanosecond


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config folder holding `space/tiny.yaml`, added to Hydra's search path."""
    folder = tmp_path_factory.mktemp("conf")
    (folder / "space").mkdir()
    (folder / "space" / "tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE, sort_keys=False))
    return folder


def table_overrides(space_dir: Path, table: Path, *more: str) -> list[str]:
    return [
        f"hydra.searchpath=[file://{space_dir}]", "space=tiny", "study.reference_designs=[]",
        "study.latency_objective=true", "study.latency.source=table",
        f"study.latency.table={table}", *more,
    ]  # fmt: skip


@pytest.mark.slow
def test_a_study_predicts_latency_from_its_table_and_times_nothing(
    synthetic_root: Path, tmp_path: Path, space_dir: Path
) -> None:
    table_file = tmp_path / "laptop.json"
    table = tiny_table(table_file)
    arguments = tiny_search_arguments(
        synthetic_root, tmp_path, *table_overrides(space_dir, table_file), "study.n_trials=2"
    )
    result = run_command("experiments.search", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/studies.db")
    assert study.metric_names[-1] == LATENCY
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2
    for trial in complete:
        spec = ArchSpec.from_dict(trial.user_attrs[TrialKey.SPEC])
        # Exactly the table's prediction: a timed figure would differ from it.
        expected = predict_latency(spec, table).to_dict()
        assert trial.user_attrs[TrialKey.LATENCY_RESULT] == expected
        assert trial.values[2] == expected["median_ms"]
        assert trial.user_attrs[TrialKey.LATENCY_SOURCE] == "predicted"
        assert trial.user_attrs[TrialKey.LATENCY_DEVICE] == table.describe_device()
    assert table.digest == study.user_attrs["definition"]["latency_table_digest"]

    # The file may move; a table with other content is another study.
    moved = tmp_path / "moved.json"
    table_file.rename(moved)
    arguments = tiny_search_arguments(
        synthetic_root, tmp_path, *table_overrides(space_dir, moved), "study.n_trials=3"
    )
    assert run_command("experiments.search", *arguments).returncode == 0
    other = tmp_path / "other.json"
    tiny_table(other, threads=2)
    arguments = tiny_search_arguments(
        synthetic_root, tmp_path, *table_overrides(space_dir, other), "study.n_trials=4"
    )
    refused = run_command("experiments.search", *arguments)
    assert refused.returncode == 2 and "latency_table_digest" in refused.stderr


def compose(space_dir: Path, table: Path, root: Path, tmp_path: Path, *more: str) -> dict:
    overrides = [*tiny_budget(root, tmp_path), *table_overrides(space_dir, table, *more)]
    return compose_config("search", ["+study=demo", *overrides])


def test_a_setting_that_contradicts_the_table_is_refused(
    synthetic_root: Path, tmp_path: Path, space_dir: Path
) -> None:
    table_file = tmp_path / "laptop.json"
    tiny_table(table_file)
    with pytest.raises(ValueError, match=r"study\.latency\.dtype='bf16' but the table's is 'fp32'"):
        prepare(
            compose(space_dir, table_file, synthetic_root, tmp_path, "study.latency.dtype=bf16")
        )
    with pytest.raises(ValueError, match=r"needs study\.latency\.table=FILE"):
        prepare(
            compose(space_dir, table_file, synthetic_root, tmp_path, "study.latency.table=null")
        )
    # A table of another input size cannot predict this study's networks: refused up front.
    with pytest.raises(ValueError, match="covers input sizes 64x128, not the study's 64x96"):
        prepare(
            compose(space_dir, table_file, synthetic_root, tmp_path, "dataset.input_size=64x96")
        )
    # Nor one that lacks parts of the study's space (the demo's heads space).
    config = compose(space_dir, table_file, synthetic_root, tmp_path)
    config["space"] = compose_config("search", ["+study=demo"])["space"]
    with pytest.raises(ValueError, match=r"lacks \d+ part\(s\) of space 'heads' at 64x128"):
        prepare(config)
