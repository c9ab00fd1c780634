"""The schedule replayed on a stored full run: `python -m experiments.research.schedule_replay`

Takes a stored study that trained every architecture to the top budget and evaluated it on the
way (`trainer.eval_every` dividing every rung's budget), and replays the study's own scheduling
rule (`experiments.study.rule.decide`, the very function a study's workers call, on the
`Schedule` a study runs, its brackets as the driver sets them; one worker; the architectures in
the order the study met them, its first trials enqueued as the study enqueues them) for each
rung setting asked: every `--reduction` with every `--min-steps`. A trial's mIoU at a rung is
the full run's evaluation at that step, which is exactly what the schedule's trial would
measure (training is a function of the seed and the step: `schedule_savings` shows the gap is
0). So a replay is the one-worker schedule run of the
same architectures: exact where the schedule run would draw them in the same order (the random
sampler, as `schedule_savings` uses; TPE and NSGA-II learn from the rungs and draw others).
Prints, per setting, the trials at each rung, the training steps against the full run's, which
of the full run's front trials the replayed front (drawn from the top rung) keeps, and its
hypervolume at the full run's mIoU; for a run with brackets (the heads), each bracket's best
mIoU at every evaluated step and the step from which they rank as at the top budget: where the
top rung must be for the heads to be compared fairly (measured inside the full run's learning-
rate schedule; a recipe that ends at that step has decayed sooner). One full run then chooses
a schedule in seconds, with no training: the demo's is `schedule_savings --storage PATH
trainer.eval_every=25`'s first run (study `savings-0`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from analysis.hypervolume import hypervolume
from analysis.pareto import non_dominated
from analysis.stats import kendall_tau
from experiments.study.progress import is_finished_architecture
from experiments.study.rule import Abort, RunEnqueued, StartNew, Stop, Wait, decide
from experiments.study.schedule import Promotion, Schedule, ScheduleConfig, first_front
from experiments.study.setup import varied_gene
from search_space.space import load_space
from workbench.cli import CommandParser
from workbench.record import StudyKey, TrialKey

# (architecture index, rung) -> the trial's values at that rung: mIoU first, then the costs.
Measure = Callable[[int, int], Sequence[float]]


def replay_rule(
    schedule: Schedule,
    genes: Sequence[Mapping[str, Any]],
    measure: Measure,
    *,
    n_trials: int,
    first_trials: Sequence[Mapping[str, Any]] = (),
) -> optuna.Study:
    """Run the study's rule (`decide`) to its end on `measure`d results, one worker, in an
    in-memory study: the architectures are `genes` in the order the study met them (each one's
    spec: what brackets read), the first `len(first_trials)` enqueued at the start with those
    user attributes, as a study enqueues its first trials (a reference design or a probe among
    them climbs to the top rung, as in a study), the others drawn in turn whenever the rule
    starts a new one, up to `n_trials` finished. Returns the study: every trial ran and is
    COMPLETE with its `rung` (an enqueued one runs whatever the target, as in a study)."""
    if max(len(first_trials), n_trials) > len(genes):
        raise ValueError(
            f"a replay of {len(genes)} architectures cannot enqueue {len(first_trials)} first "
            f"or run to a target of {n_trials}"
        )
    study = optuna.create_study(directions=list(schedule.directions))
    choices = list(range(len(genes)))
    for index, attrs in enumerate(first_trials):
        study.enqueue_trial({"architecture": index}, user_attrs=dict(attrs))
    drawn = iter(range(len(first_trials), len(genes)))

    def run_next() -> None:
        trial = study.ask()  # the oldest waiting trial, else a new one, as `optimize` asks
        index = trial.suggest_categorical("architecture", choices)
        rung = trial.user_attrs.get(TrialKey.RUNG, 0)  # a promotion is enqueued with its own
        trial.set_user_attr(TrialKey.SPEC, dict(genes[index]))
        trial.set_user_attr(TrialKey.RUNG, rung)
        study.tell(trial, list(measure(index, rung)))

    while True:
        # One worker that nothing fails: no trial runs elsewhere, fails or repeats.
        decision = decide(
            study.get_trials(deepcopy=False),
            n_trials=n_trials,
            schedule=schedule,
            heartbeats=False,
            failed_since_start=0,
            max_failed_trials=1,
            repeats=0,
        )
        match decision:
            case Promotion():
                study.enqueue_trial(decision.parent.params, user_attrs=decision.user_attrs())
            case StartNew():
                study.enqueue_trial({"architecture": next(drawn)})  # the sampler's draw
                run_next()
            case RunEnqueued():
                run_next()
            case Stop():
                return study
            case Wait() | Abort():
                raise AssertionError(f"{decision} in a replay, where nothing runs elsewhere")


def ran(study: optuna.Study) -> list[FrozenTrial]:
    """The trials a replay ran, in order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trials_per_rung(schedule: Schedule, study: optuna.Study) -> list[int]:
    rungs = [t.user_attrs[TrialKey.RUNG] for t in ran(study)]
    return [rungs.count(rung) for rung in range(len(schedule.rungs))]


