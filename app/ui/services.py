"""What the pages share: the heavy objects (one per process, shared by every browser session), who the user
is and what they may do, and the user's own settings for this session.

The same objects and rules serve the HTTP service (app/service/): it builds one `Services`, turns an API key
or the proxy's headers into a `User`, and saves uploads, deletes documents and serves cited files through
the methods here, so the app and the service cannot drift apart.

Heavy objects: `Services` holds the store, the RAG pipeline (embedder, generators and validator load once;
the pipeline is safe from many threads: each generator runs one request at a time under its lock), one warm
Ingestor (sharing the pipeline's embedder) behind a lock, since only one ingest may write at a time.

Access: `resolve_user` is a pure function of the settings and the request headers. Locally (no
`settings.app.groups_header`) the one user has `settings.app.user_groups` and edits unless `editor_groups`
names others. In header mode a sign-in proxy names each person's groups in that header, and a request is
believed only when it proves it came through the proxy (`proxy_secret` in `proxy_secret_header`, compared
in constant time, each header present once): anything else is "anonymous", with no groups (reads nothing)
and no editing. Editing in header mode needs `editor_groups` and membership in one. A user may narrow their
groups on the Settings page, never widen them: every retrieval, document list, opened source, file
download, rejected-file list and evaluation report goes through the groups in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlparse

from pipeline.config import AppSettings, Settings
from pipeline.errors import ConfigError, SculptragError
from pipeline.groups import parse_groups

log = logging.getLogger(__name__)

# -- the user --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]  # what this user may read (all of it, before any narrowing)
    editor: bool  # may ingest, delete documents and run evaluations
    source: str  # where the groups came from: "settings" or the header's name

    def allowed_folder(self, path: str | Path, roots: Sequence[Path]) -> bool:
        """May this user ingest (or evaluate) files from `path` on the server? Only inside `roots` (after
        resolving symlinks and `..`); no roots, no server folders, for anyone."""
        target = Path(path).expanduser().resolve()
        return any(target == r or r in target.parents for r in (Path(root).expanduser().resolve() for root in roots))


ANONYMOUS = "anonymous"

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def resolve_user(settings: Settings, headers: Headers | None) -> User:
    """The user of one browser session, from the settings and the request's headers (names
    case-insensitive; pairs may repeat a name, and a repeated proof or groups header is refused)."""
    app = settings.app
    if not app.header_mode:
        groups = tuple(app.user_groups if app.user_groups is not None else settings.default_groups)
        editor = not app.editor_groups or bool(set(app.editor_groups) & set(groups))
        return User(name="local user", groups=groups, editor=editor, source="settings")
    source = str(app.groups_header)
    seen: dict[str, list[str]] = {}
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers or ()):
        seen.setdefault(name.lower(), []).append(value)
    if not _through_proxy(app, seen):
        return User(name=ANONYMOUS, groups=(), editor=False, source=source)
    names = seen.get(app.user_header.lower(), []) if app.user_header else []
    name = names[0].strip() if len(names) == 1 and names[0].strip() else "signed-in user"
    raw = seen.get(source.lower(), [])
    try:
        groups = parse_groups(raw[0]) if len(raw) == 1 else ()  # (sent twice: which one would the proxy mean?)
    except ConfigError:  # a bad or empty list: no usable group, so nothing to read
        groups = ()
    editor = bool(set(app.editor_groups) & set(groups))  # header mode: only named editors (none by default)
    return User(name=name, groups=groups, editor=editor, source=source)


def _through_proxy(app: AppSettings, headers: Mapping[str, list[str]]) -> bool:
    """Did this request come through the sign-in proxy? It carries the proxy's secret, once."""
    if app.proxy_secret is None:
        return False  # header mode without a way to check the proxy: nobody is believed (`sculptrag app` refuses it)
    sent = headers.get(app.proxy_secret_header.lower(), [])
    return len(sent) == 1 and hmac.compare_digest(sent[0].encode(), app.proxy_secret.get_secret_value().encode())


def group_key(groups: Sequence[str]) -> str:
    """A short, path-safe name for a set of groups (a hash, never a group name itself)."""
    return hashlib.sha256("\n".join(sorted(set(groups))).encode()).hexdigest()[:16]


def upload_steps(name: str, depth: int = 16) -> list[str]:
    """An uploaded file's name as clean path steps: split at / or \\, each step's characters outside
    [letters, digits, _ . - space] made "_", leading and trailing dots and spaces dropped (so "." and ".." are
    empty), empty steps dropped, at most `depth` steps (the last ones: the file's own name survives)."""
    steps = [re.sub(r"[^\w.\- ]+", "_", step).strip(" .")[:200] for step in re.split(r"[/\\]", name)]
    return [s for s in steps if s][-depth:] or ["upload"]


