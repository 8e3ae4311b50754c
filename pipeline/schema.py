"""The store's SQL schema: the tables (SQLAlchemy declarative models) and opening a database with them.

SQL is the store's source of truth (pipeline/store.py reads and writes it; pipeline/indexes.py holds the
FAISS and BM25 files derived from it). The schema is Alembic's: each change to these models comes with a
revision in pipeline/migrations/versions (tests/pipeline/test_migrations.py fails when they disagree), and
opening a store upgrades it to head in place (`open_engine` -> `upgrade_store`), stores made before Alembic
included.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text, create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

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
    # added after the first stores were made (nullable; stores made before Alembic gain them on open)
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
    A table of its own (added before Alembic; such stores gain it on open)."""

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
    own (added before Alembic; such stores gain it on open)."""

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
    """An engine on the database at `url`, its schema upgraded to the newest revision this sculptrag knows
    (`upgrade_store`); on SQLite with foreign keys on, WAL and a busy timeout."""
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        upgrade_store(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


# -- migrations (Alembic; the revisions are pipeline/migrations/versions/*.py) --------------------------------
MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema when Alembic took over; stores made before it are brought to it and stamped
# The newest revision in migrations/versions, so that opening a store at head needs neither Alembic's import
# nor its reading of the revision files (~150 ms a process); tests/pipeline/test_migrations.py checks it.
HEAD = "0001"
MIGRATION_LOCK_KEY = 0x5C01_97A7  # the PostgreSQL advisory lock of a migration (the writer's is ...A6)


def alembic_config(connection) -> "Config":
    """Alembic's configuration for the store's migrations, running on `connection` (no alembic.ini)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=1)
def _scripts() -> "ScriptDirectory":
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _known_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def head_revision() -> str:
    """The newest schema revision this sculptrag knows."""
    return _scripts().get_current_head()


def store_revision(connection) -> str | None:
    """The store's schema revision (None: no alembic_version table, a fresh database or a store made before
    Alembic). Reads only; migrates nothing."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revs = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(revs)) or None


def upgrade_store(engine: Engine) -> str:
    """Bring the store's schema to head and return the revision.

    Cheap when the store is already at head (one SELECT; Alembic is not even imported). Otherwise, under a
    lock so that two processes opening a fresh store at once do not both create tables (PostgreSQL: an
    advisory lock held by the migration's transaction; SQLite: BEGIN IMMEDIATE, SQLite's one writer), and in
    one transaction (DDL is transactional on both, so a crash leaves the store as it was):
      - a store made before Alembic is brought to the baseline and stamped (`_adopt_pre_alembic_store`);
      - a store at a revision this sculptrag does not know was upgraded by a newer one: StoreError;
      - then Alembic upgrades to head (a fresh database: every revision from the first)."""
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no alembic_version table (yet): the locked path below finds out what the store is
        current = []
    if current == [HEAD]:
        return HEAD

    from alembic import command

    head = head_revision()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits (busy_timeout) while another process migrates
        elif engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        current = store_revision(conn)  # again, under the lock: another process may have migrated meanwhile
        if current is None and inspect(conn).has_table("documents"):
            _adopt_pre_alembic_store(conn)
        elif current is not None and not set(current.split(",")) <= _known_revisions():
            raise StoreError(f"this store was upgraded by a newer sculptrag (revision {current}); upgrade sculptrag "
                             f"(this one knows revisions up to {head})")
        if current != head:
            command.upgrade(alembic_config(conn), "head")
            log.info("store schema upgraded from %s to %s", current or "nothing", head)
        conn.commit()
    return head


def _adopt_pre_alembic_store(conn) -> None:
    """A store made before Alembic (its tables, no alembic_version) is brought to the baseline revision in
    place and stamped at it; Alembic then upgrades it like any other store.

    Such a store may lack what was added to the schema over time, always as nullable columns (chunk_digest,
    entity, period, dated, author, chunks.context, ...) or whole tables (quarantine_groups, api_keys): the
    columns are added, the tables created, as the baseline revision defines them."""
    baseline = _scripts().get_revision(BASELINE).module.baseline_metadata()
    insp = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in baseline.sorted_tables:
        if not insp.has_table(table.name):
            continue  # created below, with its indexes
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable:
                raise StoreError(f"the store's table {table.name} lacks the column {col.name}, which cannot be "
                                 "added in place; ingest into a new --store")
            ddl = col.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} {ddl}"))
            log.info("store upgraded: %s.%s added", table.name, col.name)
    baseline.create_all(conn, checkfirst=True)  # the tables it lacks
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(_scripts(), BASELINE)
    log.info("store made before Alembic brought to the baseline schema (revision %s)", BASELINE)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
