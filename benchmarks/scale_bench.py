"""Scale-out, side by side in one run: local vs Ray ingest, SQLite vs PostgreSQL, replica reload and memory.

    python benchmarks/scale_bench.py [--files N] [--queries 100] [--sizes 100000,1000000] [--parts ingest,query,reload,memory]

- ingest: the whole Debian handbook (128 HTML files; `--files N` takes the first N) ingested by
  `sculptrag ingest` in a fresh process, start-up included: on this machine (SQLite), on a Ray cluster that
  the command starts on this machine (`--ray local`, SQLite), and on this machine into PostgreSQL (a real
  server started from the system's binaries, as the tests do). Ray's overhead is its time over the local one.
- query: hybrid retrieval (question encoded, k=10) on the SQLite and the PostgreSQL stores just made, the
  same questions (`--queries`, the first words of random chunks); p50 / p95 ms.
- reload: a replica (its own empty folder, the writer's database) at 100k synthetic chunks, with a flat and
  with an IVF index: its first search (indexes built from SQL), a warm search, and the first search after
  another process commits (a document of 10 chunks added, one deleted): the replica notices the new
  generation at that search and brings its indexes up by the chunks that changed (pipeline/store.py).
- memory: resident memory of a fresh process serving hybrid searches from a store of N synthetic chunks
  (benchmarks/retrieval_latency.py's: 384-d vectors around 1,000 topic centres, 60-word Zipf texts; the
  default index: flat up to 100k chunks, IVF above), after loading and after `--queries` searches, peak
  (VmHWM) too; hybrid p50/p95 ms (query vector given), and dense recall@10 against exact search (queries
  are noisy copies of stored vectors, as in retrieval_latency.py).

Stores are built under --work (default /tmp/sculptrag-scale); synthetic stores are reused when present.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
HANDBOOK = DATA / "docs" / "debian-handbook-en"


def _ms(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), q[18]


def ingest_runs(work: Path, files: int | None, pg_url: str) -> tuple[list[tuple], dict[str, Path | str]]:
    from pipeline.config import Settings
    from pipeline.store import Store

    docs = work / "handbook"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    names = sorted(p.name for p in HANDBOOK.glob("*.html"))[:files]
    for name in names:
        shutil.copy(HANDBOOK / name, docs / name)
    runs = [("this machine", "SQLite", [], None), ("Ray, started by the command", "SQLite", ["--ray", "local"], None),
            ("this machine", "PostgreSQL", [], pg_url)]
    rows, stores = [], {}
    for where, db, extra, url in runs:
        store = work / f"store-{db.lower()}-{'ray' if extra else 'local'}"
        shutil.rmtree(store, ignore_errors=True)
        env = dict(os.environ, SCULPTRAG_STORE_DIR=str(store))
        if url:
            env["SCULPTRAG_DATABASE_URL"] = url
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(docs)], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if out.returncode:
            raise SystemExit(f"ingest ({where}, {db}) failed:\n{out.stderr[-3000:]}")
        chunks = Store(Settings(store_dir=store, database_url=url)).counts()["chunks"]
        rows.append((where, db, len(names), chunks, seconds))
        stores[db if not extra else "ray"] = store
        print(f"ingest {where} / {db}: {seconds:.1f} s, {chunks} chunks", file=sys.stderr)
    return rows, stores


def query_rows(stores: dict, pg_url: str, queries: int) -> list[tuple]:
    from pipeline.config import Settings
    from pipeline.embedding import make_embedder
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    embedder = make_embedder()
    rows = []
    questions: list[str] = []
    for db, url in (("SQLite", None), ("PostgreSQL", pg_url)):
        store = Store(Settings(store_dir=stores[db], database_url=url))
        if not questions:
            ids = list(store.all_vectors()[0])
            rng = random.Random(0)
            texts = [c.text for c in store.chunks(rng.sample(ids, min(queries, len(ids))))]
            questions = [" ".join(t.split()[:8]) for t in texts]
        r = Retriever(store, embedder)
        r.warm_up()
        for q in questions[:5]:
            r.search(q, groups=["public"], k=10)
        times = []
        for q in questions:
            t = time.perf_counter()
            r.search(q, groups=["public"], k=10)
            times.append((time.perf_counter() - t) * 1000)
        rows.append((db, len(questions), *_ms(times)))
    return rows


def reload_rows(work: Path, n: int, pg_server) -> list[tuple]:
    """A replica on an empty folder of its own: first search, warm search, first search after a new generation."""
    import numpy as np
    from sqlalchemy import insert, text

    from pipeline.config import RetrievalSettings, Settings
    from pipeline.retrieve import Retriever
    from pipeline.schema import ChunkRow, Document, DocumentGroup
    from pipeline.store import ChunkInput, Store
    from retrieval_latency import DIM, _NoEmbedder, build, synthetic

    writer = build(work / f"synthetic-{n}", n, flat_index_max=100_000)
    rows = []
    for db in ("SQLite", "PostgreSQL"):
        if db == "SQLite":  # a copy: the synthetic store stays as built, for the memory rows and the next run
            shutil.copy(work / f"synthetic-{n}" / "sculptrag.db", work / f"reload-{n}.db")
            url = f"sqlite:///{work / f'reload-{n}.db'}"
        else:
            url = pg_server.database()
            copy = Store(Settings(store_dir=work / f"pg-writer-{n}", database_url=url))
            with copy.writer(), copy.transaction() as tx:
                with writer.sessions() as s:
                    docs = [dict(id=d.id, uid=d.uid, source_uri=d.source_uri, title=d.title, media_type=d.media_type,
                                 file_type=d.file_type, size=1, mtime=0.0, sha256=d.sha256, n_chunks=d.n_chunks) for d in s.query(Document)]
                    groups = [dict(document_id=g.document_id, group=g.group) for g in s.query(DocumentGroup)]
                    chunks = [dict(uid=c.uid, document_id=c.document_id, position=c.position, text=c.text, section="",
                                   token_count=c.token_count, kinds=c.kinds, embedding=c.embedding) for c in s.query(ChunkRow)]
                tx.session.execute(insert(Document), docs)
                tx.session.execute(insert(DocumentGroup), groups)
                for i in range(0, len(chunks), 20_000):
                    tx.session.execute(insert(ChunkRow), chunks[i:i + 20_000])
                tx.session.execute(text("SELECT setval(pg_get_serial_sequence('documents', 'id'), (SELECT max(id) FROM documents))"))
            copy.set_state(embedding_model="synthetic", embedding_dim=str(DIM))
        for kind, flat_max in (("flat", 10 * n), ("IVF", n // 10)):
            folder = work / f"replica-{db.lower()}-{kind}-{n}"
            shutil.rmtree(folder, ignore_errors=True)
            replica = Store(Settings(store_dir=folder, database_url=url, flat_index_max=flat_max,
                                     retrieval=RetrievalSettings(mmap_min_bytes=1 << 62)))
            r = Retriever(replica, _NoEmbedder())
            vecs, texts, _ = synthetic(1000, seed=5)
            query = (" ".join(texts[0].split()[:6]), vecs[0])
            everyone = [f"g{g}" for g in range(10)]

            def search() -> float:
                t = time.perf_counter()
                r.search(query[0], groups=everyone, k=10, mode="hybrid", query_vector=query[1])
                return time.perf_counter() - t

            first = search()
            warm = statistics.median(search() for _ in range(20))
            other = Store(Settings(store_dir=work / f"other-{db.lower()}-{n}", database_url=url))
            tag = time.time_ns()
            with other.writer(), other.transaction() as tx:  # one document of 10 chunks in, one out
                doc = Document(uid=f"new{tag}", source_uri=f"file:///synthetic/new-{tag}.txt", title="new",
                               media_type="text/plain", file_type="txt", size=1, mtime=0.0, sha256=f"{tag:064x}")
                tx.put_document(doc, ["g0"], [ChunkInput(uid=f"nc{tag}-{i}", position=i, text=texts[1 + i], section="", page=None,
                                                         page_end=None, token_count=60, kinds="NarrativeText", table_html=None,
                                                         vector=np.asarray(vecs[1 + i], np.float32)) for i in range(10)])
                tx.delete_document(tx.session.query(Document).order_by(Document.id).first())
            after = search()
            rows.append((db, kind, n, first, warm, after))
    return rows


MEMORY_SCRIPT = r"""
import sys, time, json, statistics
sys.path[:0] = {paths!r}
import numpy as np
from pipeline.config import RetrievalSettings, Settings
from pipeline.retrieve import Retriever
from pipeline.store import Store
from retrieval_latency import _NoEmbedder