def schedule_steps(schedule: Schedule, counts: Sequence[int]) -> int:
    """Training steps of a schedule whose rungs were completed `counts` times: a promotion
    trains on from the checkpoint of the rung below."""
    added = np.diff((0, *schedule.rungs))
    return int(sum(n * step for n, step in zip(counts, added, strict=True)))


# ------------------------------------------------------------------------- the full run
@dataclass(frozen=True)
class FullRun:
    """A stored study's architectures, each trained to the top budget: its curve by step."""

    name: str
    directions: tuple[StudyDirection, ...]
    genes: list[dict[str, Any]]
    curves: list[dict[int, float]]  # step -> mIoU
    costs: list[tuple[float, ...]]  # the objectives after mIoU
    numbers: list[int]  # the stored trial numbers
    first_trials: list[dict[str, Any]]  # the user attributes the first ones were enqueued with
    target: int  # how many of them the study finished by its target: the replay's target
    top: int  # the budget every architecture reached
    stratify: str | None  # the brackets a schedule of this study would have
    references_to_top: bool  # whether its schedule would carry its references to the top
    failed: int  # trials that failed (each retried by a later one, or never measured)

    def miou(self, index: int, step: int) -> float:
        curve = self.curves[index]
        if step not in curve:
            raise ValueError(
                f"study {self.name!r}, trial {self.numbers[index]}: no evaluation at step "
                f"{step} (evaluated at {sorted(curve)}); a rung at {step} steps needs the full "
                "run trained with trainer.eval_every dividing it"
            )
        return curve[step]

    def front(self) -> set[int]:
        """The indices of the full run's non-dominated architectures."""
        values = np.array([(c[self.top], *k) for c, k in zip(self.curves, self.costs, strict=True)])
        maximize = [d == StudyDirection.MAXIMIZE for d in self.directions]
        return {i for i, on in enumerate(non_dominated(values, maximize)) if on}


def load_full_run(study: optuna.Study) -> FullRun:
    """Every complete trial of a study run without a schedule, in the order the study ran them;
    refused when the study had a schedule, stopped trials early, or its trials ended at
    different budgets."""
    name = study.study_name
    config = study.user_attrs.get(StudyKey.CONFIG, {})
    settings = config.get("study", {})
    if settings.get("schedule", {}).get("enabled"):
        raise ValueError(
            f"study {name!r} ran under a schedule: a replay needs every architecture trained to "
            "the top budget (study.schedule.enabled=false)"
        )
    everything = study.get_trials(deepcopy=False)
    stopped = [t.number for t in everything if t.state == TrialState.PRUNED and _trained(t)]
    if stopped:
        raise ValueError(
            f"study {name!r}: trials {stopped} were stopped early; a replay needs every "
            "architecture trained to the top budget (study.early_stopping.enabled=false)"
        )
    trials = [
        t for t in everything
        if t.state == TrialState.COMPLETE and not t.user_attrs.get(TrialKey.INFEASIBLE)
        and TrialKey.DUPLICATE_OF not in t.user_attrs
    ]  # fmt: skip
    if not trials:
        raise ValueError(f"study {name!r} has no complete trial to replay")
    budgets = {t.user_attrs.get(TrialKey.STEPS) for t in trials}
    if len(budgets) != 1:
        raise ValueError(
            f"study {name!r}: its trials ended at {sorted(map(str, budgets))} steps; a replay "
            "needs every one at the same top budget"
        )
    enqueued_as = [
        {key: t.user_attrs[key] for key in _ENQUEUED_AS if key in t.user_attrs} for t in trials
    ]
    first = sum(map(bool, enqueued_as))
    if any(enqueued_as[first:]):
        raise ValueError(
            f"study {name!r}: an enqueued first trial ran after sampled ones (a resume that "
            "added designs, or a retry): the replay cannot know when the study would have "
            "begun promoting"
        )
    # The study reached its target at its `n_trials`-th finished architecture. An infeasible
    # one counts but is never trained: the replay, without it, reaches the target sooner.
    finished = [t.number for t in everything if is_finished_architecture(t)]
    counted = set(finished[: int(settings.get("n_trials", len(finished)))])
    return FullRun(
        name=study.study_name,
        directions=tuple(study.directions),
        genes=[t.user_attrs[TrialKey.SPEC] for t in trials],
        curves=[_curve(t) for t in trials],
        costs=[tuple(_values(t)[1:]) for t in trials],
        numbers=[t.number for t in trials],
        first_trials=enqueued_as[:first],
        target=sum(t.number in counted for t in trials),
        top=int(budgets.pop()),
        stratify=varied_gene(
            load_space(config["space"]) if "space" in config else None,
            settings.get("schedule", {}).get("stratify"),
        ),
        # Stored before the setting existed: references were ranked like any trial.
        references_to_top=bool(settings.get("schedule", {}).get("references_to_top", False)),
        failed=sum(t.state == TrialState.FAIL for t in everything),
    )


