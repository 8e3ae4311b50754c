"""Streamlit glue shared by the pages: the process-wide services, the session's user and settings."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pipeline.config import Settings

from .services import Prefs, Services, User, resolve_user, settings_key


@st.cache_resource(show_spinner="Opening the store...")
def _services(key: str) -> Services:
    return Services(Settings.model_validate_json(key))


def services() -> Services:
    """This process's Services for the settings in the environment (SCULPTRAG_...): built once, shared."""
    return _services(settings_key(Settings()))


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


def file_of(source_uri: str) -> Path | None:
    """The local file behind a file: URI, when it exists."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(source_uri)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    return path if path.is_file() else None
