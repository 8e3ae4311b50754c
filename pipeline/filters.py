"""Search filters -> SQL conditions on documents (plus the glob patterns SQL cannot match portably).

Used by Store.readable_documents: the conditions join the access-control condition in one query over
the documents table; source/media-type globs are then matched in Python on the few columns fetched.
"""

from __future__ import annotations

import fnmatch
from datetime import timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy import or_

from .errors import ConfigError
from .schema import Document
from .types import SearchFilters

_FILTER_COLUMNS = {"source": "source_uri", "media_type": "media_type", "file_type": "file_type"}


def filter_conditions(filters: SearchFilters, globs: list[tuple[str, list[str]]]) -> list:
    """SQL conditions for `filters`; glob patterns (matched in Python) are appended to `globs`."""
    cond = []
    for key, column in _FILTER_COLUMNS.items():
        value = getattr(filters, key)
        if value is None:
            continue
        pats = [value] if isinstance(value, str) else list(value)
        if key == "file_type":
            pats = [p.lower().lstrip(".") for p in pats]
        if key == "source" or any(_is_glob(p) for p in pats):
            if key == "source" and not any(_is_glob(p) for p in pats):  # prefixes only: narrow in SQL too
                cond.append(or_(*(Document.source_uri.startswith(_as_uri_prefix(p), autoescape=True) for p in pats),
                                *(Document.source_uri.startswith(p, autoescape=True) for p in pats)))
            globs.append((column, pats))
        else:
            cond.append(getattr(Document, column).in_(pats))
    for attr, column, op in [("ingested_after", "ingested_at", "ge"), ("ingested_before", "ingested_at", "lt"),
                             ("modified_after", "mtime", "ge"), ("modified_before", "mtime", "lt")]:
        when = getattr(filters, attr)
        if when is None:
            continue
        utc = when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)
        value = utc.timestamp() if column == "mtime" else utc.replace(tzinfo=None)
        col = getattr(Document, column)
        cond.append(col >= value if op == "ge" else col < value)
    known = set(Document.__table__.columns.keys())
    for name, value in filters.fields.items():
        if name not in known:
            raise ConfigError(f"unknown document field {name!r} in filters; known fields: {', '.join(sorted(known))}")
        col = getattr(Document, name)
        cond.append(col.in_(list(value)) if isinstance(value, (list, tuple, set)) else col == value)
    return cond


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _as_uri_prefix(pattern: str) -> str:
    """A local path prefix as the file: URI prefix it stands for (URIs pass through)."""
    if "://" in pattern or not pattern.startswith("/"):
        return pattern
    uri = Path(pattern).as_uri()
    return uri + "/" if pattern.endswith("/") and not uri.endswith("/") else uri


def glob_match(column: str, value: str, patterns: list[str]) -> bool:
    """Does a document's `column` value match one of `patterns` (globs; plain source patterns are prefixes)?"""
    if column != "source_uri":
        return any(fnmatch.fnmatchcase(value, p) if _is_glob(p) else value == p for p in patterns)
    candidates = [value]
    if column == "source_uri" and value.startswith("file:"):
        candidates.append(unquote(urlparse(value).path))
    for p in patterns:
        for v in candidates:
            if fnmatch.fnmatchcase(v, p) if _is_glob(p) else v.startswith((_as_uri_prefix(p), p)):
                return True
    return False
