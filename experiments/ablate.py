"""`python -m experiments.ablate +ablation=NAME`: a grid of architectures x seeds, with a table.

The same pipeline as a search (see `experiments.search`), with the ablation's variants and
seeds enqueued as the study's trials; the report holds the ablation table (mean and spread of
mIoU over seeds, confidence intervals, paired differences to the baseline, the paper's figures).
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.study.command import run_command


@hydra.main(version_base="1.3", config_path="../conf", config_name="ablate")
def main(cfg: DictConfig) -> None:
    if "ablation" not in HydraConfig.get().runtime.choices:  # conf/ablate.yaml has its keys
        print(
            "error: choose an ablation: python -m experiments.ablate +ablation=table3 "
            "+profile=demo (the built-in data; see conf/ablation/ for the others)",
            file=sys.stderr,
        )
        sys.exit(2)
    run_command(cfg)


if __name__ == "__main__":
    main()
