"""ingest(paths, settings) -> IngestReport: files in, an up-to-date store out, incrementally.

Order of work: expand and hash the inputs; sort them into unchanged (same content hash as stored: no
parsing, no embedding), new, changed and duplicates; with `prune`, delete documents under the given
folders whose files are gone; parse the rest in worker processes (or on a Ray cluster: ray_ingest.py);
embed their chunks in batches and commit each batch in one transaction (documents, chunks, vectors,
rejections, generation). A crash loses at most the batch in flight, and a re-run picks up from there.

Access groups (who may read a document) change only when someone says so, and only someone allowed to:
- `groups` are given to documents new to the store. A stored document keeps its groups when its file is
  ingested again, changed or not, unless `set_groups=True` says to replace them with `groups`.
- `caller_groups=None` is the operator (the CLI, a script: whoever can open the store's files anyway).
  With `caller_groups` (the app, a service acting for a person) the caller may give only groups they hold,
  and may not touch a stored document they cannot read now: not update it, regroup it or prune it. Such a
  file is reported "not permitted", and nothing about the stored document is said.
- Bytes already stored are a duplicate only when every group that would read the new file can read the
  stored document: then nobody loses anything by the rejection, and the caller may be told its name.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ingest import parse as parsing
from ingest.chunk import chunk_uid, config_digest
from ingest.discover import FileRecord, Refused, expand_paths, file_record
from pipeline.embedding import Embedder, make_embedder
from ingest.process import ParsePool, Processed, Rejection

from .config import Settings
from .errors import ConfigError, StoreError
from .groups import parse_groups
from .schema import Document, Quarantine
from .store import ChunkInput, Store
from .types import FileOutcome, IngestReport

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (files done, files to process, current path)


def ingest(
    paths: Iterable[str | Path],
    settings: Settings | None = None,
    *,
    groups: str | Sequence[str] | None = None,
    set_groups: bool = False,
    caller_groups: str | Sequence[str] | None = None,
    prune: bool = False,
    store: Store | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
    ray: str | None = None,
) -> IngestReport:
    """One ingest run (parse workers start and stop with it); for repeated runs keep an Ingestor.

    `ray`: parse and embed on a Ray cluster at that address ("local", "auto", "HOST:PORT"; pipeline/ray_ingest.py)."""
    with Ingestor(settings, store=store, embedder=embedder) as ingestor:
        return ingestor.ingest(paths, groups=groups, set_groups=set_groups, caller_groups=caller_groups,
                               prune=prune, progress=progress, wait=wait, ray=ray)


class Ingestor:
    """Keeps the expensive parts of ingestion warm between runs: the embedder and the parse workers.

    A service or the app that ingests uploads as they come holds one (workers start on the first run
    that has files to parse, and stop on close()); `ingest()` is a one-run convenience around it.
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store or Store(self.settings)  # (a Store is cheap: it opens the database, no index yet)
        self.embedder = embedder or make_embedder(self.settings.embedding)
        self._pool: ParsePool | None = None

    def __enter__(self) -> "Ingestor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def ingest(
        self, paths: Iterable[str | Path], *, groups: str | Sequence[str] | None = None, set_groups: bool = False,
        caller_groups: str | Sequence[str] | None = None, prune: bool = False, progress: Progress | None = None,
        store: Store | None = None, wait: float = 0.0, ray: str | None = None,
    ) -> IngestReport:
        """Ingest into this Ingestor's store, or into `store` (one warm Ingestor can serve several stores).

        `groups` (default: settings.default_groups) read the new documents; `set_groups` also gives them to
        stored ones; `caller_groups` limits what a caller acting for a person may touch (module docstring).
        `wait`: seconds to wait for another ingest writing to the store before giving up. `ray`: parse and embed
        on the Ray cluster at that address (pipeline/ray_ingest.py); the commits stay here."""
        settings, embedder = self.settings, self.embedder
        store = store or self.store
        groups = parse_groups(settings.default_groups if groups is None else groups)
        access = Access(groups, set_groups, None if caller_groups is None else parse_groups(caller_groups, allow_empty=True, what="caller groups"))
        report = IngestReport()
        t0 = time.perf_counter()
        with store.writer(wait=wait):
            found = expand_paths(paths)
            for m in found.missing:
                report.outcomes.append(FileOutcome(path=m, status="rejected", reason="not found", detail="no such file, folder or glob match"))
            for path, status, reason, detail in found.left_out:
                report.outcomes.append(FileOutcome(path=path, status=status, reason=reason, detail=detail))
            refused = [(p, reason, detail) for p, status, reason, detail in found.left_out if status == "rejected"]
            records: list[FileRecord] = []
            for f in found.files:
                try:
                    records.append(file_record(f))
                except Refused as e:
                    refused.append((str(f), e.reason, e.detail))
                    report.outcomes.append(FileOutcome(path=str(f), status="rejected", reason=e.reason, detail=e.detail))
                except OSError as e:
                    report.outcomes.append(FileOutcome(path=str(f), status="rejected", reason="not found", detail=f"cannot read: {e.strerror or e}"))
            if refused:  # kept in quarantine with the reason (never hashed: their bytes were not read)
                with store.transaction() as tx:
                    for path, reason, detail in refused:
                        tx.quarantine(Path(path).absolute().as_uri(), "", 0, reason, detail, groups)
            report.files_seen = len(records) + len(report.outcomes)
            report.timings["discover_s"] = time.perf_counter() - t0

            digest = config_digest(settings.ingest, embedder.model_name)
            todo = _classify(store, records, access, digest, report)
            if prune:
                _prune(store, found.roots, {r.uri for r in records}, access, report)
            if todo and ray:
                from . import ray_ingest

                if embedder.model_name != settings.embedding.model:
                    raise ConfigError(f"on Ray the workers embed with settings.embedding ({settings.embedding.model!r}), "
                                      f"not the given embedder's model {embedder.model_name!r}: make them the same")
                _check_embedding_model(store, embedder)
                _process(store, embedder, ray_ingest.run(ray, [rec for rec, _, _ in todo], settings), todo, settings, report, progress)
            elif todo:
                workers = min(settings.ingest.parse_workers, len(todo))  # no more workers than files
                if self._pool is None:
                    self._pool = ParsePool(settings.ingest, str(embedder.path), workers).__enter__()
                else:
                    self._pool.grow(workers)
                _check_embedding_model(store, embedder)  # loads the embedder while the workers warm up
                results = ((item, None) for item in self._pool.run([(str(rec.path), rec.size) for rec, _, _ in todo]))
                _process(store, embedder, results, todo, settings, report, progress)
            t_flush = time.perf_counter()
            store.flush_indexes()
            report.timings["index_s"] = time.perf_counter() - t_flush
            report.still_quarantined = len(store.quarantined(access.caller))
        for o in report.outcomes:
            report.rejected += o.status == "rejected"
            report.ingested += o.status == "ingested"
            report.updated += o.status == "updated"
            report.skipped += o.status == "skipped"
        report.seconds = time.perf_counter() - t0
        return report


