"""Resolve what a user names on a command line into an `ArchSpec`.

A source is a registered name (`dfanet_a`) or a YAML file of genes, optionally based on a
registered name (`base: dfanet_b`); overrides (`--set widths=[32,64,128]`) apply last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from search_space.registry import arch_names, get_arch
from search_space.spec import ArchSpec, SpecError


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """`["towers=2", "widths=[32,64,128]"]` -> genes; values are read as YAML scalars/lists."""
    genes: dict[str, Any] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator or not name.strip():
            raise ValueError(f"expected gene=value, got {assignment!r}")
        genes[name.strip()] = yaml.safe_load(text)
    return genes


def resolve_arch(source: str, overrides: Mapping[str, Any] | None = None) -> ArchSpec:
    if source in arch_names():
        spec = get_arch(source)
    elif source.endswith((".yaml", ".yml")):
        spec = _spec_from_yaml(Path(source))
    else:
        raise ValueError(
            f"{source!r} is neither a registered architecture ({', '.join(arch_names())}) "
            "nor a .yaml file of genes"
        )
    return spec.replace(**dict(overrides or {}))


def _spec_from_yaml(path: Path) -> ArchSpec:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such architecture file")
    try:
        genes = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValueError(
            f"{path}: not valid YAML{line}: {getattr(error, 'problem', error)}"
        ) from None
    if not isinstance(genes, dict):
        raise ValueError(f"{path}: expected a mapping of gene: value, got {type(genes).__name__}")
    base = genes.pop("base", None)
    try:
        spec = get_arch(base) if base is not None else ArchSpec()
        return spec.replace(**genes)
    except (SpecError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from error