def _trained(trial: FrozenTrial) -> bool:
    """Stopped after some training (a refused trial, "not started", trained nothing)."""
    return bool(trial.user_attrs.get(TrialKey.CURVE))


def _curve(trial: FrozenTrial) -> dict[int, float]:
    return {int(step): float(miou) for step, miou in trial.user_attrs.get(TrialKey.CURVE, [])}


def _values(trial: FrozenTrial) -> list[float]:
    assert trial.values is not None  # COMPLETE
    return list(trial.values)


_ENQUEUED_AS = (TrialKey.REFERENCE, TrialKey.FIRST_DRAW, TrialKey.PROBE)  # a first trial's marks


# ------------------------------------------------------------------------------ a replay
@dataclass(frozen=True)
class Outcome:
    """What one rung setting would have spent and found."""

    schedule: Schedule
    counts: list[int]  # trials that completed each rung
    lineage: list[tuple[int, int]]  # (architecture index, rung) of each trial, in order
    steps: int
    share: float  # of training every architecture to the top
    kept: int  # of the full run's front, on the replayed front
    front: int  # the full run's front size
    hypervolume_ratio: float  # replayed front's against the full run's, at top-budget mIoU


def replay(run: FullRun, reduction: int, min_steps: int) -> Outcome:
    probes = sum(TrialKey.PROBE in attrs for attrs in run.first_trials)
    settings = ScheduleConfig(
        True, reduction, min_steps, run.stratify, run.references_to_top, probes
    )
    schedule = Schedule(
        settings.rungs(run.top),
        reduction,
        run.stratify,
        run.directions,
        references_to_top=run.references_to_top,
        probes=probes,
    )

    def measure(index: int, rung: int) -> tuple[float, ...]:
        return (run.miou(index, schedule.rungs[rung]), *run.costs[index])

    study = replay_rule(
        schedule, run.genes, measure, n_trials=run.target, first_trials=run.first_trials
    )
    trials = ran(study)
    top = [t for t in trials if t.user_attrs[TrialKey.RUNG] == len(schedule.rungs) - 1]
    replayed = {int(t.params["architecture"]) for t in first_front(top, run.directions)}
    full = run.front()
    counts = trials_per_rung(schedule, study)
    steps = schedule_steps(schedule, counts)
    return Outcome(
        schedule=schedule,
        counts=counts,
        lineage=[(int(t.params["architecture"]), t.user_attrs[TrialKey.RUNG]) for t in trials],
        steps=steps,
        share=steps / (len(run.genes) * run.top),
        kept=len(replayed & full),
        front=len(full),
        hypervolume_ratio=_volume(run, replayed) / _volume(run, full),
    )


def _volume(run: FullRun, indices: set[int]) -> float:
    """Hypervolume at the top budget's mIoU, against mIoU 0 and 1.1 times the costliest
    architecture (the reference `schedule_savings` uses)."""
    maximize = [d == StudyDirection.MAXIMIZE for d in run.directions]
    points = np.array([(run.curves[i][run.top], *run.costs[i]) for i in sorted(indices)])
    reference = [0.0, *(1.1 * max(c[k] for c in run.costs) for k in range(len(run.costs[0])))]
    return hypervolume(points, reference, maximize)


