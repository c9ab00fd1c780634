"""Where a study's architectures come from: a search space, or an ablation's grid.

A search (`SpaceProposer`): the sampler explores the space; the paper's designs come first.

An ablation (`AblationProposer`): named variants of a base architecture, each trained with
several seeds, through the same trial pipeline as a search (one Optuna study, every (variant,
seed) enqueued), so it is stored, resumable, parallel and reported the same way. Config
(`conf/ablation/*.yaml`; `conf/ablate.yaml` has every key and its default):

    ablation:
      name: table3
      base: backbone_a           # registered architecture the variants change
      baseline: A x1             # the variant every other one is compared with
      variants:
        A x1: {}                 # gene overrides of `base`
        A x2: {towers: 2}
        B x1: {arch: backbone_b} # or another registered architecture (+ overrides)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import optuna

from search_space.cost import count_madds
from search_space.published import find_published
from search_space.registry import get_arch, matching_reference
from search_space.space import Dimension, SearchSpace, SpaceError
from search_space.spec import ArchSpec, SpecError
from workbench.record import KIND_ABLATION, KIND_SEARCH, StudyKey, TrialKey

log = logging.getLogger(__name__)

_PROBE_STREAM = 1  # the probes' draws: seeded by (study.seed, this)
_MAX_REDRAWS = 100  # draws of one first trial that all repeat another: the space is too small


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
    the others unmeasured, and the comparison of heads is what a study is read for. Then the
    schedule's `probes`: random members drawn before any result is known, in pairs per bracket
    (probes 2k and 2k + 1 in bracket k mod the number of brackets, the values of
    `bracket_gene`; one bracket without it), so that the rungs' agreement is measured within
    brackets, where promotion compares trials. Every draw is seeded by the study's seed alone,
    the probes in a stream of their own (the same probes whatever the reference designs and
    first draws), and is a new architecture: one that repeats an earlier first trial is drawn
    again."""

    space: SearchSpace
    seed: int
    reference_designs: tuple[str, ...]
    first_trials_per_head: int
    probes: int
    bracket_gene: str | None  # the schedule's brackets (`study.schedule.stratify`, if varied)
    # The study's budget: a first draw or probe over it would be infeasible, never trained (a
    # probe so lost would cost its bracket its pair), so it is drawn again.
    gmadds_budget: float | None = None

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
        trials += self._draws_per_head(trials)
        return trials + self._probes(trials)

    def _draws_per_head(
        self, earlier: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """A random member of each head for every trial it lacks of `first_trials_per_head`."""
        head = self._drawn_dimension("head")
        if head is None or self.first_trials_per_head < 1:
            return []
        heads_so_far = [params.get("head") for params, _ in earlier]
        wanted = [
            ({"head": value}, {TrialKey.FIRST_DRAW: f"{value}/{index}"})
            for value in head.candidate_values()
            for index in range(self.first_trials_per_head - heads_so_far.count(value))
        ]
        return self._seeded_draws(wanted, self.seed, earlier)

    def _probes(
        self, earlier: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The probes, named `<bracket>/<index>` ("all" without brackets)."""
        if self.probes == 0:
            return []
        bracket = None if self.bracket_gene is None else self._drawn_dimension(self.bracket_gene)
        if self.bracket_gene is not None and bracket is None:
            raise ValueError(
                f"study.schedule.probes={self.probes}: the space '{self.space.name}' does not "
                f"draw study.schedule.stratify={self.bracket_gene!r} as one value an "
                "architecture, so probes cannot be spread over its brackets"
            )
        values = (None,) if bracket is None else bracket.candidate_values()
        wanted = []
        for index in range(self.probes):
            value = values[index // 2 % len(values)]
            fixed = {} if bracket is None else {bracket.name: value}
            label = "all" if bracket is None else value
            wanted.append((fixed, {TrialKey.PROBE: f"{label}/{index}"}))
        # A stream of their own: the probes do not move when the first draws do.
        stream = int(np.random.SeedSequence((self.seed, _PROBE_STREAM)).generate_state(1)[0])
        return self._seeded_draws(wanted, stream, earlier)

    def _within_budget(self, spec: ArchSpec) -> bool:
        return self.gmadds_budget is None or count_madds(spec).gmadds <= self.gmadds_budget

    def _drawn_dimension(self, gene: str) -> Dimension | None:
        """The space's dimension of `gene` when it draws one value of it an architecture."""
        return next(
            (d for d in self.space.dimensions if d.gene == gene and d.item is None
             and not d.is_fixed),
            None,
        )  # fmt: skip

    def _seeded_draws(
        self,
        wanted: list[tuple[dict[str, Any], dict[str, Any]]],
        seed: int,
        earlier: list[tuple[dict[str, Any], dict[str, Any]]],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Seeded random members of the space, one for each (fixed parameters, user attributes)
        of `wanted`: a throw-away in-memory study enqueues the fixed parameters (a head, a
        bracket) and a random sampler draws the rest. A draw that repeats an `earlier` trial's
        architecture, or another draw's, or is over the GMAdds budget, is drawn again."""
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            seen = [params for params, _ in earlier]
            trials = []
            for fixed, attrs in wanted:
                for _ in range(_MAX_REDRAWS):
                    draws.enqueue_trial(fixed)
                    trial = draws.ask()
                    spec = self.space.suggest(trial)
                    params = self.space.params_for(spec)
                    draws.tell(trial, 0.0)
                    if params not in seen and self._within_budget(spec):
                        break
                else:
                    raise ValueError(
                        f"space '{self.space.name}': {_MAX_REDRAWS} draws with {fixed} all "
                        "repeat an architecture already enqueued or are over "
                        f"study.gmadds_budget={self.gmadds_budget}; the space is too small for "
                        "study.first_trials_per_head and study.schedule.probes under that budget"
                    )
                seen.append(params)
                trials.append((params, attrs))
            return trials
        finally:
            optuna.logging.set_verbosity(verbosity)

    def study_attrs(self) -> dict[str, Any]:
        return {StudyKey.KIND: KIND_SEARCH, StudyKey.SPACE: self.space.name}


@dataclass(frozen=True)
class AblationSettings:
    """The `ablation:` section (`conf/ablate.yaml` has every key; `+ablation=NAME` sets the
    others, `experiments.retrain` all of them)."""

    name: str
    base: str  # registered architecture the variants change
    baseline: str  # the variant every other one is compared with
    seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]]  # label -> gene overrides of `base` (`arch`: another)
    # Set by experiments.retrain: the search whose trials these variants are, and what the
    # search measured for each (the retrain report sets it beside the retrained figures).
    retrain_of: dict[str, Any] | None

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"ablation '{self.name}': `variants` must be a non-empty mapping")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"ablation '{self.name}': `seeds` must be distinct integers, got {self.seeds}"
            )
        if self.baseline not in self.variants:
            raise ValueError(
                f"ablation '{self.name}': baseline '{self.baseline}' is not a variant "
                f"({list(self.variants)})"
            )


@dataclass(frozen=True)
class AblationProposer:
    name: str
    baseline: str
    seeds: tuple[int, ...]
    variants: dict[str, ArchSpec]
    retrain_of: Mapping[str, Any] | None

    @classmethod
    def from_settings(
        cls, settings: AblationSettings, input_size: tuple[int, int]
    ) -> AblationProposer:
        variants = {
            label: _variant_spec(settings, label, overrides, input_size)
            for label, overrides in settings.variants.items()
        }
        return cls(settings.name, settings.baseline, settings.seeds, variants, settings.retrain_of)

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


def _variant_spec(
    settings: AblationSettings,
    label: str,
    overrides: Mapping[str, Any],
    input_size: tuple[int, int],
) -> ArchSpec:
    genes = dict(overrides)
    try:
        base = get_arch(str(genes.pop("arch", settings.base)))
        return base.replace(**genes, input_size=input_size)
    except (KeyError, SpecError) as error:
        raise ValueError(f"ablation '{settings.name}', variant '{label}': {error}") from None


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
