"""The Optuna sampler a config names (`conf/sampler/*.yaml`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

SAMPLERS = ("tpe", "nsga2", "random", "bruteforce")  # what `sampler=` may name


def make_sampler(config: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    name = config.get("name")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            # multivariate + group: the space is conditional (genes under `when`).
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=int(config["n_startup_trials"]),
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=int(config["population_size"])
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "bruteforce":
            return optuna.samplers.BruteForceSampler(seed=seed)
        if name == "grid":  # set by the driver for an ablation, with its cells
            return GridCellSampler(config["cells"])
    raise ValueError(f"sampler.name must be one of {list(SAMPLERS)}, got {name!r}")


class GridCellSampler(optuna.samplers.BaseSampler):
    """An ablation's grid of cells (`{"variant": ..., "seed": ...}`), in the order given.

    Every cell is enqueued, so this is asked only for a trial beyond them: a second worker
    that found no cell waiting, or the retry of a failed one. It gives the first cell that no
    finished or running trial holds, else the first one (a repeat, which the trial reuses).
    A failed trial holds no cell: it measured nothing, and it may have failed before its cell
    was chosen in full (Optuna's BruteForceSampler refuses such a trial on every later one).
    """

    def __init__(self, cells: Sequence[Mapping[str, Any]]) -> None:
        self._cells = [dict(cell) for cell in cells]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        chosen = trial.params.items()
        matching = [cell for cell in self._cells if chosen <= cell.items()]
        if not matching or param_name not in matching[0]:
            raise ValueError(
                f"the ablation's grid has no cell with {dict(chosen)} and {param_name!r}; "
                f"its cells: {self._cells}"
            )
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        held = [
            other.params.items()
            for other in study.get_trials(deepcopy=False, states=states)
            if other.number != trial.number
        ]
        free = [cell for cell in matching if not any(cell.items() <= h for h in held)]
        return (free or matching)[0][param_name]
