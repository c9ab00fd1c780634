"""What multi-objective early stopping saves: `python -m experiments.benchmarks.stopping_savings`

Runs the demo study twice on a temporary storage, with the random sampler and one seed so that
both runs train the same architectures in the same order: early stopping off, then on. Prints
for each run the finished and pruned trials, the training steps run, the summed trial time and
the hypervolume of its front (one reference point for both): what stopping saved, and what it
cost the front. Extra arguments are Hydra overrides for both runs (`trainer.steps=160`, ...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import optuna

from analysis.hypervolume import hypervolume
from analysis.load import finished, load_trials
from analysis.record import GMADDS, MIOU
from experiments.config import compose_config
from experiments.study.driver import search
from search_space.cli import CommandParser


def run_study(name: str, storage: Path, overrides: list[str]) -> optuna.Study:
    config = compose_config(
        "search",
        [
            "+study=demo",
            f"study.name={name}",
            # The DFA family from its two paper designs: the set of architectures measured.
            "space=dfanet",
            "study.reference_designs=[dfanet_a,dfanet_b]",
            "study.first_trials_per_head=0",
            "sampler=random",
            "tracking=none",
            f"storage.url=sqlite:///{storage}",
            f"output_dir={storage.parent}",
            *overrides,
        ],
    )
    return search(config)


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.benchmarks.stopping_savings", description=__doc__
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--min-dominating", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both runs")
    args = parser.parse_args()
    stopping = [
        "study.early_stopping.enabled=true",
        f"study.early_stopping.min_dominating={args.min_dominating}",
    ]
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder) / "studies.db"
        runs = {
            label: load_trials(
                run_study(
                    label, storage, [f"study.n_trials={args.trials}", *args.overrides, *extra]
                )
            )
            for label, extra in (("stopping-off", []), ("stopping-on", stopping))
        }
    worst_cost = max(float(finished(df)[GMADDS].max()) for df in runs.values())
    reference = (0.0, 1.1 * worst_cost)
    print(f"\nhypervolume reference point: mIoU 0, GMAdds {reference[1]:.3f}")
    print("| run | finished | pruned | training steps | trial seconds | front hypervolume |")
    print("|---|---|---|---|---|---|")
    for label, df in runs.items():
        done = df[df["state"].isin(["COMPLETE", "PRUNED"])]
        points = finished(df)[[MIOU, GMADDS]].to_numpy(dtype=np.float64)
        volume = hypervolume(points, reference, maximize=(True, False))
        print(
            f"| {label} | {len(done)} | {int((done['state'] == 'PRUNED').sum())} | "
            f"{int(done['steps'].sum())} | {done['duration_s'].sum():.0f} | {volume:.3f} |"
        )


if __name__ == "__main__":
    main()
