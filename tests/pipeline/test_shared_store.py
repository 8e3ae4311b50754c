"""Several processes, one PostgreSQL store (a real server): each keeps its own folder of derived indexes.

A replica started on an empty folder opens the store from SQL alone; a document ingested or deleted through
one process is answerable (or gone) through another that is already running, without a restart; two ingests
started at once, with overlapping files, lose and duplicate nothing (one waits for the other's lock).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Store
from pipeline.config import IngestSettings, Settings
from pipeline.retrieve import Retriever

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

FACTS = {
    "lighthouse.txt": "The Tarvik lighthouse keeper logs the fog horn every night at 22:00.\n",
    "orchard.txt": "The Moravec orchard harvests its quince trees in the second week of October.\n",
    "foundry.txt": "The Ellsworth foundry casts bronze bells for the harbour chapel each spring.\n",
    "glacier.txt": "The Skalvik glacier retreated forty metres between the two surveys.\n",
}


def _cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCULPTRAG_DATABASE_URL=url, SCULPTRAG_INGEST__PARSE_WORKERS="0", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _write(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(FACTS[name])
    return folder


def _sources(retriever: Retriever, question: str) -> list[str]:
    return [Path(h.document.source_uri).name for h in retriever.search(question, groups=["public"], k=3)]


def test_a_replica_on_an_empty_folder_sees_other_processes_ingests_and_deletes(tmp_path: Path, postgres_server):
    url = postgres_server.database()
    docs = _write(tmp_path / "docs", ["lighthouse.txt", "orchard.txt"])
    replica_dir = tmp_path / "replica"  # never created by hand: the replica has only the URL

    before = _cli("status", "--store", str(replica_dir), url=url)
    assert before.returncode == 2 and "no store" in before.stderr

    done = _cli("ingest", str(docs), "--store", str(tmp_path / "writer"), url=url)
    assert done.returncode == 0, done.stderr
    status = _cli("status", "--store", str(replica_dir), url=url)
    assert status.returncode == 0, status.stderr
    assert status.stdout.rstrip().splitlines()[-2].rstrip(" │").endswith("yes")  # consistent: indexes derived from SQL

    replica = Retriever(Store(Settings(store_dir=replica_dir, database_url=url)))
    assert _sources(replica, "When does the lighthouse keeper log the fog horn?")[0] == "lighthouse.txt"
    assert "foundry.txt" not in _sources(replica, "Who casts bronze bells for the harbour chapel?")

    # another process ingests a file: the running replica answers from it at its next query
    _write(docs, ["foundry.txt"])
    assert _cli("ingest", str(docs), "--store", str(tmp_path / "writer"), url=url).returncode == 0
    assert _sources(replica, "Who casts bronze bells for the harbour chapel?")[0] == "foundry.txt"

    # and deletes one: gone from the running replica
    (docs / "foundry.txt").unlink()
    pruned = _cli("ingest", str(docs), "--prune", "--store", str(tmp_path / "writer"), url=url)
    assert pruned.returncode == 0, pruned.stderr
    assert "foundry.txt" not in _sources(replica, "Who casts bronze bells for the harbour chapel?")
    assert replica.store.check()["consistent"]


def test_two_concurrent_ingests_lose_and_duplicate_nothing(tmp_path: Path, postgres_server):
    url = postgres_server.database()
    first = _write(tmp_path / "first", ["lighthouse.txt", "orchard.txt", "foundry.txt"])
    second = _write(tmp_path / "second", ["orchard.txt", "foundry.txt", "glacier.txt"])  # two the same texts
    env = dict(os.environ, SCULPTRAG_DATABASE_URL=url, SCULPTRAG_INGEST__PARSE_WORKERS="0", HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", str(folder), "--store", str(tmp_path / name)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for folder, name in ((first, "a"), (second, "b"))]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    store = Store(Settings(store_dir=tmp_path / "c", database_url=url, ingest=IngestSettings(parse_workers=0)))
    docs = store.documents()
    uris = sorted(d.source_uri for d in docs)
    assert len(uris) == len(set(uris))
    # 6 files, 4 distinct texts: the later copy of an identical text is rejected as a duplicate, never stored twice
    texts = [c.text for c in store.chunks(store.all_vectors()[0])]
    for fact in FACTS.values():
        assert sum(fact.strip() in t for t in texts) == 1, fact
    assert store.check()["consistent"]
    assert store.counts()["documents"] == 4