def plugin_spec(name: str):
    """What the generator `name` declares (generator.base.GeneratorSpec), or None when no such generator is
    registered (a session's choice from before a plugin went away)."""
    from generator.base import generator_spec

    try:
        return generator_spec(name)
    except ConfigError:
        return None


def ready_generators(settings: Settings | None = None) -> list[str]:
    """The generators that run without a model folder from the user: their plugins do not declare
    needs_model_path, or `settings.generator_options` gives them a model_path (the server's set-up)."""
    from generator.base import available_generators

    configured = {name for name, opts in (settings.generator_options if settings else {}).items()
                  if opts.get("model_path")}
    return [g for g in available_generators()
            if g in configured or not getattr(plugin_spec(g), "needs_model_path", True)]


@dataclass(frozen=True)
class FormField:
    """One field of a generator's options model as the Settings page shows it."""

    name: str
    label: str
    help: str | None
    kind: str  # "int" and "float": a number input; "bool": a checkbox; "choice": a select; "text": a text input
    optional: bool = False  # None is a value (an empty number box, a "none" choice)
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None


def form_fields(model: Any, skip: Iterable[str] = ()) -> list[FormField]:
    """The fields of a pydantic options model that a form can show, in order (fields in `skip`, and those
    of a type no widget edits, such as dicts, are left out): int/float with their bounds, bool, Literal, str."""
    import types
    import typing

    out = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann, optional = info.annotation, False
        if typing.get_origin(ann) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            optional = len(args) < len(typing.get_args(ann))
            if len(args) != 1:
                continue
            ann = args[0]
        low = high = None
        for m in info.metadata:
            for attr, is_low, shift in (("ge", True, 0), ("gt", True, 1), ("le", False, 0), ("lt", False, -1)):
                bound = getattr(m, attr, None)
                if bound is not None:
                    bound = bound + shift if ann is int else bound  # an open float bound is left to validation
                    low, high = (bound, high) if is_low else (low, bound)
        label = info.title or name.replace("_", " ").capitalize()
        common = dict(name=name, label=label, help=info.description, optional=optional)
        if typing.get_origin(ann) is typing.Literal:
            out.append(FormField(kind="choice", choices=tuple(typing.get_args(ann)), **common))
        elif ann is bool:
            out.append(FormField(kind="bool", **common))
        elif ann in (int, float):
            out.append(FormField(kind=ann.__name__, min=low, max=high, **common))
        elif ann is str:
            out.append(FormField(kind="text", **common))
    return out


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
    filters: dict[str, list[str]] = field(default_factory=dict)  # document field -> accepted values (entity, period)

    @classmethod
    def defaults(cls, settings: Settings, user: User) -> "Prefs":
        return cls(generator=settings.generator, k=settings.retrieval.k,
                   repair_rounds=settings.validation.repair_rounds, groups=user.groups)

    def search_filters(self):
        """The Settings page's document filters as `SearchFilters` (None when none is set)."""
        from pipeline.types import SearchFilters

        chosen = {name: values for name, values in self.filters.items() if values}
        return SearchFilters(fields=chosen) if chosen else None

    def generator_options(self) -> dict[str, Any]:
        """The options for the chosen generator, as `RagPipeline.stream` takes them: its model folder when its
        plugin declares that it needs one, and its sampling fields (a loaded generator's `with_options` makes
        them its config)."""
        spec = plugin_spec(self.generator)
        path = self.model_paths.get(self.generator) if spec is not None and spec.needs_model_path else None
        return {**({"model_path": path} if path else {}), **self.options.get(self.generator, {})}


