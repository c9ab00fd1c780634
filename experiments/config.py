"""Config sections (Hydra's composed `conf/`) read into typed, frozen settings.

`conf/` is the one place a setting's default lives: every key of a section is written there,
with its comment, so `--cfg job` shows it and an override never needs a `+`. The settings
classes therefore take no defaults from code; reading a section checks that it names exactly
their fields, so a typo in a config file or an override is an error that names the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.data.cityscapes import DatasetError
from search_space.space import SpaceError
from search_space.spec import SpecError

# What a command reports as one line and exit status 2: the configuration or the files it
# names are wrong, and nothing ran. (StorageError, StudyMismatchError and DatasetError are
# ValueErrors.)
CONFIG_ERRORS = (
    ValueError,
    KeyError,
    SpecError,
    SpaceError,
    DatasetError,
    FileNotFoundError,
    OmegaConfBaseException,
)


def checked_section(
    values: Mapping[str, Any], section: str, settings_class: type, *, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`values` as a plain dict, after checking that its keys are the fields of the dataclass
    `settings_class` (plus `also`, keys read elsewhere); the error names `section`."""
    expected = {field.name for field in fields(settings_class) if field.init} | set(also)
    unknown, missing = sorted(set(values) - expected), sorted(expected - set(values))
    if unknown:
        raise ValueError(f"{section} has unknown keys {unknown}; expected {sorted(expected)}")
    if missing:
        raise ValueError(
            f"{section} is missing {missing}: the config files under conf/ set "
            "every key; an override must not delete one"
        )
    return dict(values)


def check_at_least(settings: object, section: str, names: Sequence[str], minimum: int) -> None:
    """Each named field of `settings` is at least `minimum`; the error names `section.field`."""
    for name in names:
        value = getattr(settings, name)
        if value < minimum:
            raise ValueError(f"{section}.{name} must be >= {minimum}, got {value}")


def refuse_repeated_overrides(overrides: Sequence[str]) -> None:
    """Hydra applies the last of two overrides of one key and drops the first without a word;
    a command line that sets a key twice is refused instead (`HydraConfig.get().overrides.task`
    of a command)."""
    keys = [override.split("=", 1)[0].lstrip("+~") for override in overrides]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(
            f"{', '.join(repeated)} given more than once on the command line; give each once"
        )


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
