"""Where a study's workers run (device, threads, loader workers, room on a shared GPU), for
given GPU and core counts, and the reason a trial out of GPU memory fails with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState, create_trial

from experiments.config import compose_config
from experiments.study.placement import (
    Placement,
    not_started_note,
    place_workers,
    room_for_a_trial,
)
from experiments.study.settings import StudySettings
from experiments.study.trial import TrialContext, run_trial
from experiments.training.runtime import Runtime
from experiments.training.trainer import TrainerConfig
from tests.support import run_command, tiny_search_arguments
from workbench.record import TrialKey

CUDA = torch.device("cuda")
GIB = 2**30


def placed(n_workers: int, **counts: Any) -> tuple[Placement, ...]:
    given = {"device": CUDA, "gpus": 2, "workers_per_gpu": 1, "cores": 16,
             "threads_per_worker": None, "loader_workers": 8, **counts}  # fmt: skip
    return place_workers(n_workers=n_workers, **given)


def test_workers_cycle_over_the_gpus_at_most_workers_per_gpu_on_each() -> None:
    four = placed(4, gpus=2, workers_per_gpu=2)
    assert [str(p.device) for p in four] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [p.sharers for p in four] == [2, 2, 2, 2]

    three = placed(3, gpus=2, workers_per_gpu=2)
    assert [(str(p.device), p.sharers) for p in three] == [("cuda:0", 2), ("cuda:1", 1),
                                                           ("cuda:0", 2)]  # fmt: skip
    assert [str(p.device) for p in placed(4, gpus=4)] == [f"cuda:{i}" for i in range(4)]


def test_workers_beyond_what_the_gpus_take_are_not_started() -> None:
    assert len(placed(8, gpus=2, workers_per_gpu=2)) == 4
    named = placed(5, device=torch.device("cuda", 1), gpus=4, workers_per_gpu=3)
    assert [(str(p.device), p.sharers) for p in named] == [("cuda:1", 3)] * 3
    note = not_started_note(8, 2, 4, 2)
    assert "study.n_workers=8" in note and "starting 4 worker(s)" in note
    assert "study.workers_per_gpu" in note
    with pytest.raises(ValueError, match="no GPU is visible"):
        placed(1, gpus=0)


def test_the_cores_are_divided_among_the_workers_that_run() -> None:
    # 8 asked, 4 started: the 16 cores are shared by 4.
    assert {(p.threads, p.loader_workers) for p in placed(8, gpus=2, workers_per_gpu=2)} == {(4, 4)}
    cpu = placed(3, device=torch.device("cpu"), gpus=0, cores=16, loader_workers=2)
    assert [(str(p.device), p.sharers, p.threads, p.loader_workers) for p in cpu] == [
        ("cpu", 3, 5, 2)
    ] * 3
    assert {p.threads for p in placed(4, gpus=4, cores=2)} == {1}  # at least one
    assert {p.threads for p in placed(2, threads_per_worker=6)} == {6}  # the setting wins
    assert {p.loader_workers for p in placed(2, loader_workers=0)} == {0}  # in-process stays


def test_workers_per_gpu_must_be_at_least_one() -> None:
    section = {**compose_config("search", ["+study=demo"])["study"], "workers_per_gpu": 0}
    with pytest.raises(ValueError, match=re.escape("study.workers_per_gpu must be >= 1, got 0")):
        StudySettings.from_dict(section)


# ------------------------------------------------------------------- room on a shared GPU
HOST, NAME = "gpu-host", "NVIDIA H200"


def stored(
    state: TrialState, device: str, peak: int | None = None, host: str = HOST
) -> FrozenTrial:
    attrs: dict[str, Any] = {TrialKey.HOST: host, TrialKey.DEVICE: device,
                             TrialKey.DEVICE_NAME: NAME}  # fmt: skip
    if peak is not None:
        attrs[TrialKey.PEAK_DEVICE_MEMORY] = peak
    values = [50.0, 1.0] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, user_attrs=attrs)


def room(trials: list[FrozenTrial], sharers: int = 2, memory: int = 9 * GIB) -> bool:
    placement = Placement(torch.device("cuda", 0), sharers=sharers, threads=4, loader_workers=2)
    return room_for_a_trial(
        trials, host=HOST, placement=placement, device_name=NAME, device_memory=memory
    )


def test_a_trial_starts_on_a_shared_gpu_only_where_the_recorded_peaks_fit() -> None:
    three_gib = stored(TrialState.COMPLETE, "cuda:1", peak=3 * GIB)
    running = stored(TrialState.RUNNING, "cuda:0")
    # 2 x 3 GiB fit in 0.9 x 9 GiB, 3 x 3 GiB do not (they do in 0.9 x 11 GiB).
    assert room([three_gib, running])
    assert not room([three_gib, running, stored(TrialState.RUNNING, "cuda:0")])
    assert room([three_gib, running, stored(TrialState.RUNNING, "cuda:0")], memory=11 * GIB)
    # The largest peak recorded on this kind of GPU sets the rule.
    five_gib = stored(TrialState.FAIL, "cuda:0", peak=5 * GIB)
    assert not room([three_gib, five_gib, running])


def test_a_trial_starts_where_nothing_is_known_or_nothing_runs() -> None:
    huge = stored(TrialState.COMPLETE, "cuda:0", peak=20 * GIB)
    assert room([huge])  # nothing running: it may run alone (and fail with a reason)
    assert room([stored(TrialState.RUNNING, "cuda:0")] * 3)  # no peak recorded yet
    # Another device, another host, or a GPU of its own does not count.
    other = [stored(TrialState.RUNNING, "cuda:1"), stored(TrialState.RUNNING, "cuda:0", host="b")]
    assert room([huge, *other])
    assert room([huge, stored(TrialState.RUNNING, "cuda:0")], sharers=1)


# ------------------------------------------------------------------- out of GPU memory
class OutOfMemoryProposer:
    """Stands in for the allocation that fails: a real `torch.OutOfMemoryError`, raised where
    a trial's work begins."""

    def propose(self, trial: optuna.Trial) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")


