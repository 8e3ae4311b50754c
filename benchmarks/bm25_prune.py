"""BM25 at scale: every posting list read whole (exhaustive) against the pruned search (MaxScore), side by side.

    python benchmarks/bm25_prune.py [--sizes 100000,1000000] [--queries 200] [--k 10,100]

The chunk texts are benchmarks/retrieval_latency.py's (60 words from a Zipf vocabulary of 20,000 words; its
most common words are in nearly every chunk, harsher than real text, whose most common words are stop
words and dropped). Queries: 6 words drawn from a random chunk's text. Each query runs both ways,
alternately, in one process; the table gives p50 / p95 ms and how many results were the same (ids and
scores, to the bit). readable: all chunks, or a random 10% (the access mask of a caller who reads a tenth).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import lexical  # noqa: E402
from pipeline.lexical import BM25Index  # noqa: E402


def ms(values: list[float]) -> str:
    values = sorted(values)
    return f"{1000 * statistics.median(values):.1f} / {1000 * values[int(0.95 * (len(values) - 1))]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", default="10,100")
    args = ap.parse_args()
    table = Table(title="BM25 search, ms p50 / p95 (one thread)")
    for c in ("chunks", "readable", "k", "exhaustive", "pruned", "p50 ratio", "same results"):
        table.add_column(c, justify="right")
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    for n in map(int, args.sizes.split(",")):
        texts = [" ".join(row) for row in vocab[np.minimum(rng.zipf(1.2, (n, 60)) - 1, len(vocab) - 1)]]
        t = time.perf_counter()
        index = BM25Index.build(np.arange(n), texts)
        print(f"{n:,} chunks indexed in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        queries = [" ".join(rng.choice(texts[i].split(), 6)) for i in rng.integers(0, n, args.queries)]
        del texts
        for readable, allowed in (("all", None), ("10%", rng.random(n) < 0.1)):
            for k in map(int, args.k.split(",")):
                times: dict[str, list[float]] = {"exhaustive": [], "pruned": []}
                same = 0
                for q in queries:
                    found = {}
                    for way, limit in (("exhaustive", 1 << 62), ("pruned", lexical.PRUNE_POSTINGS)):
                        saved, lexical.PRUNE_POSTINGS = lexical.PRUNE_POSTINGS, limit
                        t = time.perf_counter()
                        found[way] = index.search(q, k, allowed)
                        times[way].append(time.perf_counter() - t)
                        lexical.PRUNE_POSTINGS = saved
                    a, b = found["exhaustive"], found["pruned"]
                    same += a[1].tolist() == b[1].tolist() and np.array_equal(a[0], b[0])
                ratio = statistics.median(times["exhaustive"]) / statistics.median(times["pruned"])
                table.add_row(f"{n:,}", readable, str(k), ms(times["exhaustive"]), ms(times["pruned"]),
                              f"{ratio:.1f}x", f"{same} / {len(queries)}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
