"""Retrieval latency at 10k and 100k chunks: flat vs IVF, all-readable vs access-filtered, per mode.

    python benchmarks/retrieval_latency.py [--sizes 10000,100000] [--queries 200] [--work DIR]

Synthetic but shaped like the real thing: 384-d unit vectors drawn around 1,000 topic centres (so IVF
has clusters to find, as with real embeddings), 60-word chunk texts drawn from a Zipf vocabulary of
20,000 words, 10 chunks per document, each document in one of 10 groups. Queries: a noisy copy of a
stored vector plus 6 words of its text (so BM25 and dense both have something to find). The query is
given as a vector, so the times below exclude encoding the question; that cost is measured once,
separately, with the real all-MiniLM-L6-v2 embedder.

Rows: index (flat = IndexFlatIP, exact; ivf = IVF with float16 lists, nlist ~ 4*sqrt(n), nprobe nlist/8), readable
(all: the caller reads every document, no selector; 10%: one group of ten, an IDSelector in FAISS and a
mask in BM25; "10% cold" disables the per-caller readable-set cache), mode. recall@10: overlap of the
dense top 10 with the exact flat top 10 under the same access filter. Stores are built once under
--work (default /tmp/sculptrag-latency) and reused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from pipeline.config import RetrievalSettings, Settings  # noqa: E402
from pipeline.retrieve import Retriever  # noqa: E402
from pipeline.schema import ChunkRow, Document, DocumentGroup  # noqa: E402
from pipeline.store import Store  # noqa: E402

DIM, PER_DOC, GROUPS, WORDS, TOPICS = 384, 10, 10, 60, 1000


class _NoEmbedder:
    """Queries arrive as vectors here; a text query would be a benchmark bug."""

    model_name = "synthetic"
    dim = DIM

    def warm_up(self) -> None:
        pass

    def encode(self, texts):
        raise RuntimeError("the latency benchmark passes query vectors")


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    vecs = centres[rng.integers(0, TOPICS, n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    words = vocab[np.minimum(rng.zipf(1.2, (n, WORDS)) - 1, len(vocab) - 1)]
    return vecs, [" ".join(row) for row in words], rng.integers(0, GROUPS, n // PER_DOC)


def build(path: Path, n: int, flat_index_max: int) -> Store:
    """A store with n synthetic chunks (reused when it exists), indexes flushed for `flat_index_max`."""
    settings = Settings(store_dir=path, flat_index_max=flat_index_max, retrieval=RetrievalSettings(mmap_min_bytes=1 << 62))
    store = Store(settings)
    if store.counts()["chunks"] != n:
        vecs, texts, groups = synthetic(n)
        with store.writer(), store.transaction() as tx:
            s = tx.session
            s.execute(insert(Document), [
                dict(id=d + 1, uid=f"d{d}", source_uri=f"file:///synthetic/{d}.txt", title=f"doc {d}", media_type="text/plain",
                     file_type="txt", size=1, mtime=0.0, sha256=f"{d:064x}", n_chunks=PER_DOC) for d in range(n // PER_DOC)])
            s.execute(insert(DocumentGroup), [dict(document_id=d + 1, group=f"g{g}") for d, g in enumerate(groups)])
            s.execute(insert(ChunkRow), [
                dict(uid=f"c{i}", document_id=i // PER_DOC + 1, position=i % PER_DOC, text=texts[i], section="", page=None,
                     page_end=None, token_count=WORDS, kinds="NarrativeText", table_html=None, embedding=vecs[i].tobytes())
                for i in range(n)])
        store = Store(settings)  # a fresh handle: its indexes are built from the SQL just written
        store.set_state(embedding_model="synthetic", embedding_dim=str(DIM))
    with store.writer():
        store.flush_indexes()
    return store


def percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=20, method="inclusive")
    return statistics.median(ms), q[18]


def run(retriever: Retriever, queries, groups, mode: str) -> tuple[list[float], list[list[int]]]:
    times, results = [], []
    for text, vec in queries:
        t = time.perf_counter()
        hits = retriever.search(text, groups=groups, k=10, mode=mode, dedupe=False, query_vector=vec)
        times.append((time.perf_counter() - t) * 1000)
        results.append([h.chunk_id for h in hits])
    return times, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/sculptrag-latency"))
    ap.add_argument("--no-encoder", action="store_true", help="skip timing the real query encoder")
    args = ap.parse_args()

    table = Table(title="Retrieval latency (ms per query, k=10, query vector given)")
    for col in ("chunks", "index", "readable", "mode", "p50 ms", "p95 ms", "dense recall@10 vs flat"):
        table.add_column(col, justify="right" if col not in ("index", "readable", "mode") else "left")
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        flat_store = build(args.work / f"flat-{n}", n, flat_index_max=n)
        ivf_store = build(args.work / f"ivf-{n}", n, flat_index_max=max(1, n // 10))
        print(f"{n} chunks: stores ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        vecs, texts, _ = synthetic(n)
        rng = np.random.default_rng(1)
        picks = rng.choice(n, args.queries, replace=False)
        queries = [(" ".join(texts[i].split()[:6]), vecs[i] + 0.05 * rng.standard_normal(DIM).astype(np.float32)) for i in picks]
        exact = {}
        for index, store in (("flat", flat_store), ("ivf", ivf_store)):
            everyone = [f"g{g}" for g in range(GROUPS)]
            for readable, groups, cache in (("all", everyone, 64), ("10%", ["g3"], 64), ("10% cold", ["g3"], 0)):
                r = Retriever(store, _NoEmbedder(), acl_cache_size=cache)
                r.warm_up()
                for mode in ("dense", "lexical", "hybrid"):
                    if mode == "lexical" and index == "ivf" or cache == 0 and mode != "hybrid":
                        continue  # BM25 does not depend on the FAISS index; cold ACL: one row is enough
                    run(r, queries[:10], groups, mode)  # warm caches and allocators
                    times, results = run(r, queries, groups, mode)
                    recall = ""
                    if mode == "dense":
                        exact.setdefault(readable, results)
                        overlap = [len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(exact[readable], results)]
                        recall = f"{np.mean(overlap):.3f}"
                    p50, p95 = percentiles(times)
                    table.add_row(f"{n:,}", index, readable, mode, f"{p50:.1f}", f"{p95:.1f}", recall)
        del flat_store, ivf_store
    console = Console(width=150)
    console.print(table)
    if not args.no_encoder:
        from pipeline.embedding import SentenceTransformerEmbedder

        emb = SentenceTransformerEmbedder()
        emb.warm_up()
        qs = ["How do I configure the firewall on a Debian server?"] * 30
        emb.encode(qs[:3])
        times = []
        for q in qs:
            t = time.perf_counter()
            emb.encode([q])
            times.append((time.perf_counter() - t) * 1000)
        p50, p95 = percentiles(times)
        console.print(f"query encoding (all-MiniLM-L6-v2, CPU, one 11-word question): p50 {p50:.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
