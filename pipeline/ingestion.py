"""ingest(paths, settings) -> IngestReport: files in, an up-to-date store out, incrementally.

Order of work: expand and hash the inputs; sort them into unchanged (same content hash as stored: no
parsing, no embedding), new, changed and duplicates; with `prune`, delete documents under the given
folders whose files are gone; parse the rest in worker processes; embed their chunks in batches and
commit each batch in one transaction (documents, chunks, vectors, rejections, generation). A crash
loses at most the batch in flight, and a re-run picks up from there.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ingest.chunk import chunk_uid, config_digest
from ingest.discover import FileRecord, expand_paths, file_record
from ingest.embed import Embedder, SentenceTransformerEmbedder
from ingest.process import ParsePool, Processed, Rejection

from .config import Settings
from .errors import StoreError
from .store import ChunkInput, Document, Quarantine, Store
from .types import FileOutcome, IngestReport

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (files done, files to process, current path)


def ingest(
    paths: Iterable[str | Path],
    settings: Settings | None = None,
    *,
    groups: Sequence[str] | None = None,
    prune: bool = False,
    store: Store | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """One ingest run (parse workers start and stop with it); for repeated runs keep an Ingestor."""
    with Ingestor(settings, store=store, embedder=embedder) as ingestor:
        return ingestor.ingest(paths, groups=groups, prune=prune, progress=progress)


class Ingestor:
    """Keeps the expensive parts of ingestion warm between runs: the embedder and the parse workers.

    A service or the app that ingests uploads as they come holds one (workers start on the first run
    that has files to parse, and stop on close()); `ingest()` is a one-run convenience around it.
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store or Store(self.settings)  # (a Store is cheap: it opens the database, no index yet)
        self.embedder = embedder or SentenceTransformerEmbedder(self.settings.embedding)
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
        self, paths: Iterable[str | Path], *, groups: Sequence[str] | None = None, prune: bool = False,
        progress: Progress | None = None, store: Store | None = None,
    ) -> IngestReport:
        """Ingest into this Ingestor's store, or into `store` (one warm Ingestor can serve several stores)."""
        settings, embedder = self.settings, self.embedder
        store = store or self.store
        groups = tuple(sorted(set(groups or settings.default_groups)))
        report = IngestReport()
        t0 = time.perf_counter()
        with store.writer():
            files, missing, roots = expand_paths(paths)
            for m in missing:
                report.outcomes.append(FileOutcome(path=m, status="rejected", reason="not found", detail="no such file, folder or glob match"))
            records: list[FileRecord] = []
            for f in files:
                try:
                    records.append(file_record(f))
                except OSError as e:
                    report.outcomes.append(FileOutcome(path=str(f), status="rejected", reason="parse error", detail=f"cannot read: {e}"))
            report.files_seen = len(records) + len(report.outcomes)
            report.timings["discover_s"] = time.perf_counter() - t0

            todo = _classify(store, records, groups, report)
            if prune:
                _prune(store, roots, {r.uri for r in records}, report)
            if todo:
                if self._pool is None:
                    self._pool = ParsePool(settings.ingest, str(embedder.path), settings.ingest.parse_workers).__enter__()
                _check_embedding_model(store, embedder)  # loads the embedder while the workers warm up
                _process(store, embedder, self._pool, todo, groups, settings, report, progress)
            t_flush = time.perf_counter()
            store.flush_indexes()
            report.timings["index_s"] = time.perf_counter() - t_flush
            report.still_quarantined = store.counts()["quarantined"]
        for o in report.outcomes:
            report.rejected += o.status == "rejected"
            report.ingested += o.status == "ingested"
            report.updated += o.status == "updated"
        report.seconds = time.perf_counter() - t0
        return report


def _classify(store: Store, records: list[FileRecord], groups: tuple[str, ...], report: IngestReport) -> list[tuple[FileRecord, str]]:
    """Split inputs into unchanged (handled here) and work to do: [(record, "new"|"changed")]."""
    with store.sessions() as s:
        docs = {d.source_uri: d for d in s.query(Document)}
        quarantined = {q.source_uri: q for q in s.query(Quarantine)}
    by_sha = {d.sha256: uri for uri, d in docs.items()}
    todo: list[tuple[FileRecord, str]] = []
    regroup: list[str] = []
    for rec in records:
        doc = docs.get(rec.uri)
        if doc is not None and doc.sha256 == rec.sha256:
            report.unchanged += 1
            if doc.group_names != list(groups):
                regroup.append(rec.uri)
            continue
        q = quarantined.get(rec.uri)
        if doc is None and q is not None and q.sha256 == rec.sha256:
            report.unchanged += 1  # rejected before, same bytes: no point parsing again
            continue
        original = by_sha.get(rec.sha256)
        if original is not None and original != rec.uri:
            _reject_now(store, rec, "duplicate content", f"same bytes as {original}", report)
            continue
        by_sha[rec.sha256] = rec.uri
        todo.append((rec, "changed" if doc is not None else "new"))
    if regroup:
        with store.transaction() as tx:
            for uri in regroup:
                tx.set_groups(tx.document_by_uri(uri), groups)
                report.outcomes.append(FileOutcome(path=uri, status="updated", detail=f"groups set to {', '.join(groups)}"))
    return todo


