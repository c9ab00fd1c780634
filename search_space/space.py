"""A search space described in YAML (`conf/space/*.yaml`), and Optuna trials mapped to specs.

    base: dfanet_a                 # genes not listed (or switched off by `when`) come from here
    genes:
      towers: {low: 1, high: 4}            # integer range (optional step, log)
      expansion: {choices: [2, 4]}         # categorical
      widths:                              # a list gene: one entry per item
        - {choices: [32, 48, 64]}
      subnetwork_link: {choices: [true, false], when: {towers: [2, 3, 4]}}
      input_size: {value: [512, 1024]}     # fixed

`when` makes a gene exist only under values of genes listed before it (names as `gene` or
`gene.i` for a list item), so Optuna sees a conditional, define-by-run space. Every value a
space can propose is checked against `ArchSpec` when the space is loaded, and the sampler can
only combine them through the `when` conditions, which is how the shipped spaces never propose
an invalid spec (a test samples them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from search_space.registry import get_arch
from search_space.spec import ArchSpec, SpecError, gene_names


class SpaceError(ValueError):
    """A space description that cannot be used; the message names the gene."""


@dataclass(frozen=True)
class Dimension:
    """One Optuna parameter: a gene, or one item of a list gene (`widths.0`)."""

    name: str
    gene: str
    item: int | None
    choices: tuple[Any, ...] | None = None
    low: int | None = None
    high: int | None = None
    step: int = 1
    log: bool = False
    value: Any = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def is_fixed(self) -> bool:
        return self.choices is None and self.low is None

    def active(self, sampled: Mapping[str, Any]) -> bool:
        return all(sampled.get(name) in allowed for name, allowed in self.when)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            # Optuna's categorical choices must be scalars: lists travel as their JSON text.
            encoded = [_encode(choice) for choice in self.choices]
            return _decode(trial.suggest_categorical(self.name, encoded))
        if self.low is not None:
            assert self.high is not None
            step = None if self.log else self.step
            return trial.suggest_int(self.name, self.low, self.high, step=step or 1, log=self.log)
        return self.value

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return _encode(value) in [_encode(choice) for choice in self.choices]
        if self.low is not None:
            assert self.high is not None
            on_step = self.log or (value - self.low) % self.step == 0
            return self.low <= value <= self.high and on_step
        return _encode(value) == _encode(self.value)

    def values(self) -> tuple[Any, ...]:
        """Every value this dimension can take."""
        if self.choices is not None:
            return self.choices
        if self.low is not None:
            assert self.high is not None
            return tuple(range(self.low, self.high + 1, self.step))
        return (self.value,)

    def candidate_values(self) -> tuple[Any, ...]:
        """Values worth checking at load: every choice, or both ends of a range."""
        if self.choices is not None:
            return self.choices
        if self.low is not None:
            return (self.low, self.high)
        return (self.value,)


def _encode(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | tuple) else value


def _decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


@dataclass(frozen=True)
class SearchSpace:
    name: str
    base: ArchSpec
    dimensions: tuple[Dimension, ...]

    def suggest(self, trial: optuna.Trial) -> ArchSpec:
        """Sample one architecture; genes whose `when` is false keep the base value."""
        sampled: dict[str, Any] = {}
        for dimension in self.dimensions:
            if dimension.active(sampled):
                sampled[dimension.name] = dimension.suggest(trial)
        try:
            return self.spec_from_params(sampled)
        except SpecError as error:
            raise SpaceError(
                f"space '{self.name}' proposed an invalid architecture ({error}); "
                f"parameters: {sampled}. Add a `when` condition that excludes it."
            ) from error

    def spec_from_params(self, params: Mapping[str, Any]) -> ArchSpec:
        """The spec a trial's parameters stand for (also rebuilds specs of stored trials)."""
        genes = {
            name: list(value) if isinstance(value, list) else value
            for name, value in self._base_genes.items()
        }
        for dimension in self.dimensions:
            if dimension.is_fixed and dimension.active(params):
                # A fixed value is never an Optuna parameter, so stored trials do not hold it.
                params = {**params, dimension.name: dimension.value}
            if dimension.name not in params:
                continue
            value = _decode(params[dimension.name])
            if dimension.item is None:
                genes[dimension.gene] = value
            else:
                genes[dimension.gene][dimension.item] = value
        return ArchSpec.from_dict(genes)

    @functools.cached_property
    def _base_genes(self) -> dict[str, Any]:
        # Walking a whole space builds ~10^5 specs: `to_dict` once, not per spec.
        return self.base.to_dict()

    def params_for(self, spec: ArchSpec) -> dict[str, Any]:
        """The parameters that make this space propose `spec` (to enqueue a known design);
        a `SpaceError` naming the gene when the space cannot propose it."""
        params: dict[str, Any] = {}
        for dimension in self.dimensions:
            if dimension.is_fixed or not dimension.active(params):
                continue
            value = getattr(spec, dimension.gene)
            value = value[dimension.item] if dimension.item is not None else value
            if not dimension.contains(value):
                raise SpaceError(
                    f"space '{self.name}' cannot propose {value!r} for gene '{dimension.name}'"
                )
            params[dimension.name] = _encode(value)
        proposed = self.spec_from_params(params)
        if proposed != spec:
            differing = [
                gene for gene in spec.to_dict() if getattr(spec, gene) != getattr(proposed, gene)
            ]
            raise SpaceError(
                f"space '{self.name}' fixes {differing} to other values than the architecture's"
            )
        return params

    def assignments(self, *, held: Collection[str] = ()) -> Iterator[dict[str, Any]]:
        """Every parameter set the space can propose (the product, `when` applied), with the
        genes in `held` at their last value: for walking a whole space when some genes do not
        matter to the caller (search_space.parts.space_parts)."""

        def walk(index: int, sampled: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if index == len(self.dimensions):
                yield dict(sampled)
                return
            dimension = self.dimensions[index]
            if not dimension.active(sampled):
                yield from walk(index + 1, sampled)
                return
            values = dimension.values()
            for value in values[-1:] if dimension.gene in held else values:
                sampled[dimension.name] = value
                yield from walk(index + 1, sampled)
            del sampled[dimension.name]

        yield from walk(0, {})

    def with_fixed(self, genes: Mapping[str, Any]) -> SearchSpace:
        """The same space with some genes pinned (e.g. the study's input size).

        Values that the pinned genes make invalid leave the space (a 64-pixel input rules out
        four towers), so the sampler still never proposes an invalid spec.
        """
        try:
            base = self.base.replace(**dict(genes))
        except SpecError as error:
            raise SpaceError(f"space '{self.name}': cannot pin {dict(genes)}: {error}") from None
        kept = [
            _restricted(self.name, base, dimension)
            for dimension in self.dimensions
            if dimension.gene not in genes
        ]
        return SearchSpace(self.name, base, tuple(kept))


def load_space(source: Path | Mapping[str, Any], name: str | None = None) -> SearchSpace:
    """Read and check a space description (a YAML path or its already-loaded mapping)."""
    if isinstance(source, Path):
        config = yaml.safe_load(source.read_text())
        label = str(source)
        name = name or source.stem
    else:
        config = dict(source)
        label = f"space '{name or config.get('name', 'space')}'"
    if not isinstance(config, Mapping) or not isinstance(config.get("genes"), Mapping):
        raise SpaceError(f"{label}: expected a mapping with a `genes:` mapping")
    try:
        base = get_arch(config.get("base", "dfanet_a"))
    except KeyError as error:
        raise SpaceError(f"{label}: base: {error.args[0]}") from None
    dimensions: list[Dimension] = []
    for gene, description in config["genes"].items():
        dimensions.extend(_dimensions(label, gene, description, base, dimensions))
    return SearchSpace(str(config.get("name", name or "space")), base, tuple(dimensions))


def _dimensions(
    label: str, gene: str, description: Any, base: ArchSpec, earlier: Sequence[Dimension]
) -> list[Dimension]:
    if gene not in gene_names():
        raise SpaceError(f"{label}: unknown gene '{gene}'; the genes are {list(gene_names())}")
    base_value = getattr(base, gene)
    is_list_gene = gene in ArchSpec.LIST_GENES
    if is_list_gene and isinstance(description, list):
        if len(description) != len(base_value):
            raise SpaceError(
                f"{label}: gene '{gene}' needs {len(base_value)} entries, got {len(description)}"
            )
        items = [(f"{gene}.{i}", i, entry) for i, entry in enumerate(description)]
    else:
        items = [(gene, None, description)]
    dimensions = []
    known = {d.name for d in earlier}
    for name, item, entry in items:
        dimension = _dimension(label, name, gene, item, entry, known)
        for value in dimension.candidate_values():
            _check_value(label, base, dimension, value)
        dimensions.append(dimension)
        known.add(name)
    return dimensions


def _dimension(
    label: str, name: str, gene: str, item: int | None, entry: Any, known: set[str]
) -> Dimension:
    if not isinstance(entry, Mapping):
        raise SpaceError(f"{label}: gene '{name}': expected a mapping, got {entry!r}")
    allowed_keys = {"choices", "low", "high", "step", "log", "value", "when"}
    unknown = sorted(set(entry) - allowed_keys)
    if unknown:
        raise SpaceError(f"{label}: gene '{name}': unknown key '{unknown[0]}'")
    when = entry.get("when", {}) or {}
    for condition, allowed in when.items():
        if condition not in known:
            raise SpaceError(
                f"{label}: gene '{name}': `when` refers to '{condition}', which is not a gene "
                "sampled before it"
            )
        if not isinstance(allowed, list):
            raise SpaceError(f"{label}: gene '{name}': `when: {condition}` must be a list")
    conditions = tuple((key, tuple(allowed)) for key, allowed in when.items())
    if "choices" in entry:
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{label}: gene '{name}': `choices` must be a non-empty list")
        return Dimension(name, gene, item, choices=tuple(choices), when=conditions)
    if "low" in entry or "high" in entry:
        low, high, step = entry.get("low"), entry.get("high"), entry.get("step", 1)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, step)):
            raise SpaceError(f"{label}: gene '{name}': `low`, `high`, `step` must be integers")
        if low > high or step < 1 or (high - low) % step:
            raise SpaceError(
                f"{label}: gene '{name}': expected low <= high and (high - low) a multiple of "
                f"step, got low={low}, high={high}, step={step}"
            )
        log = bool(entry.get("log", False))
        return Dimension(name, gene, item, low=low, high=high, step=step, log=log, when=conditions)
    if "value" in entry:
        return Dimension(name, gene, item, value=entry["value"], when=conditions)
    raise SpaceError(f"{label}: gene '{name}': give `choices`, `low`/`high` or `value`")


