"""What a study's schedule spends: `python -m experiments.research.schedule_sizing`

Replays the study's own scheduling rule (`experiments.study.rule.decide`, through
`schedule_replay.replay_rule`, on the very `Schedule` a study runs) on simulated results, one
worker, for a study's config (default the Cityscapes study: rungs 2.5k/10k/40k, reduction 4,
head brackets): `--architectures` new trials over the heads, each with a seeded latent quality
and cost; its mIoU at a rung is that quality plus a head's learning-speed offset that fades
with the budget, plus noise. Prints, per study size, the trials and steps at every rung, the
share of training every architecture to the top, and GPU-hours per `--seconds-per-step`
(measure yours: `python -m experiments.train +arch=dfanet_a dataset=cityscapes
trainer=cityscapes trainer.steps=200` prints images/s). Sizing, not accuracy: what is spent
depends on how many trials share a front, which simulated results only suggest.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.study import StudyDirection

from experiments.config import compose_config
from experiments.research.schedule_replay import replay_rule, schedule_steps, trials_per_rung
from experiments.study.schedule import Schedule, ScheduleConfig
from search_space.spec import HEADS
from workbench.cli import CommandParser


def simulate(schedule: Schedule, architectures: int, seed: int) -> list[int]:
    """Trials that completed each rung when the schedule has nothing left to promote."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, 1.0, architectures)
    gmadds = rng.lognormal(np.log(2.0), 0.5, architectures)
    heads = [HEADS[i % len(HEADS)] for i in range(architectures)]
    speed = {head: rng.normal(0.0, 1.0) for head in HEADS}  # early lead, fading with budget

    def measure(index: int, rung: int) -> tuple[float, float]:
        fading = 1.0 / (1 + rung)
        miou = 50 + 8 * quality[index] + 4 * fading * speed[heads[index]]
        miou += rng.normal(0.0, 1.5 * fading) + 3 * np.log(gmadds[index])
        return float(miou), float(gmadds[index])

    genes = [{"head": head} for head in heads]
    study = replay_rule(schedule, genes, measure, n_trials=architectures)
    return trials_per_rung(schedule, study)


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.research.schedule_sizing", description=__doc__
    )
    parser.add_argument("--study", default="cityscapes", help="an option of conf/study/")
    parser.add_argument("--architectures", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds-per-step", type=float, default=0.5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = compose_config("search", [f"+study={args.study}"])
    settings = ScheduleConfig.from_dict(config["study"]["schedule"])
    steps = int(config["trainer"]["steps"])
    maximize_then_minimize = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)
    schedule = Schedule(
        settings.rungs(steps), settings.reduction, settings.stratify, maximize_then_minimize
    )
    print(f"study {args.study}: rungs {list(schedule.rungs)} steps, reduction "
          f"{schedule.reduction}, brackets by {schedule.stratify}")  # fmt: skip
    print("| architectures | seed | trials per rung | steps | share of all to the top | "
          "GPU-hours |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for architectures in args.architectures:
        for seed in args.seeds:
            counts = simulate(schedule, architectures, seed)
            spent = schedule_steps(schedule, counts)
            hours = spent * args.seconds_per_step / 3600
            print(f"| {architectures} | {seed} | {' / '.join(map(str, counts))} | {spent:,} | "
                  f"{spent / (architectures * steps):.0%} | {hours:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
