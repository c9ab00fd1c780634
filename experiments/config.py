"""Config sections (Hydra's composed `conf/`) read into typed, frozen settings.

`conf/` is the one place a setting's default lives: every key of a section is written there,
with its comment, so `--cfg job` shows it and an override never needs a `+`. The settings
classes therefore take no defaults from code. A command reads its whole composed config once,
at its entry (`read_section`), and passes only the settings down: reading checks that each
section names exactly its class's fields and that every value has its field's type, so a typo
or a wrong value in a config file or an override is a one-line error that names the key and
what was expected (`study.n_trials must be an int, got 'abc'`), before any work.

How a field's annotation reads its value:
- `int`; `float` (an int is a float too); `bool` (true or false, never 0 or 1); `str` (a number
  is read as its text: `study.name=2024`); `Path`; `Any` (anything);
- `X | None`: null or an X; `Literal["a", "b"]`: one of these values;
- `tuple[X, ...]`, `tuple[X, Y]`, `list[X]`: a list; `dict[str, X]`: a mapping;
- a dataclass: a section of its own, read the same way; a union of dataclasses that each have
  one `Literal` field (`kind`, `name`): the one whose value that field holds;
- `Annotated[X, convert]`: `convert(value)`, for values with a spelling of their own (an input
  size `HxW`, a search space).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from omegaconf.errors import OmegaConfBaseException

from experiments.data.cityscapes import DatasetError
from search_space.space import SpaceError
from search_space.spec import SpecError

# Composing conf/ lives in workbench (search_space's commands read it too); re-exported here,
# where the experiments and their tests have always found it.
from workbench.conf import CONF_DIR as CONF_DIR
from workbench.conf import compose_config as compose_config
from workbench.conf import compose_option as compose_option

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

Settings = TypeVar("Settings")
# OmegaConf's mark of a mandatory value (`???`), as `OmegaConf.to_container` leaves it.
MISSING = "???"


@dataclass(frozen=True)
class CommandSettings:
    """What every command shares (`conf/common.yaml`): the settings of each command that
    composes a config extend it."""

    device: str  # auto | cpu | cuda | cuda:N
    output_dir: Path
    job: int  # which job of a multirun this is; it changes nothing a trial measures


def read_section(settings_class: type[Settings], values: Any, section: str) -> Settings:
    """The section `values` (at the dotted key `section`; "" for a whole config) as a
    `settings_class`, every key and value checked (see the module's docstring)."""
    return read_value(settings_class, values, section)  # type: ignore[no-any-return]


def checked_section(values: Any, section: str, settings_class: type) -> dict[str, Any]:
    """The keyword arguments of the dataclass `settings_class` that the section `values`
    holds: its keys exactly the class's fields, each value read as its field's annotation."""
    where = section or "the config"
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of its keys, got {values!r}")
    hints = get_type_hints(settings_class, include_extras=True)
    expected = [field.name for field in fields(settings_class) if field.init]
    unknown = sorted(set(map(str, values)) - set(expected))
    missing = sorted(set(expected) - set(map(str, values)))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; expected {sorted(expected)}")
    if missing:
        raise ValueError(
            f"{where} is missing {missing}: the config files under conf/ set "
            "every key; an override must not delete one"
        )
    return {name: read_value(hints[name], values[name], _key(section, name)) for name in expected}


def read_value(annotation: Any, value: Any, key: str, *, or_null: bool = False) -> Any:
    """`value`, the config's `key`, checked against `annotation` and converted to it.
    `or_null`: null would do as well (the annotation is `X | None`), which an error says."""
    if isinstance(value, str) and value == MISSING:
        raise ValueError(f"{key} must be set ({key}=VALUE): the config leaves it to you (???)")
    origin, arguments = get_origin(annotation), get_args(annotation)

    def wrong(expected: str) -> ValueError:
        return ValueError(f"{key} must be {'null or ' if or_null else ''}{expected}, got {value!r}")

    if origin is Annotated:
        return _converted(arguments[1], value, key)
    if origin in (Union, types.UnionType):
        return _read_union(arguments, value, key)
    if dataclasses.is_dataclass(annotation):
        return annotation(**checked_section(value, key, annotation))  # type: ignore[operator]
    if annotation is Any:
        return value
    if origin is Literal:
        if not any(_same(value, choice) for choice in arguments):
            raise wrong(f"one of {list(arguments)}")
        return value
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise wrong("a mapping")
        return {str(k): read_value(arguments[1], v, _key(key, str(k))) for k, v in value.items()}
    if origin in (tuple, list):
        return _read_list(origin, arguments, value, key, wrong)
    return _read_scalar(annotation, value, key, wrong)


def _read_list(
    origin: type,
    arguments: tuple[Any, ...],
    value: Any,
    key: str,
    wrong: Callable[[str], Exception],
) -> Any:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise wrong("a list")
    if origin is tuple and arguments[1:] != (Ellipsis,):  # a fixed length: (float, float)
        if len(value) != len(arguments):
            raise wrong(f"a list of {len(arguments)}")
        items = zip(arguments, value, strict=True)
    else:
        items = ((arguments[0], item) for item in value)
    return origin(read_value(a, item, f"{key}[{i}]") for i, (a, item) in enumerate(items))


def _read_scalar(annotation: Any, value: Any, key: str, wrong: Callable[[str], Exception]) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if annotation is int:
        if not number or isinstance(value, float):
            raise wrong("an int")
        return value
    if annotation is float:
        if not number:
            raise wrong("a number")
        return float(value)
    if annotation in (str, Path):
        if not (isinstance(value, str) or number):
            raise wrong("a path" if annotation is Path else "a string")
        return annotation(str(value))
    raise TypeError(f"{key}: no config reader for the annotation {annotation!r}")


def _read_union(options: tuple[Any, ...], value: Any, key: str) -> Any:
    kinds = [option for option in options if option is not type(None)]
    nullable = len(kinds) < len(options)
    if value is None and nullable:
        return None
    if len(kinds) == 1:
        return read_value(kinds[0], value, key, or_null=nullable)
    if all(dataclasses.is_dataclass(kind) for kind in kinds):
        return _read_variant(kinds, value, key)
    raise TypeError(f"{key}: no config reader for a union of {kinds!r}")


def _read_variant(classes: list[Any], values: Any, key: str) -> Any:
    """One of several settings classes, chosen by the value of their one `Literal` field."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{key} must be a mapping of its keys, got {values!r}")
    by_choice: list[tuple[Any, Any]] = []
    for settings_class in classes:
        hints = get_type_hints(settings_class)
        (tag,) = (name for name, hint in hints.items() if get_origin(hint) is Literal)
        by_choice += [(choice, settings_class) for choice in get_args(hints[tag])]
    chosen = values.get(tag)
    matches = [settings_class for choice, settings_class in by_choice if _same(chosen, choice)]
    if not matches:
        choices = [choice for choice, _ in by_choice]
        raise ValueError(f"{_key(key, tag)} must be one of {choices}, got {chosen!r}")
    return read_value(matches[0], values, key)


def _same(value: Any, choice: Any) -> bool:
    """Equal and of one type: `1 == True` in Python, but 1 is not `true` in a config."""
    return bool(value == choice) and type(value) is type(choice)


def _converted(convert: Any, value: Any, key: str) -> Any:
    try:
        return convert(value)
    except ValueError as error:
        if str(error).startswith(key.rsplit(".", 1)[-1]):
            raise  # it names the key already (`space 'heads': ...`)
        raise ValueError(f"{key}: {error}") from None


def _key(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


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
