"""Streamlit glue shared by the pages: the process-wide services, the session's user and settings, and
the cited files (served only while they still are the bytes that were ingested: `read_ingested`, shared
with the HTTP service, lives in services.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import streamlit as st

from pipeline.config import Settings

from .services import FileChanged, Prefs, Services, User, file_name, file_of, read_ingested, resolve_user

__all__ = ["FileChanged", "file_name", "file_of", "read_ingested", "still_ingested", "services", "context"]


@st.cache_resource(show_spinner="Opening the store...")
def _services(key: str, _settings: Settings, api_url: str | None, _api_key: str | None) -> Services:
    # (the key names the settings and the service; secrets only hashed)
    if api_url:
        from .remote import RemoteServices

        return RemoteServices(_settings, api_url, _api_key)
    return Services(_settings)


def services() -> Services:
    """This process's Services for the settings in the environment (SCULPTRAG_...): built once, shared. With
    $SCULPTRAG_API_URL (`sculptrag app --api URL`), a client of that running service instead (app/ui/remote.py)."""
    settings = Settings()
    secret = settings.app.proxy_secret
    api_url, api_key = os.environ.get("SCULPTRAG_API_URL") or None, os.environ.get("SCULPTRAG_API_KEY") or None
    proof = "".join(hashlib.sha256(s.encode()).hexdigest() for s in
                    (secret.get_secret_value() if secret else "", api_key or ""))
    return _services(settings.model_dump_json() + proof + (api_url or ""), settings, api_url, api_key)


def request_headers() -> list[tuple[str, str]]:
    """The headers of this session's request (the websocket's handshake), every repeat kept; none under AppTest."""
    try:
        headers = st.context.headers
        return [(name, value) for name in headers for value in headers.get_all(name)]
    except Exception:  # noqa: BLE001 - no request (AppTest): no headers
        return []


def current_user(svc: Services) -> User:
    user = resolve_user(svc.settings, request_headers())
    return svc.user(user) if svc.remote else user


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


@st.cache_data(show_spinner=False, max_entries=1024)
def _hash_of(path: str, ino: int, size: int, mtime_ns: int) -> str:  # (keyed by what changes with the content)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def still_ingested(path: Path, sha256: str) -> bool:
    """Is `path` still a regular file (no symlink) with the ingested content? (Hashed once per change.)"""
    try:
        st_ = path.lstat()
        if not stat.S_ISREG(st_.st_mode):
            return False
        return _hash_of(str(path), st_.st_ino, st_.st_size, st_.st_mtime_ns) == sha256
    except OSError:
        return False
