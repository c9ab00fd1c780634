"""What a study's schedule spends: `python -m experiments.research.schedule_sizing`

Replays the study's own scheduling rule (`experiments.study.rule.decide`, through
`schedule_replay.replay_rule`, on the very `Schedule` a study runs) on simulated results, one
worker, for a study's config (default the Cityscapes study: rungs 2.5k/10k/40k, reduction 4,
head brackets): `--architectures` trials in all, the study's own first trials first (its
reference designs, first draws per head and `--probes` probes, as its proposer enqueues them;
a target below them is raised to them, as the study raises it), then new ones over the heads.
Each has a seeded latent quality and cost; its mIoU at a rung is that quality plus a head's
learning-speed offset that fades with the budget, plus noise. Prints, per study size and number
of probes, the trials and steps at every rung, the share of training every architecture to the
top, what the references and the probes cost (every step of their lineages, and the steps the
study trains beyond the same study with its references ranked like any trial and its probes
plain draws) with their share of the study's steps, and GPU-hours per `--seconds-per-step`
(measure yours: `python -m experiments.train +arch=dfanet_a dataset=cityscapes
trainer=cityscapes trainer.steps=200` prints images/s).
Sizing, not accuracy: what is spent depends on how many trials share a front, which simulated
results only suggest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna

from experiments.config import compose_config
from experiments.research.schedule_replay import ran, replay_rule, schedule_steps, trials_per_rung
from experiments.study.schedule import Schedule
from experiments.study.settings import StudySettings
from experiments.study.setup import covering_first_trials, make_schedule, space_proposer
from search_space.space import load_space
from search_space.spec import HEADS
from workbench.cli import CommandParser
from workbench.record import TrialKey

FirstTrials = Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]  # (genes, user attributes)


@dataclass(frozen=True)
class Spending:
    """What one simulated study trained."""

    counts: list[int]  # trials that completed each rung
    steps: int  # in all
    references: int  # every step of the reference designs' lineages
    probes: int  # every step of the probes' lineages


def simulate(
    schedule: Schedule, architectures: int, seed: int, first_trials: FirstTrials = ()
) -> Spending:
    """What the rule trains once it has nothing left to promote: `first_trials` (each one's
    genes and the attributes it is enqueued with) first, then new architectures to
    `architectures` in all. An architecture's results depend on the seed and its place alone,
    so two schedules simulated with one seed see the same results."""
    rng = np.random.default_rng(seed)
    heads = [str(genes["head"]) for genes, _ in first_trials]
    heads += [HEADS[i % len(HEADS)] for i in range(architectures - len(heads))]
    quality = rng.normal(0.0, 1.0, len(heads))
    gmadds = rng.lognormal(np.log(2.0), 0.5, len(heads))
    speed = {head: rng.normal(0.0, 1.0) for head in HEADS}  # early lead, fading with budget
    noise = rng.normal(0.0, 1.5, (len(heads), len(schedule.rungs)))

    def measure(index: int, rung: int) -> tuple[float, float]:
        fading = 1.0 / (1 + rung)
        miou = 50 + 8 * quality[index] + fading * (4 * speed[heads[index]] + noise[index, rung])
        return float(miou + 3 * np.log(gmadds[index])), float(gmadds[index])

    genes = [{"head": head} for head in heads]
    study = replay_rule(
        schedule,
        genes,
        measure,
        n_trials=architectures,
        first_trials=[attrs for _, attrs in first_trials],
    )
    trials = ran(study)
    added = np.diff((0, *schedule.rungs))

    def steps_of(key: str) -> int:
        return int(sum(added[t.user_attrs[TrialKey.RUNG]] for t in trials if key in t.user_attrs))

    counts = trials_per_rung(schedule, study)
    return Spending(
        counts=counts,
        steps=schedule_steps(schedule, counts),
        references=steps_of(TrialKey.REFERENCE),
        probes=steps_of(TrialKey.PROBE),
    )


def without_marks(schedule: Schedule, first_trials: FirstTrials) -> tuple[Schedule, FirstTrials]:
    """The same study with its references ranked like any trial and its probes plain random
    draws: what it would train if neither climbed whatever its rank."""
    plain = [(genes, {k: v for k, v in attrs.items() if k != TrialKey.PROBE})
             for genes, attrs in first_trials]  # fmt: skip
    return replace(schedule, references_to_top=False, probes=0), plain


def study_first_trials(config: Mapping[str, Any], schedule: Schedule) -> FirstTrials:
    """The first trials the study of `config` enqueues under `schedule` (its proposer's), each
    with its genes."""
    study = StudySettings.from_dict(config["study"])
    space = load_space(config["space"])
    input_size = study.input_size or (256, 512)  # the genes the rule reads do not depend on it
    proposer = space_proposer(study, space, input_size, schedule)
    return [
        (proposer.space.spec_from_params(params).to_dict(), attrs)
        for params, attrs in proposer.initial_trials()
    ]


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.research.schedule_sizing", description=__doc__
    )
    parser.add_argument("--study", default="cityscapes", help="an option of conf/study/")
    parser.add_argument("--architectures", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--probes", type=int, nargs="+", help="default: the study's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds-per-step", type=float, default=0.5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = compose_config("search", [f"+study={args.study}"])
    settings = StudySettings.from_dict(config["study"])
    steps = int(config["trainer"]["steps"])
    studied = make_schedule(settings, steps, load_space(config["space"]))
    print(f"study {args.study}: rungs {list(studied.rungs)} steps, reduction "
          f"{studied.reduction}, brackets by {studied.stratify}, references to the top: "
          f"{studied.references_to_top}")  # fmt: skip
    print("| architectures | probes | seed | trials per rung | steps | share of all to the top "
          "| references' steps | probes' steps | together | beyond their rank "
          "| GPU-hours |")  # fmt: skip
    print(f"|{'---|' * 11}")
    for probes in args.probes or [studied.probes]:
        schedule = replace(studied, probes=probes)
        first = study_first_trials(config, schedule)
        plain_schedule, plain_first = without_marks(schedule, first)
        for asked in args.architectures:
            asked_for = replace(settings, n_trials=asked)
            architectures = covering_first_trials(asked_for, [a for _, a in first]).n_trials
            for seed in args.seeds:
                spent = simulate(schedule, architectures, seed, first)
                plain = simulate(plain_schedule, architectures, seed, plain_first)
                hours = spent.steps * args.seconds_per_step / 3600
                both = spent.references + spent.probes
                extra = spent.steps - plain.steps
                print(f"| {architectures} | {probes} | {seed} | "
                      f"{' / '.join(map(str, spent.counts))} | {spent.steps:,} | "
                      f"{spent.steps / (architectures * steps):.0%} | "
                      f"{spent.references:,} ({spent.references / spent.steps:.0%}) | "
                      f"{spent.probes:,} ({spent.probes / spent.steps:.0%}) | "
                      f"{both:,} ({both / spent.steps:.0%}) | "
                      f"{extra:,} ({extra / spent.steps:.0%}) | {hours:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
