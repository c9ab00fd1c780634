"""The command line of every command that does not compose a config from `conf/`.

Commands that take config (`experiments.search`, `train`, `evaluate`, `ablate`) are Hydra
apps. Every other command (`search_space.cost`, `analysis.report`, `analysis.paper`, the
benchmarks) is argparse through this module, so that they all read alike:
- options are `--name value`; the Hydra spelling `name=value` is read as the same option, so
  `python -m analysis.report study=demo` and `--study demo` are one command;
- an option given twice either adds to a list (`--set a=1 --set b=2`, `--arch x --arch y`) or
  is an error: a value is never silently dropped;
- an input size is spelled `HxW` (`512x1024`) everywhere, as in the configs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

# Options that collect every value given (argparse's "append" and "extend" actions).
LIST_ACTIONS = (argparse._AppendAction, argparse._ExtendAction)


class CommandParser(argparse.ArgumentParser):
    """argparse, reading `name=value` tokens as `--name value` and refusing a single-valued
    option given twice (in any spelling: `--batch 2`, `--batch=2`, `batch=2`; abbreviations
    are not accepted, so every spelling is one of these)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        tokens = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self._as_options(tokens), namespace)

    def _as_options(self, tokens: list[str]) -> list[str]:
        options = self._option_string_actions
        result: list[str] = []
        expects_value = False
        for token in tokens:
            if token.startswith("--") and "=" in token:  # --name=value: two tokens, as argparse
                option, _, value = token.partition("=")
                result += [option, value]
                expects_value = False
                continue
            name, separator, value = token.partition("=")
            option = "--" + name.replace("_", "-")
            if separator and not expects_value and not token.startswith("-") and option in options:
                result += [option, value]
                expects_value = False
                continue
            result.append(token)
            action = options.get(token)
            expects_value = action is not None and action.nargs != 0
        self._refuse_repeats(result)
        return result

    def _refuse_repeats(self, tokens: list[str]) -> None:
        seen: set[str] = set()
        for token in tokens:
            action = self._option_string_actions.get(token)
            if action is None or isinstance(action, LIST_ACTIONS):
                continue
            if action.dest in seen:
                self.error(f"{token} is given twice; give it once")
            seen.add(action.dest)


def size(text: str) -> tuple[int, int]:
    """An argparse `type` for input sizes (`HxW`)."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def parse_size(value: str | Sequence[int]) -> tuple[int, int]:
    """An input size, spelled `HxW` everywhere a user types one (`512x1024`); the `[H, W]`
    lists that YAML files hold are read too. Returns (H, W)."""
    if isinstance(value, str):
        height, separator, width = value.lower().partition("x")
        if separator and height.strip().isdigit() and width.strip().isdigit():
            size = int(height), int(width)
            if min(size) > 0:
                return size
    elif isinstance(value, Sequence) and len(value) == 2 and all(map(_is_side, value)):
        return int(value[0]), int(value[1])
    raise ValueError(f"expected an input size as HxW (e.g. 512x1024), got {value!r}")


def _is_side(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
