"""The project's Hydra configs (`conf/`) composed outside a Hydra app: for benchmarks, tests
and the commands of `search_space` that read a config group (a space) without being one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(config_name: str | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A config composed from `conf/` exactly as a command composes it (defaults lists, `+group`
    selections, overrides), resolved to plain values: for benchmarks and tests that run what a
    command runs without its command line."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose(config_name=config_name, overrides=list(overrides))
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]


def compose_option(group: str, option: str) -> dict[str, Any]:
    """One option of a config group (`trainer=proxy_demo`), its own defaults list applied."""
    return compose_config(None, [f"+{group}={option}"])[group]
