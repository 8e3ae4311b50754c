"""The store's schema is Alembic's: a fresh store is migrated to head and matches the models exactly; a store
made before Alembic is brought to the baseline, stamped and upgraded with its documents; processes opening a
fresh store at once all succeed; a store from a newer sculptrag is refused clearly. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, create_engine, inspect, text

from pipeline import Store, ingest
from pipeline.errors import StoreError
from pipeline.schema import HEAD, Base, head_revision, store_revision

ROOT = Path(__file__).resolve().parents[2]
BOTH_DATABASES = pytest.mark.parametrize("store_database", ["sqlite", "postgres"], indirect=True)
# what stores made before Alembic may lack: the nullable columns and the tables added over time
LATER_COLUMNS = [("chunks", "context"), ("documents", "chunk_digest"), ("documents", "entity"), ("documents", "period"),
                 ("documents", "dated"), ("documents", "author"), ("quarantine", "chunk_digest")]
LATER_TABLES = ["quarantine_groups", "api_keys"]


def schema_differences(engine, metadata: MetaData = Base.metadata) -> list:
    """What Alembic's autogenerate would put in a new revision: the database against the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def revision_of(engine) -> str | None:
    with engine.connect() as conn:
        return store_revision(conn)


@BOTH_DATABASES
def test_a_fresh_store_is_at_head_and_exactly_the_models(make_settings):
    store = Store(make_settings())
    assert revision_of(store.engine) == head_revision()
    assert schema_differences(store.engine) == []  # a model changed without a migration (or the reverse) fails here
    # and the comparison has teeth: a column the models gain without a revision is a difference
    drifted = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["documents"].append_column(Column("language", String(16), nullable=True))
    diff = schema_differences(store.engine, drifted)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "language")]


def test_the_head_constant_is_the_newest_revision():
    assert HEAD == head_revision(), "a new revision in pipeline/migrations/versions: set pipeline.schema.HEAD to it"


def test_opening_a_store_at_head_runs_no_migration(tmp_path, monkeypatch):
    from alembic import command

    from pipeline.config import Settings

    settings = Settings(store_dir=tmp_path / "store")
    Store(settings)

    def refuse(*a, **k):
        raise AssertionError("Alembic ran on a store already at head")

    monkeypatch.setattr(command, "upgrade", refuse)
    assert Store(settings).counts()["documents"] == 0


@BOTH_DATABASES
def test_a_store_made_before_alembic_is_brought_to_head_with_its_documents(tmp_path, make_settings, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("The northern depot shipped forty pallets of widgets in March. " * 20)
    (folder / "b.txt").write_text("Globex notes. Total net sales fell two percent at Globex in the same quarter.\n")
    settings = make_settings(parse_workers=0)
    ingest([folder], settings, embedder=embedder)
    store = Store(settings)
    docs, generation = [d.source_uri for d in store.documents()], store.generation
    engine = store.engine
    with engine.begin() as conn:  # what a store made before Alembic (and before the later columns) looks like
        conn.execute(text("DROP TABLE alembic_version"))
        for table in LATER_TABLES:
            conn.execute(text(f"DROP TABLE {table}"))
        for table, column in LATER_COLUMNS:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    engine.dispose()
    assert revision_of(engine) is None

    store = Store(settings)  # opens: gains the columns and tables, is stamped and upgraded
    assert revision_of(store.engine) == head_revision()
    assert schema_differences(store.engine) == []
    names = set(inspect(store.engine).get_table_names())
    assert set(LATER_TABLES) <= names
    assert [d.source_uri for d in store.documents()] == docs and store.generation == generation
    assert all(d.chunk_digest is None for d in store.documents())
    assert store.check()["consistent"]
    report = ingest([folder], settings, embedder=embedder)  # the new columns are filled by the next ingest
    assert report.updated == 2 and Store(settings).check()["consistent"]


@BOTH_DATABASES
def test_processes_opening_a_fresh_store_at_once_all_succeed(make_settings):
    settings = make_settings()
    url = settings.resolved_database_url
    settings.store_dir.mkdir(parents=True)
    start = time.time() + 3  # past the imports, so the processes migrate at the same moment
    script = ("import sys, time; from pipeline.schema import open_engine, store_revision\n"
              "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
              "engine = open_engine(sys.argv[1])\n"
              "with engine.connect() as conn: print(store_revision(conn))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == [head_revision()] * 3
    engine = create_engine(url)
    try:
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


@BOTH_DATABASES
def test_a_store_from_a_newer_sculptrag_is_refused_clearly(make_settings):
    settings = make_settings()
    engine = Store(settings).engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"upgraded by a newer sculptrag \(revision 9999\); upgrade sculptrag"):
        Store(settings)


def test_the_db_commands(tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli

    store = str(tmp_path / "store")
    run = CliRunner().invoke
    missing = run(cli, ["db", "current", "--store", store])
    assert missing.exit_code == 2 and "no store" in missing.output
    up = run(cli, ["db", "upgrade", "--store", store])
    assert up.exit_code == 0 and up.stdout.strip() == head_revision()
    now = run(cli, ["db", "current", "--store", store])
    assert now.exit_code == 0 and now.stdout.strip() == head_revision()
    db = tmp_path / "store" / "sculptrag.db"
    import sqlite3

    with sqlite3.connect(db) as con:  # a store made before Alembic: `db current` says so, `db upgrade` stamps it
        con.execute("DROP TABLE alembic_version")
    assert run(cli, ["db", "current", "--store", store]).stdout.strip() == "none"
    assert run(cli, ["db", "upgrade", "--store", store]).stdout.strip() == head_revision()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    newer = run(cli, ["db", "upgrade", "--store", store])
    assert newer.exit_code == 2 and "newer sculptrag (revision 9999)" in newer.output
