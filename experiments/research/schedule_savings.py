"""What the multi-fidelity schedule saves: `python -m experiments.research.schedule_savings`

Runs the demo study twice on a temporary storage with the random sampler and one seed, so that
both runs measure the same architectures: once training every architecture to the top budget
(`--steps`), once under the schedule (rungs `--steps / --reduction**k` down to `--min-steps`,
every head's best promoted). Training is a function of the seed and the step, so a trial the
schedule carries to the top rung has the very mIoU the first run measured for it (the largest
difference is printed). Prints the steps and seconds each run spent, the fronts (the
schedule's drawn from its top rung), which of the first run's front trials the schedule's front
kept, and the hypervolume of both fronts at top-budget mIoU against one reference point.
Extra arguments are Hydra overrides for both runs. `--storage PATH` keeps both studies in that
SQLite file: a later call reuses the first run (deterministic, and the longer one) and runs
the schedule again from scratch, which is how a change to the schedule is measured.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import nullcontext
from pathlib import Path

import optuna
import pandas as pd

from analysis.load import finished, load_trials
from analysis.pareto import pareto_front
from analysis.rungs import rung_counts, steps_trained
from experiments.research.demo_runs import front_hypervolume, run_demo_study, shared_reference
from workbench.cli import CommandParser
from workbench.record import GMADDS, MIOU, TrialKey


def architectures(study: optuna.Study) -> pd.DataFrame:
    """The study's trials (`load_trials`) with each one's genes as one comparable string."""
    df = load_trials(study)
    genes = {t.number: t.user_attrs.get(TrialKey.SPEC) for t in study.get_trials(deepcopy=False)}
    df["architecture"] = df["number"].map(lambda n: json.dumps(genes[n], sort_keys=True))
    return df


def _forget(name: str, storage: Path) -> None:
    url = f"sqlite:///{storage}"
    if storage.exists() and name in optuna.get_all_study_names(url):
        optuna.delete_study(study_name=name, storage=url)


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.research.schedule_savings", description=__doc__
    )
    parser.add_argument("--architectures", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400, help="the top budget")
    parser.add_argument("--reduction", type=int, default=4)
    parser.add_argument("--min-steps", type=int, default=25)
    parser.add_argument("--storage", type=Path, help="keep the studies in this SQLite file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both runs")
    args = parser.parse_args()
    common = [
        f"study.n_trials={args.architectures}",
        f"trainer.steps={args.steps}",
        "study.latency.measure=false",  # the same in both runs: not what is compared
        *args.overrides,
    ]
    arms = {
        "every trial to the top": ["study.schedule.enabled=false"],
        "schedule": [
            "study.schedule.enabled=true",
            f"study.schedule.reduction={args.reduction}",
            f"study.schedule.min_steps={args.min_steps}",
        ],
    }
    kept = nullcontext(str(args.storage.parent)) if args.storage else None
    with kept or tempfile.TemporaryDirectory() as folder_path:
        storage = args.storage or Path(folder_path) / "studies.db"
        storage.parent.mkdir(parents=True, exist_ok=True)
        runs = {}
        for index, (label, extra) in enumerate(arms.items()):
            name = f"savings-{index}"
            if label == "schedule":
                _forget(name, storage)  # the schedule under test is always measured afresh
            runs[label] = architectures(run_demo_study(name, storage, [*common, *extra]))
    full, scheduled = runs.values()
    by_architecture = finished(full).set_index("architecture")[MIOU]
    top = finished(scheduled)
    differences = (top[MIOU] - top["architecture"].map(by_architecture)).abs()
    fronts = {label: pareto_front(df) for label, df in runs.items()}
    full_front = set(fronts["every trial to the top"]["architecture"])
    kept = set(fronts["schedule"]["architecture"]) & full_front
    reference = shared_reference([full, scheduled])
    steps = {label: steps_trained(df) for label, df in runs.items()}

    print(f"\nrungs: {json.dumps(rung_counts(scheduled).to_dict(orient='records'))}")
    print(f"largest mIoU gap of a top-rung trial to the first run: {differences.max():.1e}")
    print(f"hypervolume reference point: mIoU 0, GMAdds {reference[1]:.3f}")
    print("| run | architectures | trials | training steps | trial seconds | front | "
          "front hypervolume |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label, df in runs.items():
        done = df[df["state"] == "COMPLETE"]
        front = fronts[label]
        print(
            f"| {label} | {args.architectures} | {len(done)} | {steps[label]} "
            f"({steps[label] / steps['every trial to the top']:.0%}) | "
            f"{done['duration_s'].sum():.0f} | {', '.join(f'#{n}' for n in front['number'])} | "
            f"{front_hypervolume(front, reference):.3f} |"
        )
    missed = [
        round(float(row[GMADDS]), 3)
        for _, row in fronts["every trial to the top"].iterrows()
        if row["architecture"] not in kept
    ]
    print(
        f"the schedule's front kept {len(kept)} of the {len(full_front)} trials of the first "
        f"run's front; GMAdds of those it missed: {sorted(missed) or 'none'}"
    )


if __name__ == "__main__":
    main()