def test_a_trial_out_of_memory_fails_naming_the_device_its_sharers_and_what_to_lower() -> None:
    composed = compose_config("search", ["+study=demo", "study.workers_per_gpu=4"])
    context = TrialContext(
        settings=StudySettings.from_dict(composed["study"]),
        proposer=cast(Any, OutOfMemoryProposer()),
        trainer_config=TrainerConfig.from_dict(composed["trainer"]),
        runtime=Runtime(torch.device("cpu")),
        device_sharers=4,
        # Never reached: the trial fails before it builds or trains anything.
        train_set=cast(Any, None), val_set=cast(Any, None), num_classes=19,
        tracker=cast(Any, None), output_dir=cast(Any, None), dataset=cast(Any, None),
        schedule=None,
    )  # fmt: skip
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(lambda trial: run_trial(trial, context), n_trials=1, catch=(Exception,))
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs[TrialKey.FAIL_REASON]
    batch = composed["trainer"]["batch_size"]
    assert reason.startswith("out of memory on cpu (")
    assert "shared by 4 worker(s) of this host" in reason
    assert f"lower study.workers_per_gpu (now 4) or trainer.batch_size (now {batch})" in reason
    assert reason.endswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.")


# ------------------------------------------------------------------- on a GPU
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_two_workers_share_a_gpu_and_record_their_peaks(
    synthetic_root: Path, tmp_path: Path
) -> None:
    result = run_command("experiments.search", *tiny_search_arguments(
        synthetic_root, tmp_path, "device=cuda", "study.n_workers=2", "study.workers_per_gpu=2",
    ))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/studies.db")
    trained = [t for t in study.trials if TrialKey.WALL_SECONDS in t.user_attrs]
    assert trained and all(t.user_attrs[TrialKey.DEVICE] == "cuda:0" for t in trained)
    assert all(t.user_attrs[TrialKey.PEAK_DEVICE_MEMORY] > 0 for t in trained)
    assert "GPU-h" in result.stdout
