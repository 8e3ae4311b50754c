"""IVF recall against exact search on real embeddings, by the share of lists probed and the index size.

    python benchmarks/ivf_recall.py [--work /tmp/sculptrag-ivf-recall]

Real text, not synthetic vectors (whose clusters make any probe share look perfect): the SciFact abstracts'
sentences (~45k) encoded by the configured embedder (all-MiniLM-L6-v2; ~8 minutes on 2 CPUs, cached under
--work), the 1,261 SciFact claims as queries. For the first quarter, half and all of the sentences, an IVF
index as the store builds it (pipeline.indexes.build_faiss_index: nlist ~ 4*sqrt(n)) is searched at nprobe
nlist/2 ... nlist/32; recall@10 is the overlap of its top 10 with the exact top 10. This chose the default
probe share (nlist/8 from 20k vectors up).

Each size is built twice on the same centres: with the float16 lists the store builds, and with float32
lists (IVFFlat, what stores held before); the last column is each one's median time a query at the default
probe share (one thread, single queries, the two alternating).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline.config import Settings  # noqa: E402
from pipeline.embedding import make_embedder  # noqa: E402
from pipeline.indexes import build_faiss_index  # noqa: E402

SCIFACT = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "qa" / "scifact"
SHARES = (2, 4, 8, 16, 32)


def sentences() -> tuple[list[str], list[str]]:
    """SciFact's abstract sentences (the column holds one quoted sentence per line) and its claims."""
    csv.field_size_limit(1 << 30)
    with open(SCIFACT / "corpus_train.csv", newline="") as f:
        texts = [line.strip()[1:-1] for row in csv.DictReader(f)
                 for line in row["abstract"].strip()[1:-1].split("\n") if len(line.strip()) > 22]
    with open(SCIFACT / "claims_train.csv", newline="") as f:
        claims = [row["claim"] for row in csv.DictReader(f)]
    return texts, claims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/sculptrag-ivf-recall"))
    args = ap.parse_args()
    import faiss

    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "scifact-vectors.npz"
    if not cache.exists():
        texts, claims = sentences()
        embedder = make_embedder(Settings().embedding)
        print(f"encoding {len(texts):,} sentences and {len(claims):,} claims", file=sys.stderr)
        np.savez(cache, docs=np.asarray(embedder.encode(texts), np.float32),
                 queries=np.asarray(embedder.encode(claims), np.float32))
    with np.load(cache) as z:
        docs, queries = z["docs"], z["queries"]
    table = Table(title="IVF recall@10 against exact search, SciFact sentences (real MiniLM vectors), claims as queries")
    for c in ("vectors", "lists", "nlist", *(f"nprobe nlist/{s}" for s in SHARES), "ms a query (default nprobe)"):
        table.add_column(c, justify="right")
    faiss.omp_set_num_threads(1)
    for n in (len(docs) // 4, len(docs) // 2, len(docs)):
        exact = faiss.IndexFlatIP(docs.shape[1])
        exact.add(docs[:n])
        _, truth = exact.search(queries, 10)
        half = build_faiss_index(np.arange(n, dtype=np.int64), docs[:n], docs.shape[1], flat_max=0)
        centres = faiss.IndexFlatIP(docs.shape[1])
        centres.add(half.quantizer.reconstruct_n(0, half.nlist))
        full = faiss.IndexIVFFlat(centres, docs.shape[1], half.nlist, faiss.METRIC_INNER_PRODUCT)
        full.add_with_ids(docs[:n], np.arange(n, dtype=np.int64))
        full.nprobe = half.nprobe
        times = {"float16": [], "float32": []}
        for q in queries[:400]:
            for kind, index in (("float16", half), ("float32", full)):
                t0 = time.perf_counter()
                index.search(q[None], 10)
                times[kind].append(1000 * (time.perf_counter() - t0))
        for kind, index in (("float16", half), ("float32", full)):
            default, cells = index.nprobe, []
            for share in SHARES:
                index.nprobe = max(1, index.nlist // share)
                _, found = index.search(queries, 10)
                recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
                cells.append(f"{recall:.3f} ({index.nprobe})")
            index.nprobe = default
            table.add_row(f"{n:,}", kind, str(index.nlist), *cells, f"{statistics.median(times[kind]):.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
