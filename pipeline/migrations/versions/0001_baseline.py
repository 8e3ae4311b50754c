"""baseline: the store's tables as sculptrag had them when Alembic took over the schema

Revision ID: 0001
Revises:
Create Date: 2026-12-01

A fresh database gets all of them. A store made before Alembic (its tables, no alembic_version) is brought
to exactly this schema by pipeline.schema.upgrade_store (the columns and tables added over time, from
`baseline_metadata`) and stamped 0001. This file is a frozen copy: later schema changes are new revisions,
never edits here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def baseline_metadata() -> sa.MetaData:
    """The tables at this revision (as pipeline/schema.py's models defined them then)."""
    m = sa.MetaData()
    sa.Table(
        "documents", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(64), nullable=False, unique=True),
        sa.Column("source_uri", sa.String(2048), nullable=False, unique=True),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("file_type", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("pages", sa.Integer, nullable=True),
        sa.Column("n_chunks", sa.Integer, nullable=False),
        sa.Column("ingested_at", sa.DateTime, nullable=False),
        # added over time before Alembic (nullable): pipeline.schema._adopt_pre_alembic_store adds them
        sa.Column("chunk_digest", sa.String(32), nullable=True),
        sa.Column("entity", sa.String(512), nullable=True),
        sa.Column("period", sa.String(512), nullable=True),
        sa.Column("dated", sa.String(64), nullable=True),
        sa.Column("author", sa.String(512), nullable=True),
    )
    sa.Table(
        "document_groups", m,
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group", sa.String(128), primary_key=True, index=True),
    )
    sa.Table(
        "chunks", m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(64), nullable=False, unique=True),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("section", sa.String(512), nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("page_end", sa.Integer, nullable=True),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("kinds", sa.String(256), nullable=False),
        sa.Column("table_html", sa.Text, nullable=True),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("context", sa.Text, nullable=True),  # added later (nullable)
        sqlite_autoincrement=True,  # chunk ids are never reused (the FAISS index is keyed by them)
    )
    sa.Table(
        "quarantine", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_uri", sa.String(2048), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("chunk_digest", sa.String(32), nullable=True),  # added later (nullable)
    )
    sa.Table(  # added later: a table of its own
        "quarantine_groups", m,
        sa.Column("quarantine_id", sa.Integer, sa.ForeignKey("quarantine.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group", sa.String(128), primary_key=True, index=True),
    )
    sa.Table(
        "state", m,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    sa.Table(  # added later: a table of its own
        "api_keys", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True, index=True),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("editor", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    return m


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=False)
