"""Ingestion on a real local Ray cluster (tests/conftest.py's `ray_cluster`, 2 CPUs): the same store as a local
ingest, incremental, and a Ray worker killed mid-run costs nothing (pipeline/ray_ingest.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pipeline import Store, ingest, ray_ingest
from pipeline.config import EmbeddingSettings, Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TORCH = EmbeddingSettings(backend="torch")  # the same embedder as the `embedder` fixture the local ingests use


def _settings(folder: Path) -> Settings:
    return Settings(store_dir=folder, embedding=TORCH)


def _contents(settings: Settings) -> tuple[dict, dict, dict]:
    """(documents by uri, chunks by uid with their vector, quarantine reasons by uri) read straight from SQL."""
    db = sqlite3.connect(Path(settings.store_dir) / "sculptrag.db")
    docs = {r[0]: r[1:] for r in db.execute(
        "select source_uri, title, sha256, chunk_digest, file_type, pages, entity, period, n_chunks from documents")}
    chunks = {r[0]: (r[1:-1], np.frombuffer(r[-1], np.float32)) for r in db.execute(
        "select c.uid, d.source_uri, c.position, c.text, c.section, c.page, c.kinds, c.context, c.table_html, c.embedding "
        "from chunks c join documents d on d.id = c.document_id")}
    quarantine = dict(db.execute("select source_uri, reason from quarantine"))
    db.close()
    return docs, chunks, quarantine


def _ray_workers_running_ingest() -> list[psutil.Process]:
    """Ray worker processes executing an ingest task now (Ray titles them after the task's function)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].startswith("ray::ingest_file"):
            found.append(p)
    return found


def test_ray_ingest_equals_a_local_ingest_and_is_incremental(small_docs: Path, tmp_path: Path, embedder, ray_cluster):
    (small_docs / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    (small_docs / "empty.txt").write_text("")
    local, remote = _settings(tmp_path / "local"), _settings(tmp_path / "ray")
    a = ingest([small_docs], local, embedder=embedder)
    b = ingest([small_docs], remote, embedder=embedder, ray="auto")

    assert b.rejected == a.rejected == 2 and b.ingested == a.ingested == a.files_seen - 2
    assert {(o.path, o.status, o.reason) for o in b.outcomes} == {(o.path, o.status, o.reason) for o in a.outcomes}
    docs_a, chunks_a, quarantine_a = _contents(local)
    docs_b, chunks_b, quarantine_b = _contents(remote)
    assert docs_b == docs_a and quarantine_b == quarantine_a
    assert set(chunks_b) == set(chunks_a)  # the same chunk ids...
    for uid, (fields, vector) in chunks_a.items():
        assert chunks_b[uid][0] == fields  # ... texts, sections, pages, tables
        assert float(vector @ chunks_b[uid][1]) > 0.99999  # and vectors, to float rounding
    assert Store(remote).check()["consistent"]

    again = ingest([small_docs], remote, embedder=embedder, ray="auto")  # nothing shipped
    assert (again.parsed, again.embedded_chunks, again.unchanged) == (0, 0, a.files_seen)

    changed = small_docs / "fake-text.txt"
    changed.write_text(changed.read_text() + "\nLighthouse keepers in Norway kept logs of every passing ship.\n")
    third = ingest([small_docs], remote, embedder=embedder, ray="auto")
    assert third.parsed == 1 and third.updated == 1
    texts = [c.text for c in Store(remote).chunks(Store(remote).all_vectors()[0])]
    assert any("Lighthouse keepers" in t for t in texts)


def _kill_a_running_task(killed: list[int]):
    """A progress callback that SIGKILLs one Ray worker running an ingest task once the first result is in."""

    def progress(done: int, total: int, path: str) -> None:
        deadline = time.monotonic() + 20
        while not killed and time.monotonic() < deadline:
            running = _ray_workers_running_ingest()
            if running:
                running[0].kill()
                killed.append(running[0].pid)
                return
            time.sleep(0.05)

    return progress


def test_a_ray_worker_killed_mid_run_is_retried_and_the_store_stays_consistent(shared_data: Path, tmp_path: Path, embedder, ray_cluster):
    docs = tmp_path / "handbook"
    docs.mkdir()
    for name in sorted(p.name for p in (shared_data / "docs" / "debian-handbook-en").glob("*.html"))[:14]:
        shutil.copy(shared_data / "docs" / "debian-handbook-en" / name, docs / name)
    settings = _settings(tmp_path / "store")
    killed: list[int] = []
    report = ingest([docs], settings, embedder=embedder, ray="auto", progress=_kill_a_running_task(killed))
    assert killed, "no Ray worker was running an ingest task to kill"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert report.rejected == 0, report.rejections()  # the killed worker's task ran again elsewhere
    assert report.ingested == 14
    store = Store(settings)
    assert store.check()["consistent"] and store.counts()["documents"] == 14
    again = ingest([docs], settings, embedder=embedder, ray="auto")
    assert (again.parsed, again.unchanged) == (0, 14)


def test_a_task_that_fails_every_try_is_reported_not_quarantined_and_the_next_run_does_it(
        small_docs: Path, tmp_path: Path, embedder, ray_cluster, monkeypatch):
    monkeypatch.setattr(ray_ingest, "MAX_RETRIES", 0)  # the first death is the last
    settings = _settings(tmp_path / "store")
    killed: list[int] = []
    report = ingest([small_docs], settings, embedder=embedder, ray="auto", progress=_kill_a_running_task(killed))
    assert killed
    failed = [o for o in report.rejections() if "Ray task failed" in o.detail]
    assert len(failed) == 1 and failed[0].reason == "parse error" and "next run tries again" in failed[0].detail
    assert Store(settings).quarantined() == []  # not kept as a rejection of these bytes
    assert Store(settings).check()["consistent"]
    monkeypatch.undo()
    again = ingest([small_docs], settings, embedder=embedder, ray="auto")
    assert again.parsed == 1 and again.ingested == 1 and again.rejected == 0
    assert Store(settings).counts()["documents"] == report.files_seen


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCULPTRAG_EMBEDDING__BACKEND="torch")
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_cli_starts_ray_for_the_run_and_refuses_an_address_nothing_answers(small_docs: Path, tmp_path: Path):
    store = tmp_path / "store"
    done = _cli("ingest", str(small_docs / "fake-text.txt"), str(small_docs / "README.md"), "--store", str(store),
                "--ray", "local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Store(Settings(store_dir=store)).counts()["documents"] == 2 and Store(Settings(store_dir=store)).check()["consistent"]

    t = time.monotonic()
    refused = _cli("ingest", str(small_docs), "--store", str(tmp_path / "other"), "--ray", "127.0.0.1:9", cwd=tmp_path)
    assert refused.returncode == 2 and "no Ray cluster answers at 127.0.0.1:9" in refused.stderr
    assert time.monotonic() - t < 60  # at once, not after Ray's own minutes of retrying
    bad = _cli("ingest", str(small_docs), "--store", str(tmp_path / "other"), "--ray", "somewhere", cwd=tmp_path)
    assert bad.returncode == 2 and "--ray takes local, auto or HOST:PORT" in bad.stderr