def _reject_now(store: Store, rec: FileRecord, reason: str, detail: str, report: IngestReport) -> None:
    with store.transaction() as tx:
        tx.quarantine(rec.uri, rec.sha256, rec.size, reason, detail)
    report.outcomes.append(FileOutcome(path=str(rec.path), status="rejected", reason=reason, detail=detail))


def _prune(store: Store, roots: list[Path], seen: set[str], report: IngestReport) -> None:
    root_uris = [r.as_uri() for r in roots]

    def under_roots(uri: str) -> bool:
        return any(uri == r or uri.startswith(r.rstrip("/") + "/") for r in root_uris)

    with store.transaction() as tx:
        for doc in tx.session.query(Document).all():
            if doc.source_uri not in seen and under_roots(doc.source_uri):
                report.chunks_removed += tx.delete_document(doc)
                report.removed += 1
                report.outcomes.append(FileOutcome(path=doc.source_uri, status="removed", file_type=doc.file_type))
        for q in tx.session.query(Quarantine).all():
            if q.source_uri not in seen and under_roots(q.source_uri):
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


def _process(store, embedder, pool: ParsePool, todo, groups, settings: Settings, report: IngestReport, progress: Progress | None) -> None:
    kinds = {str(rec.path): (rec, kind) for rec, kind in todo}
    digest = config_digest(settings.ingest, embedder.model_name)
    batch: list[Processed | Rejection] = []
    pending_chunks = 0
    timings = {"parse_s": 0.0, "embed_s": 0.0, "write_s": 0.0}

    def commit() -> None:
        nonlocal batch, pending_chunks
        done = [b for b in batch if isinstance(b, Processed)]
        texts = [c.embed_text for p in done for c in p.chunks]
        t = time.perf_counter()
        vectors = embedder.encode(texts)
        timings["embed_s"] += time.perf_counter() - t
        t = time.perf_counter()
        with store.transaction() as tx:
            offset = 0
            for item in batch:
                rec, kind = kinds[item.path]
                if isinstance(item, Rejection):
                    tx.quarantine(rec.uri, rec.sha256, rec.size, item.reason, item.detail)
                    report.outcomes.append(FileOutcome(path=item.path, status="rejected", reason=item.reason, detail=item.detail))
                    continue
                uid = hashlib.sha256(rec.uri.encode()).hexdigest()[:32]
                doc = Document(
                    uid=uid, source_uri=rec.uri, title=item.title, media_type=item.media_type, file_type=item.file_type,
                    size=rec.size, mtime=rec.mtime, sha256=rec.sha256, pages=item.pages,
                )
                chunks = [
                    ChunkInput(
                        uid=chunk_uid(uid, c, digest), position=c.position, text=c.text, section=c.section,
                        page=c.page, page_end=c.page_end, token_count=c.token_count, kinds=",".join(c.kinds),
                        table_html=c.table_html, vector=vectors[offset + i],
                    )
                    for i, c in enumerate(item.chunks)
                ]
                offset += len(item.chunks)
                tx.put_document(doc, groups, chunks)
                report.chunks_added += len(chunks)
                report.pages += item.pages or 0
                report.outcomes.append(
                    FileOutcome(path=item.path, status="updated" if kind == "changed" else "ingested",
                                file_type=item.file_type, chunks=len(chunks))
                )
        timings["write_s"] += time.perf_counter() - t
        report.embedded_chunks += len(texts)
        batch, pending_chunks = [], 0

    t_all = time.perf_counter()
    for n, item in enumerate(pool.run([(str(rec.path), rec.size) for rec, _ in todo]), start=1):
        report.parsed += 1
        if isinstance(item, Processed):
            timings["parse_s"] += item.parse_s
            pending_chunks += len(item.chunks)
        batch.append(item)
        if progress:
            progress(n, len(todo), item.path)
        if pending_chunks >= settings.ingest.commit_every_chunks or len(batch) >= 64:
            commit()
    if batch:
        commit()
    timings["process_s"] = time.perf_counter() - t_all
    report.timings.update(timings)
