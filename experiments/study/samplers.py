"""The Optuna sampler a config names (`conf/sampler/*.yaml`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import optuna

SAMPLERS = ("tpe", "nsga2", "random", "bruteforce")


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
    raise ValueError(f"sampler.name must be one of {list(SAMPLERS)}, got {name!r}")