@dataclass(frozen=True)
class Access:
    """Who this run writes for: the groups of new documents, whether stored ones get them too, and the caller
    (None: the operator, who may touch everything)."""

    groups: tuple[str, ...]
    set_groups: bool = False
    caller: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.caller is not None and not set(self.groups) <= set(self.caller):
            outside = ", ".join(sorted(set(self.groups) - set(self.caller)))
            raise ConfigError(f"you may give documents only groups you belong to, not {outside}")

    def may_touch(self, doc: Document | Quarantine) -> bool:
        """May this caller change (update, regroup, delete) a stored document or see a rejection?"""
        return self.caller is None or bool(set(doc.group_names) & set(self.caller))

    def groups_for(self, doc: Document | None) -> tuple[str, ...]:
        """The groups a (re-)ingested file's document gets: a stored one keeps its own unless told otherwise."""
        return self.groups if doc is None or self.set_groups else tuple(doc.group_names)


NOT_PERMITTED = "a stored document has this path and you cannot read it, so you may not change it"


def _classify(store: Store, records: list[FileRecord], access: Access, digest: str,
              report: IngestReport) -> list[tuple[FileRecord, str, tuple[str, ...]]]:
    """Split inputs into unchanged (handled here) and work to do: [(record, "new"|"changed", groups)].

    Unchanged means the same bytes cut by the same chunking (`digest`: format version, chunk settings,
    embedding model): a store made by an older version, or with other chunk settings, is re-chunked."""
    with store.sessions() as s:
        docs = {d.source_uri: d for d in s.query(Document)}
        quarantined = {q.source_uri: q for q in s.query(Quarantine)}
    by_sha: dict[str, list[tuple[str, set[str]]]] = {}  # sha -> [(uri, groups)] of the documents with those bytes
    rejected_as = rejection_digest(digest)
    for d in docs.values():
        by_sha.setdefault(d.sha256, []).append((d.source_uri, set(d.group_names)))
    todo: list[tuple[FileRecord, str, tuple[str, ...]]] = []
    regroup: list[str] = []
    for rec in records:
        doc = docs.get(rec.uri)
        if doc is not None and not access.may_touch(doc):
            report.outcomes.append(FileOutcome(path=str(rec.path), status="rejected", reason="not permitted", detail=NOT_PERMITTED))
            continue
        groups = access.groups_for(doc)
        if doc is not None and list(access.groups) != doc.group_names and not access.set_groups:
            report.kept_groups += 1
        if doc is not None and doc.sha256 == rec.sha256 and doc.chunk_digest == digest:
            report.unchanged += 1
            if list(groups) != doc.group_names:
                regroup.append(rec.uri)
            continue
        q = quarantined.get(rec.uri)
        if (doc is None and q is not None and q.sha256 == rec.sha256 and q.chunk_digest == rejected_as
                and access.may_touch(q)):
            report.unchanged += 1  # rejected before, same bytes, same parser: no point parsing again
            continue
        original = next((uri for uri, readers in by_sha.get(rec.sha256, []) if uri != rec.uri and set(groups) <= readers), None)
        if original is not None:
            _reject_now(store, rec, "duplicate content", f"same bytes as {original}", groups, report)
            continue
        by_sha.setdefault(rec.sha256, []).append((rec.uri, set(groups)))  # a twin later in this run duplicates this one
        todo.append((rec, "changed" if doc is not None else "new", groups))
    if regroup:
        with store.transaction() as tx:
            for uri in regroup:
                tx.set_groups(tx.document_by_uri(uri), access.groups)
                report.outcomes.append(FileOutcome(path=uri, status="updated", detail=f"groups set to {', '.join(access.groups)}"))
    return todo


