"""The store: document and chunk metadata in SQL (SQLAlchemy), vectors in FAISS, a BM25 index.

SQL is the source of truth (its tables: pipeline/schema.py). Each chunk row keeps its embedding (float32
bytes), and every write transaction bumps a generation number in the same commit. The FAISS index and the
BM25 index are derived files named by the generation they match (pipeline/indexes.py); on open, a file whose
generation is not the SQL generation is ignored and the index is rebuilt from SQL, so a crash at any moment
leaves a store that opens and agrees with itself. FAISS ids are chunk row ids (SQLite AUTOINCREMENT: never
reused). This module: reading, the writer's lock, write transactions, the service's API keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from sqlalchemy import and_, create_engine, delete, func, or_, select
from sqlalchemy.orm import Session, noload, sessionmaker

from ingest.chunk import embed_text  # the indexed text: dense and BM25 see the same (context line, then text)

from .config import Settings
from .errors import StoreError
from .indexes import (
    GenerationCache, build_faiss_index, clean_stale_files, copy_in_memory, faiss_ids, lexical_path, needs_rebuild,
    read_faiss_index, read_lexical_index, vectors_path, write_faiss_index,
)
from .lexical import BM25Index
from .schema import ApiKey, ChunkRow, Document, DocumentGroup, Quarantine, QuarantineGroup, State, open_engine, utc_now

if TYPE_CHECKING:
    from .types import SearchFilters

log = logging.getLogger(__name__)
WRITER_LOCK_KEY = 0x5C01_97A6  # the PostgreSQL advisory lock that one writer at a time holds (any constant)


@dataclass
class ChunkInput:
    """A chunk ready to be written: its text, metadata and embedding."""

    uid: str
    position: int
    text: str
    section: str
    page: int | None
    page_end: int | None
    token_count: int
    kinds: str
    table_html: str | None
    vector: np.ndarray
    context: str = ""  # indexed (dense and BM25) before the text; never shown


def store_exists(settings: Settings) -> bool:
    """Whether there is a store to open: its folder (the default SQLite database lives there) or, with a
    `database_url`, the store's tables in that database (a replica starts on an empty folder and derives
    its indexes from SQL)."""
    if not settings.database_url:
        return Path(settings.store_dir).exists()
    from sqlalchemy import inspect

    try:
        engine = create_engine(settings.database_url)
        try:
            return inspect(engine).has_table(Document.__tablename__)
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 - unreachable server, bad URL: say which
        raise StoreError(f"cannot reach the database {settings.database_url.split('@')[-1]}: {e}") from e


class Store:
    """Open (or create) a store; reading is safe from many threads, writing takes the store's lock."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.dir = Path(self.settings.store_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store folder {self.dir}: {e}") from e
        self.engine = open_engine(self.settings.resolved_database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # derived from SQL, per generation (loaded lazily, safe against concurrent searches)
        self._vectors: GenerationCache = GenerationCache()  # the writer's FAISS index: transactions update it
        self._search_vectors: GenerationCache = GenerationCache()  # for searches: never mutated, maybe mmapped
        self._lexical: GenerationCache[BM25Index] = GenerationCache()
        self._catalog: GenerationCache[ChunkCatalog] = GenerationCache()
        self._ids: GenerationCache[np.ndarray] = GenerationCache()  # the chunk ids in SQL: what changed since an index
        self._mapped: int | None = None  # id() of the last FAISS index read memory-mapped (never to be changed)

    # -- state ---------------------------------------------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        with self.sessions() as s:
            row = s.get(State, key)
            return row.value if row else default

    @property
    def generation(self) -> int:
        return int(self.get_state("generation", "0"))

    def counts(self) -> dict[str, int]:
        with self.sessions() as s:
            return {
                "documents": s.scalar(select(func.count(Document.id))) or 0,
                "chunks": s.scalar(select(func.count(ChunkRow.id))) or 0,
                "quarantined": s.scalar(select(func.count(Quarantine.id))) or 0,
            }

    def documents(self) -> list[Document]:
        with self.sessions() as s:
            return list(s.scalars(select(Document).order_by(Document.source_uri)))

    def quarantined(self, groups: Sequence[str] | None = None) -> list[Quarantine]:
        """Rejected files: all of them (groups None: the operator), or those rejected by an ingest run for a
        group among `groups` (a rejection recorded before groups were kept is shown to the operator only)."""
        query = select(Quarantine).order_by(Quarantine.source_uri)
        if groups is not None:
            allowed = sorted(set(groups))
            if not allowed:
                return []
            query = query.where(Quarantine.id.in_(
                select(QuarantineGroup.quarantine_id).where(QuarantineGroup.group.in_(allowed))))
        with self.sessions() as s:
            return list(s.scalars(query))

    def chunks(self, ids: Sequence[int]) -> list[ChunkRow]:
        """Chunk rows for `ids`, in the order given (unknown ids are skipped)."""
        with self.sessions() as s:
            rows = {r.id: r for r in s.scalars(select(ChunkRow).where(ChunkRow.id.in_(list(map(int, ids)))))}
        return [rows[i] for i in map(int, ids) if i in rows]

    # -- service API keys (hashes only; app/service/auth.py makes and checks the keys) --------------------
    def create_api_key(self, name: str, key_hash: str, groups: Sequence[str], editor: bool = False) -> ApiKey:
        """Record a key by its hash. Raises StoreError when the name is taken (revoked keys keep theirs)."""
        from sqlalchemy.exc import IntegrityError

        if not name.strip():
            raise StoreError("a key needs a name (--name), e.g. the service or team that will hold it")
        row = ApiKey(name=name.strip(), key_hash=key_hash, groups=",".join(sorted(set(groups))), editor=editor)
        try:
            with self.sessions.begin() as s:
                s.add(row)
        except IntegrityError as e:
            raise StoreError(f"a key named {name!r} exists already; pick another name or revoke it first") from e
        return row

    def api_keys(self) -> list[ApiKey]:
        with self.sessions() as s:
            return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not (the caller checks `active`)."""
        with self.sessions() as s:
            return s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def revoke_api_key(self, name_or_id: str) -> ApiKey | None:
        """Revoke the key with this name (or, failing that, this id); None when there is none. Idempotent."""
        with self.sessions.begin() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name_or_id))
            if row is None and name_or_id.isdigit():
                row = s.get(ApiKey, int(name_or_id))
            if row is not None and row.revoked_at is None:
                row.revoked_at = utc_now()
            return row

    # -- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, wait: float | None = 0.0) -> Iterator["Store"]:
        """Exclusive write access: across processes on this machine (a lock file in the store folder) and, on
        a shared database server, across machines (a PostgreSQL advisory lock held on its own connection
        for as long as the writer runs; the server drops it if the process dies). While another writer
        holds it, wait up to `wait` seconds (None: as long as it takes), then raise StoreError."""
        deadline = None if wait is None else time.monotonic() + wait
        with open(self.dir / ".lock", "w") as lock:
            self._wait_for(lambda: _try_flock(lock), deadline, wait, f"the store in {self.dir}")
            with self._database_lock(deadline, wait):
                clean_stale_files(self.dir, self.generation)
                yield self

    @contextlib.contextmanager
    def _database_lock(self, deadline: float | None, wait: float | None) -> Iterator[None]:
        if self.engine.dialect.name != "postgresql":  # SQLite: the database is a file in this folder
            yield
            return
        with self.engine.connect() as conn:
            def take() -> bool:
                got = conn.execute(select(func.pg_try_advisory_lock(WRITER_LOCK_KEY))).scalar()
                conn.commit()  # no transaction held open while waiting or writing
                return bool(got)

            self._wait_for(take, deadline, wait, f"the store in database {self.engine.url.database}")
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(WRITER_LOCK_KEY)))
                conn.commit()

    @staticmethod
    def _wait_for(take: Callable[[], bool], deadline: float | None, wait: float | None, what: str) -> None:
        waited = False
        while not take():
            if not waited:
                waited = True
                if wait != 0:
                    log.warning("another process is writing to %s; waiting for it", what)
            if deadline is not None and time.monotonic() >= deadline:
                raise StoreError(f"another process is writing to {what}; wait for it to finish")
            time.sleep(0.2)

    @contextlib.contextmanager
    def transaction(self) -> Iterator["WriteBatch"]:
        """One atomic write: everything in it, plus the generation bump, commits together or not at all."""
        vectors = self.vector_index()  # current generation's index, to update after commit
        batch = WriteBatch(self.sessions())
        try:
            yield batch
            gen = self.generation + 1
            batch.session.merge(State(key="generation", value=str(gen)))
            batch.session.commit()
        except BaseException:
            batch.session.rollback()
            raise
        finally:
            batch.session.close()
        if batch.removed_ids:
            vectors.remove_ids(np.asarray(batch.removed_ids, dtype=np.int64))
        if batch.added_ids:
            vectors.add_with_ids(np.vstack(batch.added_vectors), np.asarray(batch.added_ids, dtype=np.int64))
        self._vectors.set(gen, vectors)

    def delete_documents(self, ids: Sequence[int]) -> int:
        """Delete the documents with these ids and their chunks (one transaction, indexes persisted after);
        their quarantine records are untouched. Unknown ids are ignored. Returns the chunks removed."""
        removed = 0
        with self.writer():
            with self.transaction() as tx:
                for doc in list(tx.session.scalars(select(Document).where(Document.id.in_(list(map(int, ids)))))):
                    removed += tx.delete_document(doc)
            self.flush_indexes()
        return removed

    def set_state(self, **values: str) -> None:
        with self.sessions.begin() as s:
            for k, v in values.items():
                s.merge(State(key=k, value=v))

    def flush_indexes(self) -> None:
        """Persist the FAISS and BM25 indexes for the current generation (temp file, fsync, rename)."""
        gen = self.generation
        vectors_file, lexical_file = vectors_path(self.dir, gen), lexical_path(self.dir, gen)
        if not vectors_file.exists():  # an unchanged re-ingest writes nothing
            index = self.vector_index()
            if needs_rebuild(index, self.settings.flat_index_max):
                index = self._build_vectors()
                self._vectors.set(gen, index)
            write_faiss_index(vectors_file, index)
        if not lexical_file.exists():
            self.lexical_index().save(lexical_file)
        clean_stale_files(self.dir, gen)

    # -- indexes (derived from SQL, per generation) -------------------------------------------------------
    def vector_index(self):
        """The writer's FAISS index matching the SQL generation (loaded, or rebuilt from SQL)."""
        return self._vectors.get(self.generation, lambda gen: self._load_vectors(gen, previous=self._vectors.peek()))

    def search_index(self, generation: int | None = None):
        """A FAISS index for searching at the SQL generation (or `generation`, one just read: a search reads it
        once), never mutated (the writer's vector_index() is).

        Read from the generation's file, memory-mapped when the file is at least
        settings.retrieval.mmap_min_bytes; rebuilt from SQL when that file is not written yet.
        """
        mmap_min_bytes = self.settings.retrieval.mmap_min_bytes
        return self._search_vectors.get(
            self.generation if generation is None else generation,
            lambda gen: self._load_vectors(gen, mmap_min_bytes, previous=self._search_vectors.peek()))

    def lexical_index(self, generation: int | None = None) -> BM25Index:
        """The BM25 index matching the SQL generation, or `generation` (its file, or built from SQL)."""
        return self._lexical.get(self.generation if generation is None else generation, self._load_lexical)

    def chunk_catalog(self) -> "ChunkCatalog":
        """Chunk ids (ascending) with their document ids and positions, at the SQL generation."""
        return self._catalog.get(self.generation, self._load_catalog)

    # A new generation is loaded from its files when this folder has them (the writer flushed them here), else
    # brought up from the index of an earlier generation that this process holds, by the chunks added and
    # removed since (chunk rows are only ever inserted or deleted, and ids are never reused), else built from
    # SQL. A replica on a folder of its own, or a reader while an ingest commits batch after batch, so pays
    # for what changed, not for the whole store.
    DELTA_MAX_SHARE = 0.25  # more of the chunks changed than this: building from SQL is as cheap

    def _load_vectors(self, gen: int, mmap_min_bytes: int | None = None, previous=None):
        path = vectors_path(self.dir, gen)
        try:
            size = path.stat().st_size
            index = read_faiss_index(path, mmap_min_bytes)
        except (OSError, RuntimeError):  # (FAISS says a missing file with RuntimeError)
            if path.exists():
                raise
            # no file, or a writer's flush removed it meanwhile (its generation is superseded): from SQL below
        else:
            if mmap_min_bytes is not None and size >= mmap_min_bytes:
                self._mapped = id(index)  # read-only memory: a later delta copies it with copy_in_memory
            return index
        index = self._vectors_delta(previous, gen) if previous is not None else None
        return index if index is not None else self._build_vectors()

    def _chunk_delta(self, known: np.ndarray, gen: int) -> tuple[np.ndarray, np.ndarray] | None:
        """How the chunks in SQL at `gen` differ from `known` (the ids an earlier index holds): (mask over `known` of
        the ids still stored, ids added since), or None when so much changed that building from SQL is as cheap."""
        now = self._ids.get(gen, self._load_ids)
        keep = np.isin(known, now)
        added = np.setdiff1d(now, known)
        if int((~keep).sum()) + len(added) > self.DELTA_MAX_SHARE * len(now):
            return None
        return keep, added

    def _rows(self, ids: np.ndarray, *columns) -> list:
        """`columns` of the chunks with these ids, by ascending id (the ids go to SQL 5,000 at a time)."""
        rows = []
        for lo in range(0, len(ids), 5000):
            with self.sessions() as s:
                rows += s.execute(select(*columns).where(ChunkRow.id.in_(ids[lo:lo + 5000].tolist()))
                                  .order_by(ChunkRow.id)).all()
        return rows

    def _load_ids(self, gen: int) -> np.ndarray:
        with self.sessions() as s:
            return np.fromiter(s.scalars(select(ChunkRow.id)), np.int64)

    def _vectors_delta(self, previous, gen: int):
        """`previous` (never changed: a copy is) with the chunks removed and added since; None: build from SQL."""
        known = np.sort(np.fromiter(faiss_ids(previous), np.int64))
        delta = self._chunk_delta(known, gen)
        if delta is None:
            return None
        keep, added = delta
        if keep.all() and not len(added):
            return previous
        import faiss

        index = copy_in_memory(previous) if id(previous) == self._mapped else faiss.clone_index(previous)
        if not keep.all():
            index.remove_ids(known[~keep])
        rows = self._rows(added, ChunkRow.id, ChunkRow.embedding)
        if rows:
            index.add_with_ids(np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]),
                               np.asarray([r[0] for r in rows], dtype=np.int64))
        return None if needs_rebuild(index, self.settings.flat_index_max) else index

    def _build_vectors(self):
        ids, vecs = self.all_vectors()
        dim = vecs.shape[1] if len(vecs) else int(self.get_state("embedding_dim", "0") or 0) or 384
        return build_faiss_index(ids, vecs, dim, self.settings.flat_index_max)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        with self.sessions() as s:
            rows = s.execute(select(ChunkRow.id, ChunkRow.embedding).order_by(ChunkRow.id)).all()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        vecs = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return ids, vecs

    def _load_lexical(self, gen: int) -> BM25Index:
        index = read_lexical_index(lexical_path(self.dir, gen))
        if index is None:
            index = self._lexical_delta(self._lexical.peek(), gen)
        if index is None:
            with self.sessions() as s:
                rows = s.execute(select(ChunkRow.id, ChunkRow.section, ChunkRow.text, ChunkRow.context).order_by(ChunkRow.id)).all()
            index = BM25Index.build([r[0] for r in rows], (embed_text(r[1], r[2], r[3] or "") for r in rows))
        return index

    def _lexical_delta(self, previous: BM25Index | None, gen: int) -> BM25Index | None:
        """`previous` with the chunks removed and added since (a new index); None: build from SQL."""
        delta = self._chunk_delta(previous.ids, gen) if previous is not None else None
        if delta is None:
            return None
        keep, added = delta
        rows = self._rows(added, ChunkRow.id, ChunkRow.section, ChunkRow.text, ChunkRow.context)
        return previous.updated(keep, [r[0] for r in rows], [embed_text(r[1], r[2], r[3] or "") for r in rows])

    def _load_catalog(self, gen: int) -> "ChunkCatalog":
        previous = self._catalog.peek()
        delta = self._chunk_delta(previous.ids, gen) if previous is not None else None
        if delta is not None:
            keep, added = delta
            rows = self._rows(added, ChunkRow.id, ChunkRow.document_id, ChunkRow.position)
            new = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
            ids = np.concatenate([previous.ids[keep], new[:, 0]])
            order = np.argsort(ids, kind="stable")
            return ChunkCatalog(gen, ids[order], np.concatenate([previous.document_ids[keep], new[:, 1]])[order],
                                np.concatenate([previous.positions[keep], new[:, 2]])[order])
        with self.sessions() as s:
            rows = s.execute(select(ChunkRow.id, ChunkRow.document_id, ChunkRow.position).order_by(ChunkRow.id)).all()
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        return ChunkCatalog(gen, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    # -- reading for retrieval -------------------------------------------------------------------------
    def readable_documents(self, groups: Sequence[str], filters: "SearchFilters | None" = None) -> np.ndarray:
        """Ids of the documents that share a group with `groups` and match `filters` (sorted int64)."""
        from .filters import filter_conditions, glob_match

        groups = sorted(set(groups))
        if not groups:
            return np.zeros(0, np.int64)
        cond = [Document.id.in_(select(DocumentGroup.document_id).where(DocumentGroup.group.in_(groups)))]
        globs: list[tuple[str, list[str]]] = []
        if filters is not None:
            cond += filter_conditions(filters, globs)
        cols = [Document.id] + [getattr(Document, name) for name, _ in globs]
        with self.sessions() as s:
            rows = s.execute(select(*cols).where(and_(*cond))).all()
        if globs:
            rows = [r for r in rows if all(glob_match(name, r[i + 1], pats) for i, (name, pats) in enumerate(globs))]
        return np.sort(np.asarray([r[0] for r in rows], dtype=np.int64))

    def document_metadata(self) -> list[tuple[int, str | None, str | None]]:
        """[(document id, entity, period)] of the documents that state an entity or a period."""
        with self.sessions() as s:
            rows = s.execute(select(Document.id, Document.entity, Document.period)
                             .where(or_(Document.entity.is_not(None), Document.period.is_not(None)))).all()
        return [(int(i), e, p) for i, e, p in rows]

    def document_by_uri(self, uri: str) -> Document | None:
        with self.sessions() as s:
            return s.scalar(select(Document).where(Document.source_uri == uri))

    def documents_by_uri(self, uris: Sequence[str]) -> dict[str, Document]:
        """The stored documents among these source URIs, by URI (one query)."""
        with self.sessions() as s:
            return {d.source_uri: d for d in s.scalars(select(Document).where(Document.source_uri.in_(list(uris))))}

    def documents_by_id(self, ids: Sequence[int]) -> dict[int, Document]:
        with self.sessions() as s:
            query = select(Document).options(noload(Document.groups)).where(Document.id.in_([int(i) for i in ids]))
            return {d.id: d for d in s.scalars(query)}

    def window_chunk_ids(self, windows: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """Chunks inside (document id, first position, last position) windows: [(chunk id, document id, position)]."""
        if not windows:
            return []
        where = or_(*(and_(ChunkRow.document_id == d, ChunkRow.position.between(lo, hi)) for d, lo, hi in windows))
        with self.sessions() as s:
            rows = s.execute(select(ChunkRow.id, ChunkRow.document_id, ChunkRow.position).where(where)).all()
        return [(int(a), int(b), int(c)) for a, b, c in rows]

    def check(self) -> dict[str, int | bool]:
        """Do SQL rows and FAISS vectors agree? (the crash-safety invariant)"""
        with self.sessions() as s:
            sql_ids = set(s.scalars(select(ChunkRow.id)))
            doc_chunks = s.scalar(select(func.coalesce(func.sum(Document.n_chunks), 0)))
        index = self.vector_index()
        in_faiss = faiss_ids(index)
        return {
            "sql_chunks": len(sql_ids),
            "faiss_vectors": int(index.ntotal),
            "document_chunk_total": int(doc_chunks),
            "consistent": sql_ids == in_faiss and len(sql_ids) == int(index.ntotal) == int(doc_chunks),
        }


@dataclass(frozen=True)
class ChunkCatalog:
    """Which document each chunk belongs to, as arrays aligned on ascending chunk ids."""

    generation: int
    ids: np.ndarray  # (N,) int64 chunk row ids, ascending
    document_ids: np.ndarray  # (N,) int64
    positions: np.ndarray  # (N,) int64

    def mask_for_documents(self, document_ids: np.ndarray) -> np.ndarray:
        """(N,) bool: chunks whose document is in `document_ids`."""
        if len(self.ids) == 0 or len(document_ids) == 0:
            return np.zeros(len(self.ids), bool)
        flags = np.zeros(int(max(self.document_ids.max(), document_ids.max())) + 1, bool)
        flags[document_ids] = True
        return flags[self.document_ids]


class WriteBatch:
    """The writes of one transaction; the store applies the vector changes after the SQL commit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.removed_ids: list[int] = []
        self.added_ids: list[int] = []
        self.added_vectors: list[np.ndarray] = []

    def document_by_uri(self, uri: str) -> Document | None:
        return self.session.scalar(select(Document).where(Document.source_uri == uri))

    def delete_document(self, doc: Document) -> int:
        ids = list(self.session.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc.id)))
        self.session.execute(delete(ChunkRow).where(ChunkRow.document_id == doc.id))
        self.session.delete(doc)
        self.session.flush()
        self.removed_ids.extend(ids)
        return len(ids)

    def put_document(self, doc: Document, groups: Sequence[str], chunks: Sequence[ChunkInput]) -> Document:
        """Insert `doc` (replacing any document at the same URI) with its groups and chunks."""
        old = self.document_by_uri(doc.source_uri)
        if old is not None:
            self.delete_document(old)
        self.unquarantine(doc.source_uri)
        doc.n_chunks = len(chunks)
        doc.groups = [DocumentGroup(group=g) for g in sorted(set(groups))]
        self.session.add(doc)
        self.session.flush()
        rows = [
            ChunkRow(
                uid=c.uid, document_id=doc.id, position=c.position, text=c.text, section=c.section, page=c.page,
                page_end=c.page_end, token_count=c.token_count, kinds=c.kinds, table_html=c.table_html,
                embedding=np.ascontiguousarray(c.vector, dtype=np.float32).tobytes(), context=c.context or None,
            )
            for c in chunks
        ]
        self.session.add_all(rows)
        self.session.flush()
        self.added_ids.extend(r.id for r in rows)
        self.added_vectors.extend(np.asarray(c.vector, dtype=np.float32)[None, :] for c in chunks)
        return doc

    def set_groups(self, doc: Document, groups: Sequence[str]) -> None:
        doc.groups = [DocumentGroup(group=g) for g in sorted(set(groups))]
        self.session.flush()

    def quarantine(self, uri: str, sha256: str, size: int, reason: str, detail: str, groups: Sequence[str] = (),
                   chunk_digest: str | None = None) -> None:
        """Record a rejected file, visible to `groups` (the groups the ingest was run for) and the operator."""
        self.unquarantine(uri)
        self.session.add(Quarantine(source_uri=uri, sha256=sha256, size=size, reason=reason, detail=detail[:2000],
                                    chunk_digest=chunk_digest, groups=[QuarantineGroup(group=g) for g in sorted(set(groups))]))
        self.session.flush()

    def unquarantine(self, uri: str) -> None:
        ids = select(Quarantine.id).where(Quarantine.source_uri == uri).scalar_subquery()
        self.session.execute(delete(QuarantineGroup).where(QuarantineGroup.quarantine_id.in_(ids)))
        self.session.execute(delete(Quarantine).where(Quarantine.source_uri == uri))


def _try_flock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
