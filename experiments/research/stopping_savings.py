"""What multi-objective early stopping saves: `python -m experiments.research.stopping_savings`

Runs the demo study of the DFA space twice on a temporary storage, with its 80-step proxy and
without the multi-fidelity schedule, the random sampler and one seed so that both runs train the
same architectures in the same order: early stopping off, then on. Prints
for each run the finished and pruned trials, the training steps run, the summed trial time and
the hypervolume of its front (one reference point for both): what stopping saved, and what it
cost the front. Extra arguments are Hydra overrides for both runs (`trainer.steps=160`, ...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from analysis.load import finished, load_trials
from experiments.research.demo_runs import front_hypervolume, run_demo_study, shared_reference
from workbench.cli import CommandParser

# The DFA family from its two paper designs: the set of architectures measured.
DFA_SPACE = ("space=dfanet", "study.reference_designs=[dfanet_a,dfanet_b]",
             "study.first_trials_per_head=0", "trainer=proxy_demo",
             "study.schedule.enabled=false")  # fmt: skip


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.research.stopping_savings", description=__doc__
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
                run_demo_study(
                    label,
                    storage,
                    [*DFA_SPACE, f"study.n_trials={args.trials}", *args.overrides, *extra],
                )
            )
            for label, extra in (("stopping-off", []), ("stopping-on", stopping))
        }
    reference = shared_reference(list(runs.values()))
    print(f"\nhypervolume reference point: mIoU 0, GMAdds {reference[1]:.3f}")
    print("| run | finished | pruned | training steps | trial seconds | front hypervolume |")
    print("|---|---|---|---|---|---|")
    for label, df in runs.items():
        done = df[df["state"].isin(["COMPLETE", "PRUNED"])]
        volume = front_hypervolume(finished(df), reference)
        print(
            f"| {label} | {len(done)} | {int((done['state'] == 'PRUNED').sum())} | "
            f"{int(done['steps'].sum())} | {done['duration_s'].sum():.0f} | {volume:.3f} |"
        )


if __name__ == "__main__":
    main()