def rejection_digest(digest: str) -> str:
    """What a remembered rejection is keyed on: the chunking digest and the formats the parser reads
    (`ingest.parse.FORMATS`). A version that reads more parses again the files an earlier one refused (a gzipped
    page was "unknown file type") without re-chunking a stored document."""
    return hashlib.sha256(f"{digest}|formats {parsing.FORMATS}".encode()).hexdigest()[:12]


def _reject_now(store: Store, rec: FileRecord, reason: str, detail: str, groups: Sequence[str], report: IngestReport) -> None:
    with store.transaction() as tx:
        tx.quarantine(rec.uri, rec.sha256, rec.size, reason, detail, groups)
    report.outcomes.append(FileOutcome(path=str(rec.path), status="rejected", reason=reason, detail=detail))


def _prune(store: Store, roots: list[Path], seen: set[str], access: Access, report: IngestReport) -> None:
    """Delete stored documents (and forget rejections) under `roots` whose files are gone, if the caller may."""
    root_uris = [r.as_uri() for r in roots]

    def under_roots(uri: str) -> bool:
        return any(uri == r or uri.startswith(r.rstrip("/") + "/") for r in root_uris)

    with store.transaction() as tx:
        for doc in tx.session.query(Document).all():
            if doc.source_uri not in seen and under_roots(doc.source_uri) and access.may_touch(doc):
                report.chunks_removed += tx.delete_document(doc)
                report.removed += 1
                report.outcomes.append(FileOutcome(path=doc.source_uri, status="removed", file_type=doc.file_type))
        for q in tx.session.query(Quarantine).all():
            if q.source_uri not in seen and under_roots(q.source_uri) and access.may_touch(q):
                tx.unquarantine(q.source_uri)


def _check_embedding_model(store: Store, embedder: Embedder) -> None:
    stored = store.get_state("embedding_model")
    if stored is None or store.counts()["chunks"] == 0:
        store.set_state(embedding_model=embedder.model_name, embedding_dim=str(embedder.dim))
    elif stored != embedder.model_name:
        raise StoreError(
            f"this store was built with the embedding model {stored!r}, not {embedder.model_name!r}; "
            "use the same model or ingest into a new --store"
        )


