"""The device time a study spent, by kind of device (GPU, CPU) and its name: what its trials
cost, in the unit a NAS tool is judged by (architectures per GPU-hour).

How it is counted:
- a trial's run is its `wall_seconds` (training and evaluations), ending when the trial ended;
  a trial that recorded none spent no device time of its own (an infeasible one, never
  trained; a duplicate, reusing another's result; one that failed before training), and a
  running trial counts once it ends. A promotion counts its own rung's run, not its parent's.
- device-hours: per device (a host's `cuda:0`, a host's CPU), the time at least one trial ran
  on it: k workers sharing a GPU for an hour are one GPU-hour, not k;
- trial-hours: the sum of the runs, whatever ran beside them: what one trial at a time on a
  device of its own would have taken at these speeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from optuna.trial import FrozenTrial

from analysis.tables import present
from workbench.record import TrialKey

# How the report and the progress line call a device kind (torch's `device.type`).
KIND_NAMES = {"cuda": "GPU", "cpu": "CPU"}


@dataclass(frozen=True)
class TrialRun:
    """One trial's run on one device."""

    host: str | None
    device: str  # torch's name: "cuda:0", "cpu"
    device_name: str | None  # the GPU's or CPU's model
    ended: float  # POSIX seconds
    seconds: float


@dataclass(frozen=True)
class DeviceTime:
    """What the trials spent on devices of one kind and name."""

    kind: str  # KIND_NAMES' value, or torch's device type
    name: str
    devices: int  # distinct (host, device) pairs
    trials: int
    device_hours: float
    trial_hours: float


def runs_of_trials(trials: Iterable[FrozenTrial]) -> list[TrialRun]:
    """The runs of live trials (the study's workers read them after every trial)."""
    return [
        TrialRun(
            host=t.user_attrs.get(TrialKey.HOST),
            device=str(t.user_attrs[TrialKey.DEVICE]),
            device_name=t.user_attrs.get(TrialKey.DEVICE_NAME),
            ended=t.datetime_complete.timestamp(),
            seconds=float(t.user_attrs[TrialKey.WALL_SECONDS]),
        )
        for t in trials
        if t.datetime_complete is not None
        and TrialKey.WALL_SECONDS in t.user_attrs
        and TrialKey.DEVICE in t.user_attrs
    ]


def runs_of_frame(df: pd.DataFrame) -> list[TrialRun]:
    """The runs of a stored study's trials frame (`analysis.load.load_trials`)."""
    needed = (TrialKey.WALL_SECONDS, TrialKey.DEVICE, "datetime_complete")
    if not set(needed) <= set(df.columns):
        return []
    rows = df.dropna(subset=list(needed))
    return [
        TrialRun(
            host=_text(row.get(TrialKey.HOST)),
            device=str(row[TrialKey.DEVICE]),
            device_name=_text(row.get(TrialKey.DEVICE_NAME)),
            ended=_timestamp(row["datetime_complete"]),
            seconds=float(row[TrialKey.WALL_SECONDS]),
        )
        for _, row in rows.iterrows()
    ]


def device_time(runs: Sequence[TrialRun]) -> list[DeviceTime]:
    """Per kind and name of device, most device-hours first."""
    groups: dict[tuple[str, str], list[TrialRun]] = {}
    for run in runs:
        kind = run.device.partition(":")[0]
        groups.setdefault((KIND_NAMES.get(kind, kind), run.device_name or "?"), []).append(run)
    times = []
    for (kind, name), group in groups.items():
        by_device: dict[tuple[str | None, str], list[TrialRun]] = {}
        for run in group:
            by_device.setdefault((run.host, run.device), []).append(run)
        busy = sum(_busy_seconds(device_runs) for device_runs in by_device.values())
        times.append(
            DeviceTime(
                kind=kind,
                name=name,
                devices=len(by_device),
                trials=len(group),
                device_hours=busy / 3600,
                trial_hours=sum(run.seconds for run in group) / 3600,
            )
        )
    return sorted(times, key=lambda time: -time.device_hours)


def device_hours_text(times: Sequence[DeviceTime]) -> str:
    """`0.12 GPU-h`, per kind (`0.12 GPU-h, 0.010 CPU-h`: a third decimal below 0.1 h, where
    a demo's minutes would read 0.00); empty when nothing ran yet."""
    hours: dict[str, float] = {}
    for time in times:
        hours[time.kind] = hours.get(time.kind, 0.0) + time.device_hours
    return ", ".join(
        f"{value:.{2 if value >= 0.1 else 3}f} {kind}-h" for kind, value in hours.items()
    )


def device_time_table(times: Sequence[DeviceTime]) -> pd.DataFrame:
    """The report's table: one row per kind and name of device."""
    return pd.DataFrame(
        {
            "device": [f"{time.kind}: {time.name}" for time in times],
            "devices": [time.devices for time in times],
            "trials": [time.trials for time in times],
            "device-hours": [f"{time.device_hours:.3f}" for time in times],
            "trial-hours": [f"{time.trial_hours:.3f}" for time in times],
        }
    )


def _busy_seconds(runs: Sequence[TrialRun]) -> float:
    """The length of the union of the runs' spans on one device."""
    busy, reached = 0.0, -math.inf
    for start, end in sorted((run.ended - run.seconds, run.ended) for run in runs):
        busy += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return busy


def _text(value: object) -> str | None:
    return str(value) if present(value) else None


def _timestamp(value: object) -> float:
    if isinstance(value, datetime):  # pandas' Timestamp is one
        return value.timestamp()
    raise TypeError(f"datetime_complete must be a datetime, got {value!r}")
