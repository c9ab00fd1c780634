"""The study's progress: trial counts by outcome, and the line printed after every trial."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from analysis.device_time import device_hours_text, device_time, runs_of_trials
from analysis.pareto import non_dominated
from experiments.study.schedule import Schedule
from workbench.record import TrialKey


@dataclass(frozen=True)
class Counts:
    complete: int
    infeasible: int
    duplicates: int  # complete by reusing an earlier trial's result
    promotions: int  # complete at a higher rung of a multi-fidelity schedule
    pruned: int
    failed: int
    running: int
    front: int
    finished: int  # toward the target: architectures (a duplicate or promotion is no new one)
    trained_steps: int  # by the finished trials, each from the step it resumed at


def count_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> Counts:
    """The counts of `trials` (default: the study's, read now)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    duplicates = [t for t in complete if TrialKey.DUPLICATE_OF in t.user_attrs]
    promotions = [t for t in trials if TrialKey.PROMOTED_FROM in t.user_attrs]
    return Counts(
        complete=len(complete),
        infeasible=sum(
            bool(t.user_attrs.get(TrialKey.INFEASIBLE))
            and TrialKey.DUPLICATE_OF not in t.user_attrs
            for t in complete
        ),
        duplicates=len(duplicates),
        promotions=sum(
            t.state == TrialState.COMPLETE and TrialKey.DUPLICATE_OF not in t.user_attrs
            for t in promotions
        ),
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        running=states.count(TrialState.RUNNING),
        front=front_size(complete, study.directions),
        finished=sum(map(is_finished_architecture, trials)),
        trained_steps=sum(map(steps_run, trials)),
    )


def steps_run(trial: FrozenTrial) -> int:
    """The training steps a finished trial ran itself: none for a duplicate (a copy of another
    trial's result) or an infeasible one; a promotion's from the step it resumed at. (What
    `analysis.rungs.steps_trained` sums over a stored study's frame, for one live trial.)"""
    attrs = trial.user_attrs
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return 0
    if TrialKey.DUPLICATE_OF in attrs or attrs.get(TrialKey.INFEASIBLE):
        return 0
    return int(attrs.get(TrialKey.STEPS, 0)) - int(attrs.get(TrialKey.RESUMED_FROM_STEP, 0))


def is_finished_architecture(trial: FrozenTrial) -> bool:
    """Counts toward the target: a new architecture measured (a duplicate or a promotion is
    none, and one stopped before choosing measured nothing)."""
    done = trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
    return done and TrialKey.SPEC in trial.user_attrs and is_new_architecture(trial)


def is_new_architecture(trial: FrozenTrial) -> bool:
    attrs = trial.user_attrs
    return TrialKey.DUPLICATE_OF not in attrs and TrialKey.PROMOTED_FROM not in attrs


def front_size(complete: list[FrozenTrial], directions: list[StudyDirection]) -> int:
    """How many trials are on the front: feasible, measured, at the highest rung reached (the
    rung `analysis` draws the front from); a duplicate's point counts once."""
    measured = [
        t
        for t in complete
        if not t.user_attrs.get(TrialKey.INFEASIBLE) and TrialKey.DUPLICATE_OF not in t.user_attrs
    ]
    top = max((t.user_attrs.get(TrialKey.RUNG, 0) for t in measured), default=0)
    values = [t.values for t in measured if t.user_attrs.get(TrialKey.RUNG, 0) == top]
    if not values:
        return 0
    maximize = [d == StudyDirection.MAXIMIZE for d in directions]
    return int(non_dominated(np.array(values, dtype=float), maximize).sum())


def study_progress_line(
    study: optuna.Study, target: int, started: float, at_start: Counts, schedule: Schedule | None
) -> str:
    """The progress line of `study` now (`started`: this command's start, `at_start`: the
    counts then), ending with the device time the study's trials spent (`analysis.device_time`)."""
    trials = study.get_trials(deepcopy=False)
    counts = count_trials(study, trials)
    left = max(0, target - counts.finished)
    steps_left = None if schedule is None else schedule.least_steps_left(trials, left)
    line = progress_line(counts, target, started, at_start, steps_left)
    spent = device_hours_text(device_time(runs_of_trials(trials)))
    return f"{line} | {spent}" if spent else line


def progress_line(
    counts: Counts, target: int, started: float, at_start: Counts, steps_left: int | None = None
) -> str:
    """Under a multi-fidelity schedule (`steps_left`: the least its rule still trains) the ETA
    is in training steps at this command's rate so far, since its promotions, most of the
    work, come after the new architectures; without one it is in architectures."""
    elapsed = time.monotonic() - started
    if steps_left is None:
        done_here = counts.finished - at_start.finished
        remaining = max(0, target - counts.finished)
        eta = f"{elapsed / done_here * remaining:.0f}s" if done_here else "?"
    else:
        trained_here = counts.trained_steps - at_start.trained_steps
        eta = f"~{elapsed / trained_here * steps_left:.0f}s" if trained_here else "?"
    return (
        f"[study] finished {counts.finished}/{target} | feasible "
        f"{counts.complete - counts.infeasible - counts.duplicates - counts.promotions} | "
        f"infeasible "
        f"{counts.infeasible} | duplicates {counts.duplicates} | promoted "
        f"{counts.promotions} | pruned "
        f"{counts.pruned} | failed {counts.failed} | running {counts.running} | front "
        f"{counts.front} | {elapsed:.0f}s elapsed, ETA {eta}"
    )