def _process(store, embedder, results, todo, settings: Settings, report: IngestReport, progress: Progress | None) -> None:
    """Commit `results`, (parsed file or rejection, its vectors or None) for each of `todo` as it finishes, in
    batches (`_Committer`)."""
    committer = _Committer(store, embedder, todo, config_digest(settings.ingest, embedder.model_name), report)
    t_all = time.perf_counter()
    for n, (item, vectors) in enumerate(results, start=1):
        report.parsed += 1
        committer.add(item, vectors)
        if progress:
            progress(n, len(todo), item.path)
        if committer.due(settings.ingest.commit_every_chunks):
            committer.commit()
    if committer.batch:
        committer.commit()
    committer.timings["process_s"] = time.perf_counter() - t_all
    report.timings.update(committer.timings)


class _Committer:
    """Parsed files waiting to be written, and writing them: embed their chunks, then one transaction for the
    batch (documents, chunks, vectors, rejections, generation). A crash loses at most the batch in flight."""

    def __init__(self, store: Store, embedder: Embedder, todo, digest: str, report: IngestReport) -> None:
        self.store, self.embedder, self.digest, self.report = store, embedder, digest, report
        self.kinds = {str(rec.path): (rec, kind, groups) for rec, kind, groups in todo}
        self.batch: list[Processed | Rejection] = []
        self.vectors: dict[int, np.ndarray] = {}  # id(item) -> its vectors, where they came embedded (Ray)
        self.pending_chunks = 0
        self.timings = {"parse_s": 0.0, "embed_s": 0.0, "write_s": 0.0}

    def add(self, item: Processed | Rejection, vectors: np.ndarray | None = None) -> None:
        if isinstance(item, Processed):
            self.timings["parse_s"] += item.parse_s
            self.pending_chunks += len(item.chunks)
            if vectors is not None:
                self.vectors[id(item)] = vectors
        self.batch.append(item)

    def due(self, every_chunks: int) -> bool:
        """Time to commit: `every_chunks` chunks waiting, or 64 files."""
        return self.pending_chunks >= every_chunks or len(self.batch) >= 64

    def commit(self) -> None:
        todo = [b for b in self.batch if isinstance(b, Processed) and id(b) not in self.vectors]
        texts = [c.embed_text for p in todo for c in p.chunks]
        t = time.perf_counter()
        if texts:
            vectors = self.embedder.encode(texts)
            offset = 0
            for item in todo:
                self.vectors[id(item)] = vectors[offset:offset + len(item.chunks)]
                offset += len(item.chunks)
        self.timings["embed_s"] += time.perf_counter() - t
        t = time.perf_counter()
        with self.store.transaction() as tx:
            for item in self.batch:
                if isinstance(item, Rejection):
                    self._reject(tx, item)
                else:
                    self._put(tx, item, self.vectors[id(item)])
        self.timings["write_s"] += time.perf_counter() - t
        self.report.embedded_chunks += self.pending_chunks
        self.batch, self.vectors, self.pending_chunks = [], {}, 0

    def _reject(self, tx, item: Rejection) -> None:
        rec, _, groups = self.kinds[item.path]
        if not item.retry:
            tx.quarantine(rec.uri, rec.sha256, rec.size, item.reason, item.detail, groups, rejection_digest(self.digest))
        self.report.outcomes.append(FileOutcome(path=item.path, status="rejected", reason=item.reason, detail=item.detail))

    def _put(self, tx, item: Processed, vectors) -> None:
        rec, kind, groups = self.kinds[item.path]
        digest, report = self.digest, self.report
        uid = hashlib.sha256(rec.uri.encode()).hexdigest()[:32]
        meta = item.metadata
        doc = Document(
            uid=uid, source_uri=rec.uri, title=item.title, media_type=item.media_type, file_type=item.file_type,
            size=rec.size, mtime=rec.mtime, sha256=rec.sha256, pages=item.pages, chunk_digest=digest,
            entity=(meta.entity or None) if meta else None, period=(meta.period or None) if meta else None,
            dated=(meta.date[:64] or None) if meta else None, author=(meta.author or None) if meta else None,
        )
        chunks = [
            ChunkInput(
                uid=chunk_uid(uid, c, digest), position=c.position, text=c.text, section=c.section,
                page=c.page, page_end=c.page_end, token_count=c.token_count, kinds=",".join(c.kinds),
                table_html=c.table_html, vector=vectors[i], context=c.context,
            )
            for i, c in enumerate(item.chunks)
        ]
        tx.put_document(doc, groups, chunks)
        report.chunks_added += len(chunks)
        report.pages += item.pages or 0
        report.outcomes.append(
            FileOutcome(path=item.path, status="updated" if kind == "changed" else "ingested",
                        file_type=item.file_type, chunks=len(chunks))
        )
