"""The device time of a study, on a real SQLite storage with hand-set trial times: a GPU
shared by two workers counts once, every device of every host counts, trials that ran nothing
count nothing; the progress line and the report show it."""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from analysis import document as doc
from analysis.device_time import device_time, runs_of_frame, runs_of_trials
from analysis.load import load_trials
from analysis.sections.overview import overview_section
from experiments.study.progress import count_trials, study_progress_line
from workbench.record import TrialKey, objective_names

T0 = datetime(2026, 12, 1, 12, 0, 0)
H200, XEON = "NVIDIA H200", "Intel Xeon"


def trial(
    ended_s: float | None,
    wall_s: float | None,
    device: str = "cuda:0",
    host: str = "a",
    name: str = H200,
    state: TrialState = TrialState.COMPLETE,
    **attrs: Any,
) -> FrozenTrial:
    user_attrs = {TrialKey.HOST: host, TrialKey.DEVICE: device, TrialKey.DEVICE_NAME: name,
                  **attrs}  # fmt: skip
    if wall_s is not None:
        user_attrs[TrialKey.WALL_SECONDS] = wall_s
    ended = None if ended_s is None else T0 + timedelta(seconds=ended_s)
    return FrozenTrial(
        number=0, trial_id=0, state=state,
        value=None, values=[50.0, 1.0] if state == TrialState.COMPLETE else None,
        datetime_start=T0, datetime_complete=ended, params={}, distributions={},
        user_attrs=user_attrs, system_attrs={}, intermediate_values={},
    )  # fmt: skip


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    stored = optuna.create_study(
        study_name="spent", storage=f"sqlite:///{tmp_path}/studies.db",
        directions=["maximize", "minimize"],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        stored.set_metric_names(objective_names(latency=False))
    for each in (
        # Two workers on host a's cuda:0: 0-1000 s and 600-1800 s, busy 1800 s.
        trial(1000, 1000),
        trial(1800, 1200),
        trial(3600, 1800, state=TrialState.FAIL),  # its time was spent too: 1800-3600 s
        trial(900, 900, device="cuda:1"),  # another GPU of the same host
        trial(720, 720, host="b"),  # another host's cuda:0
        trial(360, 360, device="cpu", name=XEON),
        trial(400, None, **{TrialKey.DUPLICATE_OF: 0}),  # reused a result: ran nothing
        trial(None, None, state=TrialState.RUNNING),  # counted when it ends
    ):
        stored.add_trial(each)
    return stored


def test_device_hours_count_a_shared_gpu_once_and_every_device_of_every_host(
    study: optuna.Study,
) -> None:
    gpu, cpu = device_time(runs_of_trials(study.get_trials()))
    assert (gpu.kind, gpu.name, gpu.devices, gpu.trials) == ("GPU", H200, 3, 5)
    assert gpu.device_hours == pytest.approx((3600 + 900 + 720) / 3600)
    assert gpu.trial_hours == pytest.approx((1000 + 1200 + 1800 + 900 + 720) / 3600)
    assert (cpu.kind, cpu.name, cpu.devices, cpu.trials) == ("CPU", XEON, 1, 1)
    assert cpu.device_hours == cpu.trial_hours == pytest.approx(0.1)
    # The stored study's frame, as the report reads it, gives the same figures.
    assert device_time(runs_of_frame(load_trials(study))) == [gpu, cpu]


def test_the_progress_line_and_the_report_show_the_device_hours(study: optuna.Study) -> None:
    at_start = count_trials(study, [])
    line = study_progress_line(study, 10, time.monotonic(), at_start, None)
    assert line.endswith("| 1.45 GPU-h, 0.10 CPU-h")

    df = load_trials(study)
    blocks = overview_section(df, df.iloc[:0], study.user_attrs)
    heading = blocks.index(doc.Heading("Device time"))
    paragraph, table = blocks[heading + 1], blocks[heading + 2]
    assert isinstance(paragraph, doc.Paragraph) and "1.45 GPU-h, 0.10 CPU-h" in paragraph.text
    assert isinstance(table, doc.Table)
    assert table.frame["device"].tolist() == [f"GPU: {H200}", f"CPU: {XEON}"]
    assert table.frame["devices"].tolist() == [3, 1]
    assert table.frame["device-hours"].tolist() == ["1.450", "0.100"]
    assert table.frame["trial-hours"].tolist() == ["1.561", "0.100"]


def test_a_study_that_ran_nothing_shows_no_device_time(tmp_path: Path) -> None:
    empty = optuna.create_study(directions=["maximize", "minimize"])
    empty.add_trial(trial(None, None, state=TrialState.RUNNING))
    line = study_progress_line(empty, 10, time.monotonic(), count_trials(empty, []), None)
    assert "-h" not in line.rsplit("|", 1)[1]
    assert device_time(runs_of_trials(empty.get_trials())) == []
    empty.add_trial(trial(36, 36, device="cpu", name=XEON))
    line = study_progress_line(empty, 10, time.monotonic(), count_trials(empty, []), None)
    assert line.endswith("| 0.010 CPU-h")  # minutes read in thousandths of an hour
