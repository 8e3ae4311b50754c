"""Streamlit glue shared by the pages: the process-wide services, the session's user and settings, and
the cited files (served only while they still are the bytes that were ingested)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlparse

import streamlit as st

from pipeline.config import Settings
from pipeline.errors import SculptragError

from .services import Prefs, Services, User, resolve_user


@st.cache_resource(show_spinner="Opening the store...")
def _services(key: str, _settings: Settings) -> Services:  # (the key names the settings; secrets only hashed)
    return Services(_settings)


def services() -> Services:
    """This process's Services for the settings in the environment (SCULPTRAG_...): built once, shared."""
    settings = Settings()
    secret = settings.app.proxy_secret
    proof = hashlib.sha256(secret.get_secret_value().encode()).hexdigest() if secret else ""
    return _services(settings.model_dump_json() + proof, settings)


def request_headers() -> list[tuple[str, str]]:
    """The headers of this session's request (the websocket's handshake), every repeat kept; none under AppTest."""
    try:
        headers = st.context.headers
        return [(name, value) for name in headers for value in headers.get_all(name)]
    except Exception:  # noqa: BLE001 - no request (AppTest): no headers
        return []


def current_user(svc: Services) -> User:
    return resolve_user(svc.settings, request_headers())


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


class FileChanged(SculptragError):
    """The file behind a document is not the one that was ingested (changed, replaced by a link, gone)."""


def read_ingested(path: Path, sha256: str) -> bytes:
    """The bytes of `path`, only if it is a regular file (not a symlink: O_NOFOLLOW) whose content still
    hashes to the `sha256` stored when it was ingested; else FileChanged. What the user is served is
    then exactly the document they may read, whatever the path points at now."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise FileChanged(str(path)) from e
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FileChanged(str(path))
        data = f.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FileChanged(str(path))
    return data


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
