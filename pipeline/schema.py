"""The store's SQL schema: the tables (SQLAlchemy declarative models) and opening a database with them.

SQL is the store's source of truth (pipeline/store.py reads and writes it; pipeline/indexes.py holds the
FAISS and BM25 files derived from it). Tables only ever gain nullable columns or new tables, so a store
made by an older version opens and is brought up to date in place (`open_engine`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .errors import StoreError

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


def utc_now() -> datetime:
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
    ingested_at: Mapped[datetime] = mapped_column(default=utc_now)
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
    at: Mapped[datetime] = mapped_column(default=utc_now)
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
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g for g in self.groups.split(",") if g)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def open_engine(url: str) -> Engine:
    """An engine on the database at `url` with the current tables: missing ones created, missing (nullable)
    columns added; on SQLite with foreign keys on, WAL and a busy timeout."""
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


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
