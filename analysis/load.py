"""A study read back from its storage, and its trials as one pandas DataFrame.

The frame has one row per trial, whatever its state:
- `number`, `state` (Optuna's name), `status` (finished / infeasible / duplicate / promoted /
  stopped / pruned / failed / running / waiting), `feasible`;
- one column per objective, named by the study's metric names (`mIoU`, `GMAdds`, ...);
- `rung`: the rung of a multi-fidelity schedule the trial trained to (NaN without a schedule);
- `constraint.<name>` per constraint (feasible when <= 0);
- the genes, flattened from the `spec` user attribute (`widths.0`, `widths.1`, ..., `head`),
  or the trial's Optuna parameters when it has no spec (a trial that failed before building);
- every other user attribute under its own name (lists such as `curve` kept as lists);
- for a trial with a latency, where it comes from (`latency_provenance`): `latency_source`
  (`measured` on the trial's own device, or `predicted` from a latency table measured on the
  device deployed to) and `latency_device`, in words; for a prediction also the table's error
  on held-out networks, `latency_table_rmspe` and `latency_table_within_10` (None: not
  measured);
- `datetime_start`, `datetime_complete`, `duration_s`.
`df.attrs` carries the study's name, objectives and schedule (None without one), so functions
given only the frame know the directions and the rungs' steps.

The project's conventions are applied here, once, so no reader can get them wrong:
- an infeasible trial was never trained: its stored mIoU (0.0) is a placeholder, not a
  measurement, so the frame holds NaN there;
- `GMAdds` is always a column when trials recorded their cost: the objective when the study
  optimises it, the `gmadds` attribute otherwise (an ablation study may optimise mIoU only);
- a trial stored before trials said where their latency came from measured it on its own
  device: `measured`, on its `device_name`;
- in a study with a multi-fidelity schedule, only the trials at the highest rung reached are
  `finished` (the front's candidates); a trial continued at the next rung is `promoted`, one
  left behind below the highest rung is `stopped` (`_schedule_statuses`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from workbench.record import (
    GMADDS,
    LATENCY,
    MEASURED,
    MIOU,
    PREDICTED,
    StudyKey,
    TrialKey,
    TrialStatus,
)
from workbench.secrets import mask_secrets
from workbench.storage import open_rdb_storage

HEAD = "head"
RUNG = TrialKey.RUNG
CONSTRAINT_PREFIX = "constraint."
DEFAULT_STORAGE = "sqlite:///outputs/studies.db"
# A predicted latency's table, its error on held-out networks at the trial's input size
# (search_space.latency.PredictedLatency): the columns, and the keys of the `latency` attribute
TABLE_RMSPE = "latency_table_rmspe"
TABLE_WITHIN_10 = "latency_table_within_10"
_TABLE_ERROR_KEYS = {TABLE_RMSPE: "table_rmspe", TABLE_WITHIN_10: "table_within_10"}

_STATUS_OF_STATE: dict[TrialState, TrialStatus] = {
    TrialState.PRUNED: TrialStatus.PRUNED,
    TrialState.FAIL: TrialStatus.FAILED,
    TrialState.RUNNING: TrialStatus.RUNNING,
    TrialState.WAITING: TrialStatus.WAITING,
}


@dataclass(frozen=True)
class Objective:
    name: str
    maximize: bool

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"


class StorageNotFoundError(FileNotFoundError):
    """The storage named does not exist (opening it would silently create an empty one)."""


class StudyNotFoundError(LookupError):
    """No study of that name in the storage; the message lists the studies that are there."""

    def __init__(self, name: str, location: str, present: Sequence[str]) -> None:
        there = ", ".join(sorted(present)) if present else "none"
        where = mask_secrets(location)
        super().__init__(f"no study named {name!r} in {where}; studies there: {there}")
        self.present = tuple(present)


def open_storage(location: str) -> BaseStorage:
    """An SQLAlchemy URL (`sqlite:///outputs/studies.db`, `postgresql://...`) or the path of an
    Optuna journal file (`outputs/studies.journal`); a URL that cannot be opened raises
    `workbench.storage.StorageError`."""
    if "://" not in location:
        path = Path(location)
        if not path.is_file():
            raise StorageNotFoundError(f"no journal file at {path}")
        return JournalStorage(JournalFileBackend(str(path)))
    if location.startswith("sqlite:///"):
        path = Path(location.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StorageNotFoundError(
                f"no SQLite database at {path}: run a search first, or pass storage=URL"
            )
    return open_rdb_storage(location)


def study_names(location: str) -> list[str]:
    return sorted(optuna.get_all_study_names(storage=open_storage(location)))


def load_study(name: str, location: str = DEFAULT_STORAGE) -> optuna.Study:
    """The study, or a `StudyNotFoundError` that lists the studies in the storage."""
    storage = open_storage(location)
    present = optuna.get_all_study_names(storage=storage)
    if name not in present:
        raise StudyNotFoundError(name, location, present)
    return optuna.load_study(study_name=name, storage=storage)


def study_objectives(study: optuna.Study) -> tuple[Objective, ...]:
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    return tuple(
        Objective(name, direction == optuna.study.StudyDirection.MAXIMIZE)
        for name, direction in zip(names, study.directions, strict=True)
    )


def frame_objectives(df: pd.DataFrame) -> tuple[Objective, ...]:
    return df.attrs["objectives"]


def load_trials(study: optuna.Study) -> pd.DataFrame:
    objectives = study_objectives(study)
    df = pd.DataFrame([_row(trial, objectives) for trial in study.get_trials(deepcopy=False)])
    # The leading columns exist even in a study without trials, so selections never KeyError.
    leading = ["number", "state", "status", "feasible", *(o.name for o in objectives), RUNG]
    df = df.reindex(columns=[*leading, *(c for c in df.columns if c not in leading)])
    df[RUNG] = pd.to_numeric(df[RUNG], errors="coerce").astype(float)
    df["status"] = _schedule_statuses(df)
    df.attrs = {
        "study_name": study.study_name,
        "objectives": objectives,
        StudyKey.SCHEDULE: study.user_attrs.get(StudyKey.SCHEDULE),
    }
    return df


def recipe_steps(attrs: Mapping[str, Any]) -> Any:
    """The training steps of the study's per-trial recipe (`StudyKey.TRAINER`), None if not
    stored."""
    return (attrs.get(StudyKey.TRAINER) or {}).get("steps")


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """The trials a front or a statistic may use: complete, feasible, every objective present."""
    names = [objective.name for objective in frame_objectives(df)]
    mask = (df["status"] == TrialStatus.FINISHED) & df[names].notna().all(axis=1)
    return df[mask]


def _schedule_statuses(df: pd.DataFrame) -> pd.Series:
    """The statuses once a multi-fidelity schedule is read: a finished trial continued by a
    complete trial at the next rung is `promoted`; one below the highest rung reached and not
    continued is `stopped`. Derived from the whole study, not stored: Optuna cannot change a
    finished trial's attributes, so a parent never learns it was promoted. A study without
    rungs keeps its statuses; duplicates, infeasible and unfinished trials keep theirs too."""
    status = df["status"].copy()
    if df[RUNG].isna().all():
        return status
    complete = df[(df["state"] == TrialState.COMPLETE.name) & (status != TrialStatus.DUPLICATE)]
    # A failed (or still running) continuation does not supersede its parent, nor does one
    # that reused another lineage's result (that lineage carries the architecture on).
    parents = set(complete.get(TrialKey.PROMOTED_FROM, pd.Series(dtype=float)).dropna())
    top = df.loc[df["feasible"].astype(bool), RUNG].max()
    candidates = status == TrialStatus.FINISHED
    promoted = candidates & df["number"].isin(parents)
    status[promoted] = TrialStatus.PROMOTED
    status[candidates & ~promoted & (df[RUNG] < top)] = TrialStatus.STOPPED
    return status


def _row(trial: FrozenTrial, objectives: Sequence[Objective]) -> dict[str, Any]:
    attrs = dict(trial.user_attrs)
    constraints = trial.constraints
    infeasible = bool(attrs.get(TrialKey.INFEASIBLE)) or any(v > 0 for v in constraints.values())
    if trial.state == TrialState.COMPLETE and TrialKey.DUPLICATE_OF in attrs:
        status = TrialStatus.DUPLICATE  # the same point as an earlier trial: counted once
    elif trial.state == TrialState.COMPLETE:
        status = TrialStatus.INFEASIBLE if infeasible else TrialStatus.FINISHED
    else:
        status = _STATUS_OF_STATE[trial.state]
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "status": status,
        "feasible": trial.state == TrialState.COMPLETE and not infeasible,
    }
    values = trial.values or [math.nan] * len(objectives)
    for objective, value in zip(objectives, values, strict=True):
        untrained = objective.name == MIOU and status == TrialStatus.INFEASIBLE
        row[objective.name] = math.nan if untrained else value
    if GMADDS not in row and TrialKey.GMADDS in attrs:
        row[GMADDS] = attrs[TrialKey.GMADDS]
    for name, value in constraints.items():
        row[f"{CONSTRAINT_PREFIX}{name}"] = value
    spec = attrs.pop(TrialKey.SPEC, None)
    genes = _flatten(spec) if isinstance(spec, dict) else dict(trial.params)
    for name, value in (*genes.items(), *attrs.items()):
        # Objectives come first: a `latency_ms` attribute equals the objective when both exist.
        row.setdefault(name, value)
    if pd.notna(row.get(LATENCY)):
        row.update(latency_provenance(attrs))
    row["datetime_start"] = trial.datetime_start
    row["datetime_complete"] = trial.datetime_complete
    row["duration_s"] = trial.duration.total_seconds() if trial.duration else math.nan
    return row


def latency_provenance(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Where the latency of a trial that has one comes from, from its user attributes: its
    source and device and, when predicted, the table's held-out error. A trial stored before
    trials said so measured its latency on its own device."""
    source = attrs.get(TrialKey.LATENCY_SOURCE, MEASURED)
    provenance = {
        TrialKey.LATENCY_SOURCE: source,
        TrialKey.LATENCY_DEVICE: attrs.get(
            TrialKey.LATENCY_DEVICE, attrs.get(TrialKey.DEVICE_NAME)
        ),
    }
    if source == PREDICTED:
        result = attrs.get(TrialKey.LATENCY_RESULT) or {}
        provenance.update({column: result.get(key) for column, key in _TABLE_ERROR_KEYS.items()})
    return provenance


def _flatten(spec: dict[str, Any]) -> dict[str, Any]:
    """List genes become one column per item, named like the space's Optuna parameters."""
    flat: dict[str, Any] = {}
    for gene, value in spec.items():
        if isinstance(value, list):
            flat.update({f"{gene}.{index}": item for index, item in enumerate(value)})
        else:
            flat[gene] = value
    return flat
