"""Passwords never printed nor stored: a storage URL's password masked wherever it may appear."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# user:password@ in any URL; the password is whatever lies between the first ':' and the '@'.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")


def mask_secrets(text: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`, wherever a URL
    stands in `text`."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def masked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every string's URL passwords masked: what may be stored or logged."""
    return {key: _masked(value) for key, value in config.items()}


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return masked_config(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value