# -- the heavy objects -------------------------------------------------------------------------------------
class Services:
    """One per process and settings: built by `app.ui.common.services` (st.cache_resource), shared by all sessions.
    (`app.ui.remote.RemoteServices` stands in for it when the app uses a running service.)"""

    remote = False

    def __init__(self, settings: Settings, *, warm: bool = True) -> None:
        from pipeline.rag import RagPipeline
        from pipeline.store import Store

        self.settings = settings
        self.store = Store(settings)
        self.rag = RagPipeline(settings, store=self.store)
        self.ingest_lock = threading.Lock()
        self._ingestor = None
        self.upload_dir = Path(settings.app.upload_dir or Path(settings.store_dir) / "uploads")
        self.warm_error: str | None = None  # the last warm-up's failure, shown on every page until one succeeds
        self.ready = threading.Event()  # set once the embedder, the indexes and the default generator are loaded
        self._warming = threading.Lock()
        if warm:
            self.warm_up_again()

    def warm_up_again(self) -> None:
        """Load the embedder, the indexes and the default generator in the background, before the first question
        needs them; after a failed warm-up, try once more (a page showing the failure asks this). One try at a
        time; a no-op once warm."""
        if not self.ready.is_set() and self._warming.acquire(blocking=False):
            threading.Thread(target=self._warm_up, name="sculptrag-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            if self.store.counts()["chunks"]:
                self.rag.retriever.warm_up()
            else:
                self.rag.retriever.load_embedder()
            self.rag.generator()
            self.warm_error = None
            self.ready.set()
        except Exception as e:  # noqa: BLE001 - the first ask reports the same error to the user
            self.warm_error = f"{type(e).__name__}: {e}"
            log.warning("warm-up failed: %s", self.warm_error, exc_info=True)
        finally:
            self._warming.release()

    def ingestor(self):
        """The warm Ingestor (parse workers and the pipeline's embedder); use it under `ingest_lock`."""
        from pipeline.ingestion import Ingestor

        if self._ingestor is None:
            self._ingestor = Ingestor(self.settings, store=self.store, embedder=self.rag.retriever.load_embedder())
        return self._ingestor

    def close(self) -> None:
        """Stop the ingestion workers (the service calls it at shutdown; the app's process just exits)."""
        if self._ingestor is not None:
            self._ingestor.close()
            self._ingestor = None

    def readable(self, groups: Sequence[str]) -> set[int]:
        """Ids of the documents these groups may read."""
        return {int(i) for i in self.store.readable_documents(list(groups))} if groups else set()

    def may_open(self, user_groups: Sequence[str], document_id: int) -> bool:
        return int(document_id) in self.readable(user_groups)

    def save_upload(self, name: str, data: bytes, groups: tuple[str, ...], user_groups: Sequence[str]) -> Path:
        """Keep an uploaded file under upload_dir/g-<hash of the groups>/<name> (written whole, then renamed into
        place), so the stored document has a file to cite and re-uploading the same name for the same groups
        updates it. A name may hold folders ("site/guide/index.html", as `sculptrag ingest --api` sends a
        folder), so two files of one name in different folders stay two documents; each step is cleaned
        (upload_steps), so no name reaches outside its folder and no group name becomes a path step.
        OSError when the name is that of a stored document `user_groups` cannot read."""
        steps = upload_steps(name)
        target = self.upload_target(name, groups)
        stored = self.store.document_by_uri(target.as_uri())
        if stored is not None and not set(stored.group_names) & set(user_groups):
            raise OSError(f"{'/'.join(steps)!r} is the name of a stored document you cannot change; rename the file")  # its file stays
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return target

    def upload_target(self, name: str, groups: Sequence[str]) -> Path:
        """Where an upload named `name` for `groups` is kept (save_upload); OSError if that is outside the folder."""
        root = self.upload_dir.resolve()
        folder = root / f"g-{group_key(groups)}"
        target = folder.joinpath(*upload_steps(name))
        if folder not in target.parents or root not in target.resolve().parents:
            raise OSError(f"refusing to write {name!r} outside the upload folder")
        return target

    def unchanged_uploads(self, files: Sequence[tuple[str, str]], groups: Sequence[str], user_groups: Sequence[str],
                          set_groups: bool = False) -> list[str]:
        """The names among `files` ((name, sha256)) whose upload for `groups` would change nothing, so a client
        need not send them: the document stored under that name has those bytes, this server's chunking and
        embedding (its chunk digest) and, with `set_groups`, exactly `groups`. Only documents `user_groups` may
        change (share a group with, as an upload would need) are answered for: of any other, nothing is said
        (its name is uploaded, and refused, as before)."""
        from ingest.chunk import config_digest

        digest = config_digest(self.settings.ingest, self.rag.retriever.load_embedder().model_name)  # the ingestor's
        uris = {}
        for name, sha in files:
            with contextlib.suppress(OSError):  # (a name outside the folder: not ours to answer for)
                uris[name] = (self.upload_target(name, groups).as_uri(), sha)
        stored = self.store.documents_by_uri([uri for uri, _ in uris.values()])
        mine = set(user_groups)
        return [name for name, (uri, sha) in uris.items()
                if (doc := stored.get(uri)) is not None and set(doc.group_names) & mine and doc.sha256 == sha
                and doc.chunk_digest == digest and (not set_groups or set(doc.group_names) == set(groups))]

    def delete_document(self, document_id: int, groups: Sequence[str]) -> int | None:
        """Delete a document these groups may read, and its uploaded file (files elsewhere stay). Returns the
        chunks removed, or None when `groups` may not read it (or it is gone): nothing is said about it."""
        with self.ingest_lock:
            if not self.may_open(groups, document_id):
                return None
            doc = self.store.documents_by_id([document_id]).get(int(document_id))
            if doc is None:
                return None
            removed = self.store.delete_documents([doc.id])
        path = file_of(doc.source_uri)
        if path is not None and self.upload_dir.resolve() in path.resolve().parents:
            path.unlink(missing_ok=True)  # an upload's only copy goes with it
        return removed


# -- the cited files ---------------------------------------------------------------------------------------
class FileChanged(SculptragError):
    """The file behind a document is not the one that was ingested (changed, replaced by a link, gone)."""


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
