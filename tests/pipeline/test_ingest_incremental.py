"""Ingestion into a store: incremental and idempotent, prune, groups, consistency."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import Store, ingest
from pipeline.schema import Document

BOTH_DATABASES = pytest.mark.parametrize("store_database", ["sqlite", "postgres"], indirect=True)


@BOTH_DATABASES
def test_ingest_reingest_change_delete(small_docs: Path, tmp_path: Path, embedder, make_settings):
    settings = make_settings()
    first = ingest([small_docs], settings, embedder=embedder)
    assert first.rejected == 0, first.rejections()
    assert first.ingested == len(list(small_docs.iterdir())) == first.files_seen
    assert first.chunks_added > 0 and first.embedded_chunks == first.chunks_added
    store = Store(settings)
    assert store.check()["consistent"]
    assert store.counts()["chunks"] == first.chunks_added

    again = ingest([small_docs], settings, embedder=embedder)
    assert (again.parsed, again.embedded_chunks, again.unchanged) == (0, 0, first.ingested)
    assert again.ingested == again.updated == again.removed == 0

    changed = small_docs / "fake-text.txt"
    changed.write_text(changed.read_text() + "\nA brand new paragraph about lighthouse keepers in Norway.\n")
    (small_docs / "fake.odt").unlink()
    third = ingest([small_docs], settings, embedder=embedder, prune=True)
    assert third.parsed == 1 and third.updated == 1 and third.removed == 1
    assert [o.path for o in third.outcomes if o.status == "updated"] == [str(changed)]
    assert [o.path for o in third.outcomes if o.status == "removed"] == [(small_docs / "fake.odt").as_uri()]
    store = Store(settings)
    check = store.check()
    assert check["consistent"], check
    with store.sessions() as s:
        uris = {d.source_uri for d in s.query(Document)}
    assert (small_docs / "fake.odt").as_uri() not in uris
    texts = [c.text for c in store.chunks(store.all_vectors()[0])]
    assert any("lighthouse keepers" in t for t in texts)


@BOTH_DATABASES
def test_without_prune_nothing_is_deleted(small_docs: Path, tmp_path: Path, embedder, make_settings):
    settings = make_settings()
    ingest([small_docs / "README.md", small_docs / "fake.docx"], settings, embedder=embedder)
    (small_docs / "fake.docx").unlink()
    report = ingest([small_docs], settings, embedder=embedder)
    assert report.removed == 0
    assert Store(settings).counts()["documents"] == len(list(small_docs.iterdir())) + 1


@BOTH_DATABASES
def test_groups_are_kept_on_reingest_and_changed_only_when_asked(small_docs: Path, tmp_path: Path, embedder, make_settings):
    settings = make_settings()
    ingest([small_docs / "README.md"], settings, groups=["hr", "legal"], embedder=embedder)
    store = Store(settings)
    assert store.documents()[0].group_names == ["hr", "legal"]
    report = ingest([small_docs / "README.md"], settings, groups=["finance"], embedder=embedder)
    assert report.parsed == 0 and report.updated == 0 and report.kept_groups == 1  # said once, not done
    assert Store(settings).documents()[0].group_names == ["hr", "legal"]
    report = ingest([small_docs / "README.md"], settings, groups=["finance"], set_groups=True, embedder=embedder)
    assert report.parsed == 0 and report.updated == 1
    assert Store(settings).documents()[0].group_names == ["finance"]


@BOTH_DATABASES
def test_duplicate_content_is_rejected(small_docs: Path, tmp_path: Path, embedder, make_settings):
    settings = make_settings()
    copy = small_docs / "copy-of-readme.md"
    copy.write_bytes((small_docs / "README.md").read_bytes())
    report = ingest([small_docs / "README.md", copy], settings, embedder=embedder)
    assert report.ingested == 1 and report.rejected == 1
    (rej,) = report.rejections()
    assert rej.reason == "duplicate content" and "README.md" in rej.detail


@BOTH_DATABASES
def test_store_reopens_from_sql_when_index_files_are_missing(small_docs: Path, tmp_path: Path, embedder, make_settings):
    settings = make_settings()
    ingest([small_docs / "README.md", small_docs / "fake.docx"], settings, embedder=embedder)
    for f in (tmp_path / "store").glob("vectors-*.faiss"):
        f.unlink()
    store = Store(settings)
    check = store.check()
    assert check["consistent"] and check["faiss_vectors"] == store.counts()["chunks"] > 0
    q = embedder.encode(["README"])  # the rebuilt index answers queries
    scores, ids = store.vector_index().search(q, 3)
    assert set(ids[0][ids[0] >= 0]) <= set(store.all_vectors()[0])


def test_ingestor_keeps_parse_workers_warm_across_runs_and_stores(small_docs: Path, tmp_path: Path, embedder):
    from pipeline.config import Settings, default_parse_workers
    from pipeline.ingestion import Ingestor

    with Ingestor(Settings(store_dir=tmp_path / "a"), embedder=embedder) as ingestor:
        first = ingestor.ingest([small_docs / "README.md"])
        workers = [slot["proc"].pid for slot in ingestor._pool._slots]
        assert len(workers) == 1  # one file: one worker
        other = Store(Settings(store_dir=tmp_path / "b"))
        second = ingestor.ingest([small_docs / "fake.docx", small_docs / "fake-text.txt"], store=other)
        grown = [slot["proc"].pid for slot in ingestor._pool._slots]
        assert grown[:1] == workers and len(grown) == min(2, default_parse_workers())  # warm one kept
        third = ingestor.ingest([small_docs / "fake-text.txt"], store=Store(Settings(store_dir=tmp_path / "c")))
        assert [slot["proc"].pid for slot in ingestor._pool._slots] == grown  # none stopped or restarted
    assert first.ingested == 1 and second.ingested == 2 and third.ingested == 1
    assert Store(Settings(store_dir=tmp_path / "a")).counts()["documents"] == 1
    assert other.counts()["documents"] == 2 and other.check()["consistent"]


@pytest.mark.parametrize("cores, workers", [(1, 1), (2, 2), (3, 3), (64, 4)])
def test_files_are_parsed_by_one_worker_per_core_at_most_four(monkeypatch, cores, workers):
    import os

    from pipeline.config import MAX_PARSE_WORKERS, IngestSettings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert IngestSettings().parse_workers == workers <= MAX_PARSE_WORKERS
    assert IngestSettings(parse_workers=0).parse_workers == 0  # still settable: 0 parses in the main process
