"""Crash safety: an ingest killed with SIGKILL at several points leaves a store that opens and agrees
with itself (SQL rows == FAISS vectors), and a re-run completes the job; on SQLite and on a real PostgreSQL
server (where the killed writer's advisory lock goes with its connection)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import Store
from pipeline.config import IngestSettings, Settings

pytestmark = pytest.mark.slow

HANDBOOK_FILES = 14


def _generation(settings: Settings) -> int:
    """The store's generation, read without taking a lock (0 before the store exists)."""
    query = "select value from state where key='generation'"
    try:
        if settings.database_url:
            import psycopg

            with psycopg.connect(settings.database_url.replace("+psycopg", ""), connect_timeout=2) as con:
                row = con.execute(query).fetchone()
        else:
            db = settings.store_dir / "sculptrag.db"
            if not db.exists():
                return 0
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
                row = con.execute(query).fetchone()
        return int(row[0]) if row else 0
    except (sqlite3.Error, Exception):  # noqa: BLE001 - no table yet (psycopg.errors.UndefinedTable)
        return 0


def _start_ingest(corpus: Path, store: Path, database_url: str | None) -> subprocess.Popen:
    env = dict(os.environ, SCULPTRAG_INGEST__COMMIT_EVERY_CHUNKS="24", HF_HUB_OFFLINE="1")
    if database_url:
        env["SCULPTRAG_DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", str(corpus), "--store", str(store)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _kill_when(proc: subprocess.Popen, settings: Settings, generation: int | None, seconds: float | None) -> bool:
    """SIGKILL the whole ingest (workers too) once the store reaches `generation` or after `seconds`."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 600:
        if (generation is not None and _generation(settings) >= generation) or (seconds is not None and time.monotonic() - start >= seconds):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("store_database", ["sqlite", "postgres"], indirect=True)
def test_sigkill_at_several_points_then_rerun_completes(shared_data: Path, tmp_path: Path, store_database):
    corpus = tmp_path / "handbook"
    corpus.mkdir()
    for f in sorted((shared_data / "docs" / "debian-handbook-en").glob("sect.*.html"))[:HANDBOOK_FILES]:
        shutil.copy(f, corpus / f.name)
    store_dir = tmp_path / "store"
    settings = Settings(store_dir=store_dir, database_url=store_database, ingest=IngestSettings(commit_every_chunks=24))

    # kill points: before any commit (startup), after the first commits, later in the run
    killed = []
    for generation, seconds in [(None, 2.0), (2, None), (4, None), (7, None)]:
        proc = _start_ingest(corpus, store_dir, store_database)
        killed.append(_kill_when(proc, settings, generation, seconds))
        if not _generation(settings):
            continue
        store = Store(settings)  # opens after a kill
        check = store.check()
        assert check["consistent"], (generation, check)
        with store.sessions() as s:
            for doc in store.documents():  # every stored document is complete: all its chunks are there
                assert len(store.chunks([c for c in _chunk_ids(s, doc.id)])) == doc.n_chunks
    assert sum(killed) >= 3, "the ingest finished before most kill points; make the corpus bigger"

    proc = _start_ingest(corpus, store_dir, store_database)
    assert proc.wait(timeout=900) == 0
    store = Store(settings)
    check = store.check()
    assert check["consistent"]
    assert store.counts()["documents"] == HANDBOOK_FILES
    assert not list(store_dir.glob("*.tmp*"))
    assert [p.name for p in store_dir.glob("vectors-*.faiss")] == [f"vectors-{store.generation}.faiss"]


def _chunk_ids(session, doc_id: int) -> list[int]:
    from sqlalchemy import select

    from pipeline.schema import ChunkRow

    return list(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc_id)))
