"""What multi-objective early stopping saves: `python -m experiments.benchmarks.early_stopping`

Runs the demo study twice on a temporary storage, with the random sampler and one seed so that
both runs train the same architectures in the same order: early stopping off, then on. Prints
for each run the finished and pruned trials, the training steps run, the summed trial time and
the hypervolume of its front (one reference point for both): what stopping saved, and what it
cost the front. Extra arguments are Hydra overrides for both runs (`trainer.steps=160`, ...).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from analysis.hypervolume import hypervolume
from analysis.load import GMADDS, MIOU, finished, load_trials
from experiments.benchmarks import CONF
from experiments.search import search


def run_study(name: str, storage: Path, overrides: list[str]) -> optuna.Study:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose(
            "search",
            overrides=[
                "+study=demo",
                f"study.name={name}",
                "sampler=random",
                "tracking=none",
                f"storage.url=sqlite:///{storage}",
                f"output_dir={storage.parent}",
                *overrides,
            ],
        )
    values: dict[str, Any] = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    return search(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
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
