"""The store: document and chunk metadata in SQL (SQLAlchemy), vectors in FAISS, a BM25 index.

SQL is the source of truth. Each chunk row keeps its embedding (float32 bytes), and every write
transaction bumps a generation number in the same commit. The FAISS index and the BM25 index are derived
files named by the generation they match (vectors-<gen>.faiss, lexical-<gen>.npz), written to a temp
file, fsynced and renamed. On open, a file whose generation is not the SQL generation is ignored and the
index is rebuilt from SQL, so a crash at any moment leaves a store that opens and agrees with itself.
FAISS ids are chunk row ids (SQLite AUTOINCREMENT: never reused).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from sqlalchemy import (
    Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text, and_, create_engine, delete, event, func, or_, select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, noload, relationship, sessionmaker

from ingest.chunk import embed_text  # the indexed text: dense and BM25 see the same (context line, then text)

from .config import Settings
from .errors import StoreError
from .lexical import BM25Index, IndexFileError

if TYPE_CHECKING:
    from .types import SearchFilters

log = logging.getLogger(__name__)
WRITER_LOCK_KEY = 0x5C01_97A6  # the PostgreSQL advisory lock that one writer at a time holds (any constant)


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    source_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str] = mapped_column(String(512))
    media_type: Mapped[str] = mapped_column(String(128))
    file_type: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[datetime] = mapped_column(default=_now)
    # added after the first stores were made: nullable, so `_add_missing_columns` can add them in place
    chunk_digest: Mapped[str | None] = mapped_column(String(32), nullable=True)  # chunking format + settings it was cut with
    entity: Mapped[str | None] = mapped_column(String(512), nullable=True)  # what the document says: filer, parties, sender
    period: Mapped[str | None] = mapped_column(String(512), nullable=True)  # "For the quarterly period ended July 1, 2023"
    dated: Mapped[str | None] = mapped_column(String(64), nullable=True)  # ISO date the document states
    author: Mapped[str | None] = mapped_column(String(512), nullable=True)
    groups: Mapped[list["DocumentGroup"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def group_names(self) -> list[str]:
        return sorted(g.group for g in self.groups)


class DocumentGroup(Base):
    __tablename__ = "document_groups"
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    section: Mapped[str] = mapped_column(String(512), default="")
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    page_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_count: Mapped[int] = mapped_column(Integer)
    kinds: Mapped[str] = mapped_column(String(256), default="")
    table_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    context: Mapped[str | None] = mapped_column(Text, nullable=True)  # indexed with the text, never shown: document, entity, period, section


class Quarantine(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=_now)
    chunk_digest: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the ingest format that rejected it
    groups: Mapped[list["QuarantineGroup"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def group_names(self) -> list[str]:
        return sorted(g.group for g in self.groups)


class QuarantineGroup(Base):
    """The groups the rejecting ingest was run for: who may see the rejection (not the operator's CLI only).
    A table of its own, so stores made before it gain it from create_all without a migration."""

    __tablename__ = "quarantine_groups"
    quarantine_id: Mapped[int] = mapped_column(ForeignKey("quarantine.id", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class State(Base):
    __tablename__ = "state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApiKey(Base):
    """A key of the HTTP service (`sculptrag keys`): who holds it (a name), the groups it reads with, whether it
    may edit. Only the key's sha256 is stored; the key itself is shown once, when it is made. A table of its
    own, so older stores gain it from create_all."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # sha256 hex of the key
    groups: Mapped[str] = mapped_column(Text)  # comma-separated (a group name never holds a comma)
    editor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g for g in self.groups.split(",") if g)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


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
        url = self.settings.resolved_database_url
        self.engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._vectors = None  # faiss index for self._vectors_gen
        self._vectors_gen = -1
        self._lexical: BM25Index | None = None
        self._lexical_gen = -1
        self._read_lock = threading.RLock()  # guards the lazy loads below against concurrent searches
        self._search_vectors = None  # read-only faiss index for searches (never mutated, maybe mmapped)
        self._search_gen = -1
        self._catalog: ChunkCatalog | None = None
        self._catalog_gen = -1

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
                row.revoked_at = _now()
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
                self._clean_stale_files()
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
        self._vectors_gen = gen

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
        import faiss

        gen = self.generation
        vectors_file, lexical_file = self.dir / f"vectors-{gen}.faiss", self.dir / f"lexical-{gen}.npz"
        if not vectors_file.exists():  # an unchanged re-ingest writes nothing
            index = self.vector_index()
            if _wants_ivf(index.ntotal, self.settings.flat_index_max) != _is_ivf(index):
                index = self._rebuild_vectors()
            _atomic_write(vectors_file, faiss.serialize_index(index).tobytes())
        if not lexical_file.exists():
            self.lexical_index().save(lexical_file)
        self._clean_stale_files()

    # -- indexes -------------------------------------------------------------------------------------
    def vector_index(self):
        """The FAISS index matching the SQL generation (loaded, or rebuilt from SQL)."""
        import faiss

        gen = self.generation
        with self._read_lock:
            if self._vectors is not None and self._vectors_gen == gen:
                return self._vectors
            path = self.dir / f"vectors-{gen}.faiss"
            if path.exists():
                self._vectors = faiss.read_index(str(path))
            else:
                self._vectors = self._build_vectors()
            self._vectors_gen = gen
            return self._vectors

    def _rebuild_vectors(self):
        self._vectors = self._build_vectors()
        self._vectors_gen = self.generation
        return self._vectors

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

    def lexical_index(self) -> BM25Index:
        gen = self.generation
        with self._read_lock:
            if self._lexical is not None and self._lexical_gen == gen:
                return self._lexical
            path = self.dir / f"lexical-{gen}.npz"
            try:
                self._lexical = BM25Index.load(path) if path.exists() else None
            except IndexFileError as e:  # an older version's file, or a damaged one: derived data, rebuilt
                log.warning("%s", e)
                self._lexical = None
                with contextlib.suppress(OSError):
                    path.unlink()  # so the next flush_indexes writes the current format
            if self._lexical is None:
                with self.sessions() as s:
                    rows = s.execute(select(ChunkRow.id, ChunkRow.section, ChunkRow.text, ChunkRow.context).order_by(ChunkRow.id)).all()
                self._lexical = BM25Index.build([r[0] for r in rows], (embed_text(r[1], r[2], r[3] or "") for r in rows))
            self._lexical_gen = gen
            return self._lexical

    # -- reading for retrieval -------------------------------------------------------------------------
    def search_index(self):
        """A FAISS index for searching at the SQL generation, never mutated (the writer's vector_index() is).

        Read from the generation's file, memory-mapped when the file is at least
        settings.retrieval.mmap_min_bytes; rebuilt from SQL when that file is not written yet.
        """
        gen = self.generation
        with self._read_lock:
            if self._search_vectors is not None and self._search_gen == gen:
                return self._search_vectors
            path = self.dir / f"vectors-{gen}.faiss"
            if path.exists():
                self._search_vectors = read_faiss_index(path, self.settings.retrieval.mmap_min_bytes)
            else:
                self._search_vectors = self._build_vectors()
            self._search_gen = gen
            return self._search_vectors

    def chunk_catalog(self) -> "ChunkCatalog":
        """Chunk ids (ascending) with their document ids and positions, at the SQL generation."""
        gen = self.generation
        with self._read_lock:
            if self._catalog is not None and self._catalog_gen == gen:
                return self._catalog
            with self.sessions() as s:
                rows = s.execute(select(ChunkRow.id, ChunkRow.document_id, ChunkRow.position).order_by(ChunkRow.id)).all()
            arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
            self._catalog = ChunkCatalog(gen, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())
            self._catalog_gen = gen
            return self._catalog

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
        import faiss

        with self.sessions() as s:
            sql_ids = set(s.scalars(select(ChunkRow.id)))
            doc_chunks = s.scalar(select(func.coalesce(func.sum(Document.n_chunks), 0)))
        index = self.vector_index()
        faiss_ids = set(faiss.vector_to_array(index.id_map).tolist()) if hasattr(index, "id_map") else set(_ivf_ids(index))
        return {
            "sql_chunks": len(sql_ids),
            "faiss_vectors": int(index.ntotal),
            "document_chunk_total": int(doc_chunks),
            "consistent": sql_ids == faiss_ids and len(sql_ids) == int(index.ntotal) == int(doc_chunks),
        }

    def _clean_stale_files(self) -> None:
        gen = self.generation
        for p in list(self.dir.glob("vectors-*.faiss")) + list(self.dir.glob("lexical-*.npz")) + list(self.dir.glob("*.tmp*")):
            stem = p.name.split(".")[0]
            if ".tmp" in p.name or not stem.endswith(f"-{gen}"):
                with contextlib.suppress(OSError):
                    p.unlink()


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


