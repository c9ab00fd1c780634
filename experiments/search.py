"""`python -m experiments.search +study=demo|cityscapes`: the multi-objective study.

Configuration errors (a missing dataset, a bad space, an unknown sampler) fail before the first
trial. Re-running the same command resumes the study. `study.n_workers=N` runs N processes on
the same storage; several hosts run the same command against one PostgreSQL URL. The work is
done by `experiments.study` (setup, lifecycle, workers, command).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.study.command import run_command


@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
def main(cfg: DictConfig) -> None:
    run_command(cfg)


if __name__ == "__main__":
    main()