# ----------------------------------------------------- the brackets' ranking by budget
@dataclass(frozen=True)
class BracketRanking:
    """At one step of the full run: each bracket's best mIoU, and how alike that ranks the
    brackets to the top budget (Kendall's tau)."""

    step: int
    best: dict[str, float]  # bracket (the gene's value, as text) -> its best mIoU there
    tau: float


def bracket_rankings(run: FullRun) -> list[BracketRanking]:
    """For a run with brackets (the heads), the brackets' ranking at every step at which every
    architecture was evaluated. The heads are compared at the top rung the schedule carries
    each head's best to, so that rung must be a budget from which they rank as at the top:
    on the demo's data, heads learn at different speeds (RESULTS.md)."""
    if run.stratify is None:
        return []
    brackets = [str(genes.get(run.stratify)) for genes in run.genes]
    names = sorted(set(brackets))
    steps = sorted(set.intersection(*(set(curve) for curve in run.curves)))

    def best(step: int) -> dict[str, float]:
        return {
            name: max(c[step] for c, b in zip(run.curves, brackets, strict=True) if b == name)
            for name in names
        }

    top = pd.Series(best(run.top))
    return [
        BracketRanking(step, at, kendall_tau(pd.Series(at)[top.index], top))
        for step, at in ((step, best(step)) for step in steps)
    ]


def settled_step(rankings: Sequence[BracketRanking]) -> int | None:
    """The first step from which every later evaluation ranks the brackets in the top
    budget's order (tau 1), or None when fewer than 3 brackets give no ranking to compare.
    A step with no ranking (tied brackets: tau NaN) is not agreement."""
    if not rankings or math.isnan(rankings[-1].tau):
        return None
    settled = rankings[-1].step
    for ranking in reversed(rankings):
        if not ranking.tau >= 1.0 - 1e-9:
            break
        settled = ranking.step
    return settled


def _print_bracket_rankings(run: FullRun) -> None:
    rankings = bracket_rankings(run)
    settled = settled_step(rankings)
    if settled is None:
        return
    names = list(rankings[0].best)
    print(f"\neach {run.stratify}'s best mIoU by step, and Kendall's tau of their ranking "
          f"against {run.top} steps:")  # fmt: skip
    print(f"| steps | {' | '.join(names)} | tau |\n|---|{'---|' * len(names)}---|")
    for ranking in rankings:
        cells = " | ".join(f"{ranking.best[name]:.1f}" for name in names)
        print(f"| {ranking.step} | {cells} | {ranking.tau:.2f} |")
    print(f"the {run.stratify}s rank as at {run.top} steps from step {settled} on: a schedule "
          f"comparing them needs its top rung at {settled} steps or more")  # fmt: skip


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.research.schedule_replay", description=__doc__
    )
    parser.add_argument("--storage", type=Path, required=True, help="the full run's SQLite file")
    parser.add_argument("--study-name", default="savings-0")
    parser.add_argument("--reduction", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--min-steps", type=int, nargs="+", default=[25, 50])
    args = parser.parse_args()
    if not args.storage.is_file():
        parser.error(f"--storage {args.storage}: no such file")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stored = optuna.load_study(study_name=args.study_name, storage=f"sqlite:///{args.storage}")
    run = load_full_run(stored)
    print(f"study {run.name!r}: {len(run.genes)} architectures to {run.top} steps "
          f"({len(run.first_trials)} enqueued first, a target of {run.target}; {run.failed} "
          "failed trials left out), "
          f"brackets by {run.stratify}; the full run's front: "
          f"{sorted(run.numbers[i] for i in run.front())}")  # fmt: skip
    print("| reduction | min steps | rungs | trials per rung | training steps | front kept | "
          "hypervolume |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for reduction, min_steps in itertools.product(args.reduction, args.min_steps):
        try:
            outcome = replay(run, reduction, min_steps)
        except ValueError as error:
            print(f"| {reduction} | {min_steps} | {error} | | | | |")
            continue
        print(
            f"| {reduction} | {min_steps} | {'/'.join(map(str, outcome.schedule.rungs))} | "
            f"{' / '.join(map(str, outcome.counts))} | {outcome.steps} ({outcome.share:.0%}) | "
            f"{outcome.kept} of {outcome.front} | {outcome.hypervolume_ratio - 1:+.1%} |"
        )
    _print_bracket_rankings(run)


if __name__ == "__main__":
    main()
