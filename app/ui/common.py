"""Streamlit glue shared by the pages: the process-wide services, the session's user and settings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import streamlit as st

from pipeline.config import Settings

from .services import Prefs, Services, User, resolve_user


@st.cache_resource(show_spinner="Opening the store...")
def _services(key: str) -> Services:
    return Services(Settings.model_validate_json(key))


def services() -> Services:
    """This process's Services for the settings in the environment (SCULPTRAG_...): built once, shared."""
    return _services(Settings().model_dump_json())


def current_user(svc: Services) -> User:
    try:
        headers = dict(st.context.headers)
    except Exception:  # noqa: BLE001 - no request (AppTest): no headers
        headers = {}
    return resolve_user(svc.settings, headers)


def prefs(svc: Services, user: User) -> Prefs:
    """The session's settings; groups are re-checked against the user's on every run (never widened)."""
    p = st.session_state.get("prefs")
    if p is None:
        p = st.session_state["prefs"] = Prefs.defaults(svc.settings, user)
    p.groups = tuple(g for g in p.groups if g in user.groups) or user.groups
    return p


def context() -> tuple[Services, User, Prefs]:
    svc = services()
    user = current_user(svc)
    return svc, user, prefs(svc, user)


def _local_path(source_uri: str) -> Path | None:
    parsed = urlparse(source_uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def file_name(source_uri: str) -> str:
    """The file name a source URI ends in (no disk access)."""
    path = _local_path(source_uri)
    return path.name if path is not None else source_uri.rstrip("/").rsplit("/", 1)[-1]


def file_of(source_uri: str) -> Path | None:
    """The local file behind a file: URI, when it exists."""
    path = _local_path(source_uri)
    return path if path is not None and path.is_file() else None