def build_faiss_index(ids: np.ndarray, vecs: np.ndarray, dim: int, flat_max: int):
    """Exact inner-product index up to `flat_max` vectors; IVF (nlist ~ 4*sqrt(n), nprobe nlist/4) above."""
    import faiss

    n = len(ids)
    if _wants_ivf(n, flat_max):
        nlist = int(max(min(4 * np.sqrt(n), n / 39), 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vecs)
        index.nprobe = max(1, nlist // 4)  # nlist/16 cost 0.09 nDCG@10 on SciFact
        index.add_with_ids(vecs, ids)
        return index
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if n:
        index.add_with_ids(vecs, ids)
    return index


def read_faiss_index(path: Path, mmap_min_bytes: int):
    """Read a FAISS file, memory-mapped (read-only: never add to it) when it is at least `mmap_min_bytes`.

    FAISS maps flat codes with IO_FLAG_MMAP_IFC and IVF inverted lists with IO_FLAG_MMAP; the file's
    first four bytes (its fourcc) say which one it is.
    """
    import faiss

    if path.stat().st_size < mmap_min_bytes:
        return faiss.read_index(str(path))
    with open(path, "rb") as f:
        fourcc = f.read(4)
    flat = fourcc in (b"IxM2", b"IxMp", b"IxFI", b"IxF2")
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if flat else faiss.IO_FLAG_MMAP
    try:
        return faiss.read_index(str(path), flag)
    except RuntimeError:  # a FAISS build without this mapping: read it into memory
        log.warning("could not memory-map %s; reading it into memory", path)
        return faiss.read_index(str(path))


def _wants_ivf(n: int, flat_max: int) -> bool:
    return n > flat_max


def _is_ivf(index) -> bool:
    return not hasattr(index, "id_map")


def _ivf_ids(index) -> list[int]:
    import faiss

    invlists = index.invlists
    out: list[int] = []
    for lst in range(index.nlist):
        n = invlists.list_size(lst)
        if n:
            out.extend(faiss.rev_swig_ptr(invlists.get_ids(lst), n).tolist())
    return out


def _try_flock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _add_missing_columns(engine) -> None:
    """Bring a store made by an older version up to the current tables: add the (nullable) columns it lacks.

    Only additive changes happen here, and only nullable columns are ever added to existing tables, so
    this is safe on SQLite and PostgreSQL alike and idempotent; new tables come from create_all."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    if not col.nullable:
                        raise StoreError(f"the store's table {table.name} lacks the column {col.name}, which cannot be "
                                         "added in place; ingest into a new --store")
                    ddl = col.type.compile(dialect=engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}'))
                    log.info("store upgraded: %s.%s added", table.name, col.name)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
