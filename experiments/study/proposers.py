"""Where a study's architectures come from: a search space, or an ablation's grid.

A search (`SpaceProposer`): the sampler explores the space; the paper's designs come first.

An ablation (`AblationProposer`): named variants of a base architecture, each trained with
several seeds, through the same trial pipeline as a search (one Optuna study, every (variant,
seed) enqueued), so it is stored, resumable, parallel and reported the same way. Config
(`conf/ablation/*.yaml`):

    ablation:
      base: backbone_a           # registered architecture the variants change
      baseline: A x1             # the variant every other one is compared with
      seeds: [0, 1, 2]
      variants:
        A x1: {}                 # gene overrides of `base`
        A x2: {towers: 2}
        B x1: {arch: backbone_b} # or another registered architecture (+ overrides)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from search_space.published import find_published
from search_space.registry import get_arch, matching_reference
from search_space.space import SearchSpace, SpaceError
from search_space.spec import ArchSpec, SpecError
from workbench.record import KIND_ABLATION, KIND_SEARCH, StudyKey, TrialKey

log = logging.getLogger(__name__)


class Proposer(Protocol):
    """Where a study's architectures come from: a search space, or an ablation's grid."""

    def propose(self, trial: optuna.Trial) -> tuple[ArchSpec, int]:
        """The trial's architecture and training seed."""
        ...

    def initial_trials(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(params, user attrs) of the first trials: enqueued on every start where they have
        no finished, waiting or running trial."""
        ...

    def study_attrs(self) -> dict[str, Any]:
        """What describes this kind of study in its user attributes."""
        ...


@dataclass(frozen=True)
class SpaceProposer:
    """A search: the sampler explores the space. The paper's designs come first, then random
    members of each head the space has until every head has `first_trials_per_head` trials:
    a model-based sampler that settles on one head after a few draws would otherwise leave
    the others unmeasured, and the comparison of heads is what a study is read for."""

    space: SearchSpace
    seed: int
    reference_designs: tuple[str, ...]
    first_trials_per_head: int = 0

    def propose(self, trial: optuna.Trial) -> tuple[ArchSpec, int]:
        return self.space.suggest(trial), self.seed

    def initial_trials(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        trials = []
        for name in self.reference_designs:
            spec = get_arch(name).replace(input_size=self.space.base.input_size)
            try:
                trials.append((self.space.params_for(spec), {TrialKey.REFERENCE: name}))
            except SpaceError as error:
                log.warning("%s is not enqueued: %s", name, error)
        return trials + self._draws_per_head([params.get("head") for params, _ in trials])

    def _draws_per_head(
        self, heads_so_far: list[Any]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Seeded random members of the space with a given head: a throw-away in-memory study
        whose first parameter (the head) is enqueued and the rest drawn by a random sampler."""
        head = next((d for d in self.space.dimensions if d.gene == "head" and not d.is_fixed), None)
        if head is None or self.first_trials_per_head < 1:
            return []
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=self.seed))
            trials = []
            for value in head.candidate_values():
                for index in range(self.first_trials_per_head - heads_so_far.count(value)):
                    draws.enqueue_trial({"head": value})
                    trial = draws.ask()
                    spec = self.space.suggest(trial)
                    draws.tell(trial, 0.0)
                    attrs = {TrialKey.FIRST_DRAW: f"{value}/{index}"}
                    trials.append((self.space.params_for(spec), attrs))
            return trials
        finally:
            optuna.logging.set_verbosity(verbosity)

    def study_attrs(self) -> dict[str, Any]:
        return {StudyKey.KIND: KIND_SEARCH, StudyKey.SPACE: self.space.name}


@dataclass(frozen=True)
class AblationProposer:
    name: str
    baseline: str
    seeds: tuple[int, ...]
    variants: dict[str, ArchSpec]
    # Set by experiments.retrain: the search whose trials these variants are, and what the
    # search measured for each (the retrain report sets it beside the retrained figures).
    retrain_of: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], input_size: Sequence[int]) -> AblationProposer:
        unknown = sorted(set(config) - {*_ABLATION_KEYS, "retrain_of"})
        if unknown:
            raise ValueError(
                f"ablation has unknown keys {unknown}; expected {', '.join(_ABLATION_KEYS)}"
            )
        name = str(config.get("name", "ablation"))
        variants_config = config.get("variants")
        if not isinstance(variants_config, Mapping) or not variants_config:
            raise ValueError(f"ablation '{name}': `variants` must be a non-empty mapping")
        seeds = tuple(int(seed) for seed in config.get("seeds", ()))
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"ablation '{name}': `seeds` must be distinct integers, got {seeds}")
        variants = {
            str(label): _variant_spec(name, str(label), overrides, config, input_size)
            for label, overrides in variants_config.items()
        }
        baseline = str(config.get("baseline", next(iter(variants))))
        if baseline not in variants:
            raise ValueError(
                f"ablation '{name}': baseline '{baseline}' is not a variant ({list(variants)})"
            )
        return cls(name, baseline, seeds, variants, config.get("retrain_of"))

    @property
    def n_trials(self) -> int:
        return len(self.variants) * len(self.seeds)

    def propose(self, trial: optuna.Trial) -> tuple[ArchSpec, int]:
        variant = str(trial.suggest_categorical("variant", list(self.variants)))
        seed = int(trial.suggest_categorical("seed", list(self.seeds)))
        trial.set_user_attr(TrialKey.VARIANT, variant)
        return self.variants[variant], seed

    def initial_trials(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        # Seed-major: an interrupted ablation has every variant at the first seeds.
        return [
            ({"variant": variant, "seed": seed}, {TrialKey.VARIANT: variant, TrialKey.SEED: seed})
            for seed in self.seeds
            for variant in self.variants
        ]

    def study_attrs(self) -> dict[str, Any]:
        return {
            StudyKey.KIND: KIND_ABLATION,
            StudyKey.ABLATION: {
                "name": self.name,
                "baseline": self.baseline,
                "seeds": list(self.seeds),
                "variants": {
                    label: {"spec": spec.to_dict(), **_paper_figures(spec)}
                    for label, spec in self.variants.items()
                },
            },
            **({StudyKey.RETRAIN_OF: self.retrain_of} if self.retrain_of else {}),
        }


_ABLATION_KEYS = ("name", "base", "baseline", "seeds", "variants")


def _variant_spec(
    ablation: str,
    label: str,
    overrides: Any,
    config: Mapping[str, Any],
    input_size: Sequence[int],
) -> ArchSpec:
    genes = dict(overrides or {})
    try:
        base = get_arch(str(genes.pop("arch", config.get("base", "dfanet_a"))))
        return base.replace(**genes, input_size=tuple(input_size))
    except (KeyError, SpecError) as error:
        raise ValueError(f"ablation '{ablation}', variant '{label}': {error}") from None


def _paper_figures(spec: ArchSpec) -> dict[str, Any]:
    """The paper's row for this variant, where the paper has one (Cityscapes val, 1024x1024)."""
    reference = matching_reference(spec)
    if reference is None:
        return {}
    row = reference.paper_rows[0]
    published = find_published(row.table, row.model)
    return {
        "paper_row": f"{row.table}: {row.model}",
        "paper_miou": published.miou,
        "paper_gmadds": published.gmadds,
    }
