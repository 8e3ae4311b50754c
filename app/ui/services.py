"""What the pages share: the heavy objects (one per process, shared by every browser session), who the user
is and what they may do, and the user's own settings for this session.

Heavy objects: `Services` holds the store, the RAG pipeline (embedder, generators and validator load once;
the pipeline is safe from many threads: each generator runs one request at a time under its lock), one warm
Ingestor (sharing the pipeline's embedder) behind a lock, since only one ingest may write at a time.

Access: `resolve_user` is a pure function of the settings and the request headers. With
`settings.app.groups_header` set (a proxy authenticates people and names their groups), a session has the
groups in that header and nothing else; without it, the local user has `settings.app.user_groups`. A user
may narrow their groups on the Settings page, never widen them: every retrieval, document list, opened
source and file download goes through `User.groups`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.config import Settings

log = logging.getLogger(__name__)

# generators that only run with a local model folder (the others ship with sculptrag)
NEEDS_MODEL_PATH = {"llada", "dream", "hf-mlm", "hf-causal"}
DIFFUSION = {"llada", "dream", "hf-mlm"}


# -- the user --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]  # what this user may read (all of it, before any narrowing)
    editor: bool  # may ingest and delete documents
    source: str  # where the groups came from: "settings" or the header's name

    def allowed_folder(self, path: str | Path, roots: Sequence[Path]) -> bool:
        """May this user ingest (or evaluate) files from `path` on the server?"""
        target = Path(path).expanduser().resolve()
        if not roots:
            return self.source == "settings"  # the local user reads their own disk; behind a proxy: only roots
        return any(target == r.resolve() or r.resolve() in target.parents for r in map(Path, roots))


def resolve_user(settings: Settings, headers: Mapping[str, str] | None) -> User:
    """The user of one browser session, from the settings and the request's headers (case-insensitive)."""
    app = settings.app
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    if app.groups_header:
        raw = lower.get(app.groups_header.lower(), "")
        groups = tuple(dict.fromkeys(g.strip() for g in re.split(r"[,;]", raw) if g.strip()))
        source = app.groups_header
    else:
        groups = tuple(app.user_groups if app.user_groups is not None else settings.default_groups)
        source = "settings"
    name = (lower.get(app.user_header.lower(), "") if app.user_header else "") or ("local user" if source == "settings" else "anonymous")
    editor = not app.editor_groups or bool(set(app.editor_groups) & set(groups))
    return User(name=name, groups=groups, editor=editor, source=source)


# -- the user's settings for this session ------------------------------------------------------------------
@dataclass
class Prefs:
    """The Settings page's values; every ask reads them."""

    generator: str
    k: int
    repair_rounds: int
    groups: tuple[str, ...]  # the groups in use: a subset of User.groups
    model_paths: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per generator: its sampling options

    @classmethod
    def defaults(cls, settings: Settings, user: User) -> "Prefs":
        return cls(generator=settings.generator, k=settings.retrieval.k,
                   repair_rounds=settings.validation.repair_rounds, groups=user.groups)

    def generator_options(self) -> dict[str, Any]:
        """The options for the chosen generator, as `RagPipeline.stream` takes them: its model folder when it
        needs one, and its sampling fields (a loaded generator's `with_options` makes them its config)."""
        path = self.model_paths.get(self.generator) if self.generator in NEEDS_MODEL_PATH else None
        return {**({"model_path": path} if path else {}), **self.options.get(self.generator, {})}


# -- the heavy objects -------------------------------------------------------------------------------------
class Services:
    """One per process and settings: built by `app.ui.common.services` (st.cache_resource), shared by all sessions."""

    def __init__(self, settings: Settings, *, warm: bool = True) -> None:
        from pipeline.rag import RagPipeline
        from pipeline.store import Store

        self.settings = settings
        self.store = Store(settings)
        self.rag = RagPipeline(settings, store=self.store)
        self.ingest_lock = threading.Lock()
        self._ingestor = None
        self.upload_dir = Path(settings.app.upload_dir or Path(settings.store_dir) / "uploads")
        self.warm_error: str | None = None
        if warm:
            threading.Thread(target=self._warm_up, name="sculptrag-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        """Load the embedder, the indexes and the default generator before the first question needs them."""
        try:
            if self.store.counts()["chunks"]:
                self.rag.retriever.warm_up()
            else:
                self.rag.retriever.load_embedder()
            self.rag.generator()
        except Exception as e:  # noqa: BLE001 - the first ask reports the same error to the user
            self.warm_error = f"{type(e).__name__}: {e}"
            log.warning("warm-up failed: %s", self.warm_error)

    def ingestor(self):
        """The warm Ingestor (parse workers and the pipeline's embedder); use it under `ingest_lock`."""
        from pipeline.ingestion import Ingestor

        if self._ingestor is None:
            self._ingestor = Ingestor(self.settings, store=self.store, embedder=self.rag.retriever.load_embedder())
        return self._ingestor

    def readable(self, groups: Sequence[str]) -> set[int]:
        """Ids of the documents these groups may read."""
        return {int(i) for i in self.store.readable_documents(list(groups))} if groups else set()

    def may_open(self, user_groups: Sequence[str], document_id: int) -> bool:
        return int(document_id) in self.readable(user_groups)
