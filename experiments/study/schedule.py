"""A multi-fidelity schedule for multi-objective studies: asynchronous successive halving on
every objective at once (the promotion variant of ASHA, ranked as MO-ASHA ranks: non-dominated
sorting, then crowding distance).

Rungs are training budgets in steps, `trainer.steps / reduction**k` down to `min_steps`: with
400 steps, reduction 4 and min_steps 25, the rungs are 25, 100 and 400. Every new architecture
trains to the first rung. Whenever a worker is free it first looks for a promotion, highest
rung first; only when nothing is promotable does it start a new architecture, so no worker
ever waits for a rung to fill.

While a rung is open (trials may still reach it), a trial is promotable when it is among the
top `n // reduction` of the `n` trials that completed the rung, ranked by non-dominated sorting
on (mIoU at that rung, the cost objectives), ties within a front broken by crowding distance so
that the promoted trials spread along the front. Below `reduction` trials nothing is promoted
yet: a rung's first arrivals are not carried up for being early. A rung closes when no trial
can reach it any more (every architecture sampled and trained to the first rung; every
promotion from the rung below run); then its whole first non-dominated front is promotable
too. A front of four from sixteen architectures does not fit in a quarter of them, and a trial
dominated at no rung is the study's front in the making: trained on, it is measured where the
front is drawn.

Some trials climb to the top rung whatever their rank, on top of every quota (chosen first, as
if they were not there): the study's reference designs (`references_to_top`), so that the
report places the paper's designs with the budget of the front, and its probes (`TrialKey.PROBE`:
seeded random members enqueued before any result is known), so that how well the first rung
ranks like the top one is measured on a sample the results did not choose. Every promotion says
why it was made (`TrialKey.PROMOTED_FOR`): its bracket's quota, a closed rung's front, a
reference, a probe.

`stratify` (a gene, `head` in the studies) makes each of that gene's values a bracket with its
own quota, `n_h // reduction` of its `n_h` trials, and at least one once the rung has closed:
every head's best trials reach the top rung, so that the heads are compared at the budget that
ranks them, not at the first rung, where the head that learns fastest leads. The front of a
closed rung is taken over all of them, since the study's front is one front.

A promotion is a new Optuna trial of the same parameters (`promoted_from`: the trial below)
that resumes the checkpoint of the one below and trains on to its rung; its values are its
result at that rung. The schedule reads only the stored trials, so it works the same with one
worker, several, or several hosts, and after a resume. A trial is promoted once: an interrupted
or killed promotion is retried as itself (an interrupted trial and the heartbeat enqueue it
again, resuming the same checkpoint), and one that raised is failed with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from analysis.pareto import as_losses, non_dominated
from experiments.config import check_at_least, checked_section
from workbench.record import ScheduleKey, TrialKey


@dataclass(frozen=True)
class ScheduleConfig:
    """The `study.schedule` section (`conf/study/base.yaml` has every key and its meaning)."""

    enabled: bool
    reduction: int  # promote the top 1/reduction of each rung
    min_steps: int  # the first rung's budget, at least
    stratify: str | None  # a gene whose every value is a bracket of its own
    references_to_top: bool  # the reference designs always promoted, whatever their rank
    probes: int  # seeded random architectures enqueued first and always promoted

    def __post_init__(self) -> None:
        check_at_least(self, "study.schedule", ("reduction",), 2)
        check_at_least(self, "study.schedule", ("min_steps",), 1)
        check_at_least(self, "study.schedule", ("probes",), 0)
        if self.probes % 2:
            raise ValueError(
                f"study.schedule.probes must be even, got {self.probes}: probes are compared in "
                "pairs within a bracket, and an odd one would have no partner"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ScheduleConfig:
        return cls(**checked_section(values, "study.schedule", cls))

    def rungs(self, steps: int) -> tuple[int, ...]:
        """The budgets in steps, ending at `steps` (the training recipe's, which the learning
        rate schedule spans)."""
        if steps < self.min_steps:
            raise ValueError(
                f"study.schedule.min_steps={self.min_steps} is above trainer.steps={steps}"
            )
        rungs = [steps]
        while rungs[-1] // self.reduction >= self.min_steps:
            rungs.append(rungs[-1] // self.reduction)
        return tuple(reversed(rungs))


@dataclass(frozen=True)
class Promotion:
    """Train trial `parent` (complete at rung `rung - 1`) on to rung `rung`, for `reason`
    (one of `PROMOTED_FOR_REASONS`)."""

    parent: FrozenTrial
    rung: int
    reason: str

    def user_attrs(self) -> dict[str, Any]:
        # What the parent was enqueued as (a paper design, a head's draw, a probe) stays its
        # name: a reference or a probe is promoted again at the next rung for it.
        kept = {k: self.parent.user_attrs[k] for k in _LINEAGE_NAMES if k in self.parent.user_attrs}
        return {
            **kept,
            TrialKey.PROMOTED_FROM: self.parent.number,
            TrialKey.RUNG: self.rung,
            TrialKey.PROMOTED_FOR: self.reason,
        }


_LINEAGE_NAMES = (TrialKey.REFERENCE, TrialKey.FIRST_DRAW, TrialKey.PROBE)
_IN_FLIGHT = (TrialState.WAITING, TrialState.RUNNING)
# A promotion in one of these states trains its parent on (a PRUNED one lost a race to one).
LIVE_STATES = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


@dataclass(frozen=True)
class Schedule:
    rungs: tuple[int, ...]
    reduction: int
    stratify: str | None
    directions: tuple[StudyDirection, ...]
    references_to_top: bool = False
    probes: int = 0  # how many the study enqueued (what promotes them is their PROBE mark)

    def describe(self) -> dict[str, Any]:
        """What the study stores of it (`StudyKey.SCHEDULE`) for its report."""
        return {
            ScheduleKey.RUNGS: list(self.rungs),
            ScheduleKey.REDUCTION: self.reduction,
            ScheduleKey.STRATIFY: self.stratify,
            ScheduleKey.REFERENCES_TO_TOP: self.references_to_top,
            ScheduleKey.PROBES: self.probes,
        }

    def next_promotion(
        self, trials: Sequence[FrozenTrial], sampling_done: bool
    ) -> Promotion | None:
        """The promotion to run now, or None: start a new architecture. `sampling_done`: every
        architecture of the study is sampled and none of them is still training to the first
        rung, so the first rung is closed.

        The longest known work first: a reference or probe will climb to the top rung, so its
        work is the rest of its climb; any other promotion's is its next rung. Then the higher
        rung, then the slower architecture. Highest rung first alone left a probe's whole climb
        for the end of the demo, on one worker while the other idled (a minute of 5)."""
        # Any continuation takes it: an interrupted or killed one is retried as itself (a
        # retry enqueued by an interrupted trial or the heartbeat), and one that raised would
        # raise again (training is deterministic).
        taken = _taken(trials)
        closed = self.closed_rungs(trials, sampling_done)
        candidates = [
            promotion
            for rung in reversed(range(len(self.rungs) - 1))
            for promotion in self.promotable(trials, rung, closed=rung < closed)
            if promotion.parent.number not in taken
        ]
        return max(candidates, key=self._known_work, default=None)

    def _known_work(self, promotion: Promotion) -> tuple[int, int, float]:
        """(the steps this promotion surely leads to, its rung, the parent's slowness)."""
        below = promotion.rung - 1
        last = len(self.rungs) - 1 if self._always_promoted(promotion.parent) else promotion.rung
        rate = promotion.parent.user_attrs.get(TrialKey.IMAGES_PER_SECOND, 0.0)
        return self.rungs[last] - self.rungs[below], promotion.rung, -rate

    def closed_rungs(self, trials: Sequence[FrozenTrial], sampling_done: bool) -> int:
        """How many rungs, from the first, no trial can reach any more: rung k is closed when
        rung k - 1 is and every promotion from it has run (none left to take, none waiting or
        running)."""
        if not sampling_done:
            return 0
        taken = _taken(trials)
        live = {
            t.user_attrs[TrialKey.RUNG]
            for t in trials
            if TrialKey.PROMOTED_FROM in t.user_attrs and t.state in _IN_FLIGHT
        }
        closed = 1
        while (
            closed < len(self.rungs)
            and closed not in live
            and all(
                p.parent.number in taken for p in self.promotable(trials, closed - 1, closed=True)
            )
        ):
            closed += 1
        return closed

    def least_steps_left(self, trials: Sequence[FrozenTrial], architectures_left: int) -> int:
        """A floor on the training steps the rule still spends (a running trial's rung counted
        whole: its progress is not stored): the first rung of the architectures not yet
        finished; then at every rung above, the promotions its floor asks of the rung below
        (the top 1/reduction, at least each bracket's best) or, when more, those waiting or
        running plus the climb still ahead of every reference and probe (each goes to the top
        rung), less the promotions complete there. A closed rung's front, when wider, adds
        more. What a progress line's ETA can say once the new architectures are done and the
        promotions remain: never 0 while one is still to run."""
        reached = [_completed_rung(t) for t in trials]
        first = [t for t, rung in zip(trials, reached, strict=True) if rung == 0]
        brackets = len(_strata(first, self.stratify)) if self.stratify is not None else 1
        taken = _taken(trials)
        in_flight = [t for t in trials if t.state in _IN_FLIGHT]
        new_in_flight = sum(TrialKey.PROMOTED_FROM not in t.user_attrs for t in in_flight)
        promoted_into = [t.user_attrs[TrialKey.RUNG] for t in in_flight
                         if TrialKey.PROMOTED_FROM in t.user_attrs]  # fmt: skip
        # Where each reference and probe still to climb stands: the rung its lineage's last
        # trial completed (none made from it yet) or is training to.
        climbing = [
            rung if rung is not None else trial.user_attrs.get(TrialKey.RUNG, 0)
            for trial, rung in zip(trials, reached, strict=True)
            if self._always_promoted(trial)
            and (trial.state in _IN_FLIGHT or (rung is not None and trial.number not in taken))
        ]
        first_left = max(architectures_left, new_in_flight)
        # The promotions the rule would make now and has not made yet (a closed rung's front
        # beyond the quota, the brackets' bests), into the rung above: each is one to come.
        closed = self.closed_rungs(trials, sampling_done=first_left == 0)
        pending = [
            promotion.rung
            for rung in range(len(self.rungs) - 1)
            for promotion in self.promotable(trials, rung, closed=rung < closed)
            if promotion.parent.number not in taken and not self._always_promoted(promotion.parent)
        ]
        left = first_left * self.rungs[0]
        holding = reached.count(0) + first_left  # what the first rung will hold
        for rung in range(1, len(self.rungs)):
            floor = min(holding, max(brackets, holding // self.reduction))
            made = reached.count(rung)
            to_come = (
                promoted_into.count(rung) + sum(r < rung for r in climbing) + pending.count(rung)
            )
            asked = max(floor, made + to_come)
            left += max(0, asked - made) * (self.rungs[rung] - self.rungs[rung - 1])
            holding = asked
        return left

    def promotable(
        self, trials: Sequence[FrozenTrial], rung: int, *, closed: bool
    ) -> list[Promotion]:
        """The promotions from `rung` to the next: each bracket's quota (its best first), then
        the rest of a closed rung's front, then the references and probes not chosen yet."""
        at_rung = [t for t in trials if _completed_rung(t) == rung]
        brackets = (
            _strata(at_rung, self.stratify).values() if self.stratify is not None else [at_rung]
        )
        floor = 1 if closed and self.stratify is not None else 0
        chosen: list[Promotion] = []
        for members in brackets:
            quota = max(floor, len(members) // self.reduction)
            chosen += _unplaced(chosen, top_ranked(members, quota, self.directions), "quota")
        if closed:
            chosen += _unplaced(chosen, first_front(at_rung, self.directions), "front")
        for reason in ("reference", "probe"):
            always = [t for t in at_rung if self._always_promoted(t) == reason]
            chosen += _unplaced(chosen, always, reason)
        return chosen

    def _always_promoted(self, trial: FrozenTrial) -> str | None:
        """Why a trial climbs to the top rung whatever its rank ("probe", "reference"), if
        it does."""
        if TrialKey.PROBE in trial.user_attrs:
            return "probe"
        if self.references_to_top and TrialKey.REFERENCE in trial.user_attrs:
            return "reference"
        return None


def _unplaced(
    chosen: list[Promotion], trials: Sequence[FrozenTrial], reason: str
) -> list[Promotion]:
    """The promotions of those of `trials` not chosen yet, one rung up, for `reason`."""
    placed = {p.parent.number for p in chosen}
    return [
        Promotion(t, t.user_attrs[TrialKey.RUNG] + 1, reason)
        for t in trials
        if t.number not in placed
    ]


def _taken(trials: Sequence[FrozenTrial]) -> set[int]:
    """The trials a promotion has been made from, in any state."""
    return {
        t.user_attrs[TrialKey.PROMOTED_FROM]
        for t in trials
        if TrialKey.PROMOTED_FROM in t.user_attrs
    }


def _completed_rung(trial: FrozenTrial) -> int | None:
    """The rung a trial's values measure, if it may compete there: complete, trained (not an
    infeasible placeholder) and its own measurement (not a duplicate's copy)."""
    attrs = trial.user_attrs
    if (
        trial.state != TrialState.COMPLETE
        or trial.values is None
        or attrs.get(TrialKey.INFEASIBLE)
        or TrialKey.DUPLICATE_OF in attrs
    ):
        return None
    return attrs.get(TrialKey.RUNG)


def _strata(trials: Sequence[FrozenTrial], gene: str) -> dict[Any, list[FrozenTrial]]:
    strata: dict[Any, list[FrozenTrial]] = {}
    for trial in trials:
        strata.setdefault(trial.user_attrs[TrialKey.SPEC].get(gene), []).append(trial)
    return strata


def first_front(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
) -> list[FrozenTrial]:
    """The trials no other of `trials` dominates."""
    if not trials:
        return []
    maximize = [d == StudyDirection.MAXIMIZE for d in directions]
    mask = non_dominated(np.array([t.values for t in trials], dtype=float), maximize)
    return [t for t, on in zip(trials, mask, strict=True) if on]


def top_ranked(
    trials: Sequence[FrozenTrial], quota: int, directions: Sequence[StudyDirection]
) -> list[FrozenTrial]:
    """The `quota` best trials by non-dominated sorting of their values; within the front that
    does not fit whole, the most isolated first (crowding distance), then the oldest."""
    maximize = [d == StudyDirection.MAXIMIZE for d in directions]
    remaining = list(trials)
    chosen: list[FrozenTrial] = []
    while remaining and len(chosen) < quota:
        front = first_front(remaining, directions)
        if len(chosen) + len(front) > quota:
            values = np.array([t.values for t in front], dtype=float)
            spread = crowding_distance(as_losses(values, maximize))
            order = sorted(range(len(front)), key=lambda i: (-spread[i], front[i].number))
            front = [front[i] for i in order[: quota - len(chosen)]]
        chosen += front
        placed = {t.number for t in front}
        remaining = [t for t in remaining if t.number not in placed]
    return chosen


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front (points x objectives): the sum
    over objectives of the normalised gap between its two neighbours; the extremes are
    infinite, so a front's ends are always kept."""
    n, m = losses.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for objective in range(m):
        order = np.argsort(losses[:, objective], kind="stable")
        column = losses[order, objective]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance
