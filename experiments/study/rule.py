"""The scheduling rule: what a free worker does next, as one pure function of the stored trials.

The study's workers call `decide` between trials and only do the storage's work around it;
`experiments.research.schedule_replay` calls it on an in-memory study to replay a schedule
without training. One rule, so that a replay is the study it stands for.

A waiting trial (an enqueued first trial, a promotion just chosen, or the retry of an
interrupted one) runs first, whatever the target: so no enqueued trial is left waiting, and a
rung closes once the trials that can still reach it have (a study whose target is below its
first trials runs them all, then promotes as a larger one does). With nothing waiting, a
promotion comes before a new architecture, and after the target is reached: the study ends
with every rung's best trials trained on, its references and probes at the top rung. Past the
target, or with the rest of it running elsewhere, a worker waits where a dead worker is noticed
(heartbeats; a journal file has none): a running trial may earn a promotion (the top rungs are
the longest), and one whose host died is failed and retried, so the study ends complete.
Otherwise it stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from experiments.study.progress import is_finished_architecture
from experiments.study.schedule import Promotion, Schedule
from workbench.record import TrialKey


@dataclass(frozen=True)
class RunEnqueued:
    """Run the oldest waiting trial, `trial_number` (the one the storage hands out next)."""

    trial_number: int


@dataclass(frozen=True)
class StartNew:
    """Run a new architecture, drawn by the sampler."""


@dataclass(frozen=True)
class Wait:
    """Let the trials running elsewhere finish (or fail, once their heartbeat is stale), then
    decide again."""


@dataclass(frozen=True)
class Stop:
    """Nothing is left for this worker: the target is reached and nothing is promotable, or
    the rest of it runs elsewhere."""


@dataclass(frozen=True)
class Abort:
    """Something is wrong with every trial, not with one: stop the study, saying why."""

    reason: str


# A `Promotion` asks the worker to enqueue it; the decision after it runs the waiting trial.
Decision = Promotion | RunEnqueued | StartNew | Wait | Stop | Abort

MAX_REPEATS = 20  # duplicates in a row after which a worker stops: the space is exhausted


def decide(
    trials: Sequence[FrozenTrial],
    *,
    n_trials: int,
    schedule: Schedule | None,
    heartbeats: bool,
    failed_since_start: int,
    max_failed_trials: int,
    repeats: int,
) -> Decision:
    """The next step of a free worker. `trials`: every trial of the study, read now;
    `n_trials`: the finished architectures to reach; `heartbeats`: whether the storage fails
    the trials of a dead process; `failed_since_start`: the trials failed since this command
    started (a resumed study is not refused for old ones); `repeats`: the architectures this
    worker proposed in a row that were already measured."""
    finished = sum(map(is_finished_architecture, trials))
    reached = finished >= n_trials
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    running_architectures = sum(not _is_promotion(t) for t in running)
    if not waiting:
        if schedule is not None:
            # The first rung closes once the target's architectures are trained to it: nothing
            # waits (a waiting trial runs, whatever the target) and none is still training.
            sampling_done = reached and running_architectures == 0
            promotion = schedule.next_promotion(trials, sampling_done)
            if promotion is not None:
                return promotion
        enough = finished + running_architectures >= n_trials
        if heartbeats and running and enough and (schedule is not None or not reached):
            return Wait()
        if enough:
            return Stop()
    if repeats >= MAX_REPEATS:
        return Abort(
            f"the sampler proposed {repeats} architectures in a row that were already "
            "measured: the space looks exhausted (raise its ranges or lower study.n_trials)"
        )
    if failed_since_start >= max_failed_trials:
        return Abort(
            f"{failed_since_start} trials failed since this command started "
            f"(study.max_failed_trials={max_failed_trials}); see their fail_reason in the report"
        )
    if waiting:
        return RunEnqueued(min(t.number for t in waiting))
    return StartNew()


def _is_promotion(trial: FrozenTrial) -> bool:
    return TrialKey.PROMOTED_FROM in trial.user_attrs