def _check_value(label: str, base: ArchSpec, dimension: Dimension, value: Any) -> None:
    error = _value_error(base, dimension, value)
    if error is not None:
        raise SpaceError(f"{label}: gene '{dimension.name}' value {value!r}: {error}")


def _value_error(base: ArchSpec, dimension: Dimension, value: Any) -> SpecError | None:
    genes = base.to_dict()
    if dimension.item is None:
        genes[dimension.gene] = value
    else:
        genes[dimension.gene][dimension.item] = value
    try:
        ArchSpec.from_dict(genes)
    except SpecError as error:
        return error
    return None


def _restricted(space: str, base: ArchSpec, dimension: Dimension) -> Dimension:
    """`dimension` without the values that are invalid on `base`."""
    if dimension.is_fixed:
        return dimension
    values = dimension.values()
    valid = tuple(v for v in values if _value_error(base, dimension, v) is None)
    if not valid:
        raise SpaceError(
            f"space '{space}': no value of gene '{dimension.name}' is valid with "
            f"{_value_error(base, dimension, values[0])}"
        )
    if valid == values:
        return dimension
    if dimension.choices is None and valid == values[: len(valid)]:
        return dataclasses.replace(dimension, high=valid[-1])  # still a range, now shorter
    return dataclasses.replace(dimension, choices=valid, low=None, high=None)