def status():
    out = {{}}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out

queries = np.load({queries!r})
texts = open({texts!r}).read().splitlines()
base = status()["VmRSS"]
t = time.perf_counter()
store = Store(Settings(store_dir={folder!r}, flat_index_max=100_000, retrieval=RetrievalSettings()))
r = Retriever(store, _NoEmbedder())
r.warm_up()
everyone = [f"g{{g}}" for g in range(10)]
r.search(texts[0], groups=everyone, k=10, mode="hybrid", query_vector=queries[0])
load_s = time.perf_counter() - t
loaded = status()["VmRSS"]
times, dense = [], []
for q, text in zip(queries, texts):
    t = time.perf_counter()
    r.search(text, groups=everyone, k=10, mode="hybrid", query_vector=q)
    times.append((time.perf_counter() - t) * 1000)
    dense.append([h.chunk_id for h in r.search(text, groups=everyone, k=10, mode="dense", dedupe=False, query_vector=q)])
s = status()
q = statistics.quantiles(times, n=20, method="inclusive")
print(json.dumps(dict(base=base, loaded=loaded, after=s["VmRSS"], peak=s["VmHWM"], load_s=load_s,
                      p50=statistics.median(times), p95=q[18], dense=dense)))
"""


def memory_rows(work: Path, sizes: list[int], queries: int) -> list[tuple]:
    """RSS, latency and dense recall@10 against exact search of a fresh process serving a store of n chunks."""
    import numpy as np

    from retrieval_latency import DIM, build, synthetic

    rows = []
    for n in sizes:
        folder = work / f"synthetic-{n}"
        t = time.perf_counter()
        build(folder, n, flat_index_max=100_000)
        print(f"{n} chunks: store ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        vecs, texts, _ = synthetic(n)  # what the store holds: chunk i is row id i + 1
        rng = np.random.default_rng(1)
        picks = rng.choice(n, queries, replace=False)
        qv = (vecs[picks] + 0.05 * rng.standard_normal((queries, DIM))).astype(np.float32)  # near a stored chunk
        exact = [list(np.argsort(-(vecs @ v), kind="stable")[:10] + 1) for v in qv]
        del vecs
        np.save(work / "queries.npy", qv)
        (work / "queries.txt").write_text("\n".join(" ".join(texts[i].split()[:6]) for i in picks))
        del texts
        script = MEMORY_SCRIPT.format(paths=[str(ROOT), str(ROOT / "benchmarks")], folder=str(folder),
                                      queries=str(work / "queries.npy"), texts=str(work / "queries.txt"))
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise SystemExit(f"memory run at {n} failed:\n{out.stderr[-3000:]}")
        m = json.loads(out.stdout.strip().splitlines()[-1])
        recall = float(np.mean([len(set(a) & set(map(int, b))) / 10 for a, b in zip(m["dense"], exact)]))
        db = folder / "sculptrag.db"
        rows.append((n, m["base"], m["loaded"], m["after"], m["peak"], m["load_s"], m["p50"], m["p95"], recall,
                     db.stat().st_size / 2**20))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=None, help="the first N handbook files (default: all)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--reload-size", type=int, default=100_000)
    ap.add_argument("--sizes", default="100000,1000000", help="store sizes for the memory rows")
    ap.add_argument("--parts", default="ingest,query,reload,memory")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sculptrag-scale"))
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    console = Console(width=160)
    from conftest import PostgresServer  # the tests' real PostgreSQL server (initdb into a temp folder)

    pg = PostgresServer.start() if parts & {"ingest", "query", "reload"} else None
    try:
        if parts & {"ingest", "query"}:
            pg_url = pg.database()
            rows, stores = ingest_runs(args.work, args.files, pg_url)
            t = Table(title="Ingest of the Debian handbook, `sculptrag ingest` in a fresh process (start-up included)")
            for c in ("where", "database", "files", "chunks", "seconds", "chunks/s", "vs local SQLite"):
                t.add_column(c, justify="left" if c in ("where", "database") else "right")
            base = rows[0][4]
            for where, db, files, chunks, s in rows:
                t.add_row(where, db, str(files), str(chunks), f"{s:.1f}", f"{chunks / s:.1f}", f"{s / base:.2f}x")
            console.print(t)
            if "query" in parts:
                t = Table(title="Hybrid retrieval on the handbook store (question encoded, k=10), ms")
                for c in ("database", "queries", "p50", "p95"):
                    t.add_column(c, justify="left" if c == "database" else "right")
                for db, n, p50, p95 in query_rows(stores, pg_url, args.queries):
                    t.add_row(db, str(n), f"{p50:.1f}", f"{p95:.1f}")
                console.print(t)
        if "reload" in parts:
            t = Table(title=f"A replica on an empty folder at {args.reload_size:,} synthetic chunks: hybrid search, s")
            for c in ("database", "index", "chunks", "first search (build from SQL)", "warm search",
                      "first search after a commit (10 chunks in, 10 out)"):
                t.add_column(c, justify="left" if c in ("database", "index") else "right")
            for db, kind, n, first, warm, after in reload_rows(args.work, args.reload_size, pg):
                t.add_row(db, kind, f"{n:,}", f"{first:.2f}", f"{warm:.3f}", f"{after:.2f}")
            console.print(t)
        if "memory" in parts:
            t = Table(title="A replica's memory: a fresh process serving hybrid searches from N synthetic chunks")
            for c in ("chunks", "RSS at start MB", "RSS loaded MB", "RSS after the searches MB", "peak MB", "load + first search s",
                      "hybrid p50 ms", "hybrid p95 ms", "dense recall@10 vs exact", "SQL file MB"):
                t.add_column(c, justify="right")
            for n, base, loaded, after, peak, load_s, p50, p95, recall, db_mb in memory_rows(
                    args.work, [int(s) for s in args.sizes.split(",")], args.queries):
                t.add_row(f"{n:,}", f"{base:.0f}", f"{loaded:.0f}", f"{after:.0f}", f"{peak:.0f}", f"{load_s:.1f}",
                          f"{p50:.1f}", f"{p95:.1f}", f"{recall:.3f}", f"{db_mb:.0f}")
            console.print(t)
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
