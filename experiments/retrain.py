"""`python -m experiments.retrain study=NAME [trials=front|3,5,8] [seeds=[0,1,2]] [trainer=NAME]
[storage=URL] [key=value ...]`: retrain a search's trials with the full recipe, over seeds.

A search ranks architectures by a short proxy training; this trains the chosen trials (default:
the search's front) with the full recipe of the search's data (`trainer=demo` on the built-in
data, the paper's `cityscapes` recipe on Cityscapes; `trainer=` chooses another) on the very
data the search used, once per seed. The trainings are an ablation (one variant per trial,
`#N`) in a linked study, `NAME-retrain` (`name=` chooses another), in the search's storage:
stored, resumable (run the same command again) and shared by workers and hosts as a search is
(`study.n_workers=2`, or the same command on several hosts). Its report sets the proxy mIoU
beside the retrained mean and interval, ranks both (Kendall's tau, Spearman's rho) and says
which trials are still non-dominated ("the front held: 3 of 4"); the search's report is
rewritten with a link to it. The retrained checkpoints are kept: `python -m analysis.export
study=NAME-retrain trial=N onnx=true` exports one with its weights.

Other `key=value` arguments are Hydra overrides of the retraining (`study.n_workers=2`,
`trainer.steps=800`, `output_dir=...`); `dataset.KEY=VALUE` changes the search's data settings
(for example `dataset.root=` where this host mounts Cityscapes elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.errors import HydraException
from omegaconf import OmegaConf

from analysis.export import FRONT, ExportError, chosen_trials, trial_spec
from analysis.load import (
    DEFAULT_STORAGE,
    StorageNotFoundError,
    StudyNotFoundError,
    load_study,
    load_trials,
)
from analysis.pareto import pareto_front
from analysis.report import write_report
from analysis.retrain_verdict import retrain_study_name, variant_label
from experiments.config import CONFIG_ERRORS, compose_config
from experiments.study.command import run_and_report
from workbench.cli import CommandParser
from workbench.record import GMADDS, MIOU, RetrainKey, StudyKey, TrialKey
from workbench.secrets import mask_secrets

# The full recipe of each dataset: what its search's proxy stands in for.
FULL_RECIPES = {"synthetic": "demo", "cityscapes": "cityscapes"}


def seed_list(text: str) -> list[int]:
    """`[0,1,2]` or `0,1,2`: distinct integers."""
    items = [item.strip() for item in text.strip().strip("[]").split(",") if item.strip()]
    if not items or not all(item.lstrip("-").isdigit() for item in items):
        raise argparse.ArgumentTypeError(f"expected seeds as [0,1,2], got {text!r}")
    seeds = [int(item) for item in items]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct, got {text!r}")
    return seeds


def retrain_config(
    search: optuna.Study,
    trials: Sequence[optuna.trial.FrozenTrial],
    seeds: Sequence[int] | None,
    storage: str,
    trainer: str | None,
    overrides: Sequence[str],
    name: str | None = None,
) -> dict[str, Any]:
    """The ablation config that retrains `trials` of `search` over `seeds` (None: an
    ablation's default, conf/ablate.yaml) in its storage."""
    searched = search.user_attrs.get(StudyKey.CONFIG)
    if not isinstance(searched, dict) or "dataset" not in searched:
        raise ExportError(f"study '{search.study_name}' did not store its configuration")
    dataset_changes = [o for o in overrides if o.startswith("dataset.")]
    dataset = OmegaConf.merge(
        OmegaConf.create({"dataset": searched["dataset"]}), OmegaConf.from_dotlist(dataset_changes)
    )
    recipe = trainer or FULL_RECIPES.get(str(searched["dataset"].get("name")), "demo")
    defaults = {
        # Beside the search's own artefacts and report.
        "output_dir": searched["output_dir"],
        # The retrained networks are the ones to ship: `analysis.export` reads their weights.
        "study.keep_checkpoints": "true",
    }
    given = {o.split("=", 1)[0] for o in overrides}
    config = compose_config(
        "ablate",
        [
            f"trainer={recipe}",
            f"study.name={name or retrain_study_name(search.study_name)}",
            *(f"{key}={value}" for key, value in defaults.items() if key not in given),
            *(o for o in overrides if not o.startswith("dataset.")),
        ],
    )
    config["dataset"] = OmegaConf.to_container(dataset, resolve=True)["dataset"]  # type: ignore[index]
    config["storage"] = _same_storage(config["storage"], storage)
    front = set(pareto_front(load_trials(search))["number"].astype(int))
    variants, measured = {}, {}
    for trial in trials:
        label = variant_label(trial.number)
        genes = trial_spec(trial).to_dict()
        genes.pop("input_size")  # the data's, as for every ablation variant
        variants[label] = genes
        values = dict(zip(search.metric_names or [], trial.values or [], strict=False))
        measured[label] = {
            RetrainKey.NUMBER: trial.number,
            RetrainKey.MIOU: values.get(MIOU),
            RetrainKey.GMADDS: trial.user_attrs.get(TrialKey.GMADDS, values.get(GMADDS)),
            RetrainKey.STEPS: trial.user_attrs.get(TrialKey.STEPS),
            RetrainKey.ON_FRONT: trial.number in front,
        }
    config["ablation"] = {
        **config["ablation"],
        "name": f"retrain of {search.study_name}",
        "base": "dfanet_a",  # any registered design: every variant sets every gene
        "baseline": next(iter(variants)),
        "seeds": config["ablation"]["seeds"] if seeds is None else list(seeds),
        "variants": variants,
        "retrain_of": {RetrainKey.STUDY: search.study_name, RetrainKey.TRIALS: measured},
    }
    return config


def _same_storage(composed: dict[str, Any], location: str) -> dict[str, Any]:
    """The storage section for `location` (the search's URL or journal file)."""
    if "://" in location:
        return {**composed, "kind": "rdb", "url": location}
    return {"kind": "journal", "path": location}


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m experiments.retrain", description=__doc__)
    parser.add_argument("--study", required=True, help="the search's name")
    parser.add_argument("--trials", default=FRONT, help="'front' or trial numbers: 3,5,8")
    parser.add_argument("--seeds", type=seed_list, help="[0,1,2] (default: an ablation's)")
    parser.add_argument("--trainer", help="a conf/trainer recipe (default: the dataset's full)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="the search's storage")
    parser.add_argument("--name", help="the retraining study's name (default: STUDY-retrain)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    args = parser.parse_args(argv)
    try:
        search = load_study(args.study, args.storage)
        chosen = {
            trial.number: trial
            for which in args.trials.split(",")
            for trial in chosen_trials(search, which.strip())
        }
        trials = list(chosen.values())
        config = retrain_config(
            search, trials, args.seeds, args.storage, args.trainer, args.overrides, args.name
        )
    except (StorageNotFoundError, StudyNotFoundError, HydraException, *CONFIG_ERRORS) as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        return 2
    run_and_report(config)
    # The search's report links to this one.
    write_report(search, Path(config["output_dir"]) / "reports" / search.study_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
