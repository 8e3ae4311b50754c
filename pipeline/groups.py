"""Access-group lists: the one rule for reading them, wherever they come from (CLI, Python, app, proxy header).

A group list is a string or an iterable of strings; every string is split on commas, so "hr,finance",
["hr", "finance"] and ["hr,finance"] are the same two groups, and "hr" is one group, never the letters
"h" and "r". Names are stripped, de-duplicated and sorted. A name is 1-128 characters of letters, digits,
space and `_ . - @ : + = /`, starting with a letter, digit or underscore, so it can never be a path step
like `..`, hold markup, or smuggle a separator. A bad name is an error, never silently dropped: dropping
one would change who may read a document.
"""

from __future__ import annotations

import re
from typing import Iterable

from .errors import ConfigError

NAME_RE = re.compile(r"[^\W][\w .@:+=/-]{0,127}")


def parse_groups(value: str | Iterable[str] | None, *, allow_empty: bool = False, what: str = "groups") -> tuple[str, ...]:
    """The groups in `value`, sorted and unique. Raises ConfigError for a bad name, or for no groups at all
    unless `allow_empty` (a caller with no groups may ask, and reads nothing; a document needs a reader)."""
    if value is None:
        parts: list[str] = []
    elif isinstance(value, str):
        parts = value.split(",")
    else:
        parts = [p for item in value for p in _as_str(item, what).split(",")]
    names: set[str] = set()
    for raw in parts:
        name = raw.strip()
        if not name:
            continue
        if not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"bad group name {name[:60]!r} in {what}: use 1-128 letters, digits, spaces or _ . - @ : + = /, "
                "starting with a letter, digit or underscore; separate groups with commas"
            )
        names.add(name)
    if not names and not allow_empty:
        raise ConfigError(f"no {what} given: a document must be readable by at least one group (e.g. --groups public)")
    return tuple(sorted(names))


def _as_str(item: object, what: str) -> str:
    if not isinstance(item, str):
        raise ConfigError(f"{what} must be strings, not {type(item).__name__}")
    return item
