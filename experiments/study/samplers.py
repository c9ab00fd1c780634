"""The Optuna sampler a search's settings name (`conf/sampler/*.yaml`), or an ablation's grid."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, assert_never

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class TpeSampling:
    name: Literal["tpe"]
    n_startup_trials: int  # random draws before the model (after the enqueued first trials)


@dataclass(frozen=True)
class Nsga2Sampling:
    name: Literal["nsga2"]
    population_size: int


@dataclass(frozen=True)
class RandomSampling:
    name: Literal["random"]


@dataclass(frozen=True)
class BruteForceSampling:
    name: Literal["bruteforce"]


# What `sampler=` may name: the `sampler:` section of a search.
SamplerSettings = TpeSampling | Nsga2Sampling | RandomSampling | BruteForceSampling


@dataclass(frozen=True)
class GridCells:
    """An ablation's sampler: no config option, set by the study's setup with its cells."""

    cells: tuple[Mapping[str, Any], ...]
    name: ClassVar[str] = "grid"


def make_sampler(settings: SamplerSettings | GridCells, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        match settings:
            case TpeSampling():
                # multivariate + group: the space is conditional (genes under `when`).
                return optuna.samplers.TPESampler(
                    seed=seed,
                    n_startup_trials=settings.n_startup_trials,
                    multivariate=True,
                    group=True,
                    constant_liar=True,
                )
            case Nsga2Sampling():
                return optuna.samplers.NSGAIISampler(
                    seed=seed, population_size=settings.population_size
                )
            case RandomSampling():
                return optuna.samplers.RandomSampler(seed=seed)
            case BruteForceSampling():
                return optuna.samplers.BruteForceSampler(seed=seed)
            case GridCells():
                return GridCellSampler(settings.cells)
            case _:
                assert_never(settings)


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
