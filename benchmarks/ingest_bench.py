"""Ingest throughput, side by side on one corpus: raw model.encode vs the full pipeline vs re-ingest.

    python benchmarks/ingest_bench.py [--corpus DIR] [--files N] [--repeats R]

Prints one table: chunks/s and pages/s of the full ingest (discover, parse, validate, chunk, embed,
store), raw `encode` throughput on the very same chunk texts, their ratio (target >= 0.8: the pipeline
adds under 25% on top of embedding), and the unchanged re-ingest time as a share of the first ingest
(target < 5%). The full ingest is measured twice: a one-shot `ingest()` (parse workers start with it, as
in the CLI) and an `Ingestor` whose workers are already warm (as in a service; raw encode, too, is timed
with the model loaded). Medians over R repeats; each repeat uses fresh stores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from ingest.chunk import embed_text  # noqa: E402
from pipeline.embedding import SentenceTransformerEmbedder  # noqa: E402
from pipeline import Store, ingest  # noqa: E402
from pipeline.ingestion import Ingestor  # noqa: E402
from pipeline.config import Settings  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs" / "debian-handbook-en"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--files", type=int, default=20, help="first N files of the corpus (sorted by name)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sculptrag-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file())[: args.files]
    for f in files:
        shutil.copy(f, corpus / f.name)
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()

    full, warm, reingest, encode, chunks, pages = [], [], [], [], 0, 0
    ingestor = Ingestor(Settings(store_dir=work / "warm-up"), embedder=embedder)
    ingestor.ingest([files[0]])  # starts and warms the parse workers once, as a service holding an Ingestor would
    for r in range(args.repeats):
        settings = Settings(store_dir=work / f"store-{r}")
        report = ingest([corpus], settings, embedder=embedder)
        full.append(report.seconds)
        warm.append(ingestor.ingest([corpus], store=Store(Settings(store_dir=work / f"warm-{r}"))).seconds)
        chunks, pages = report.chunks_added, report.pages
        again = ingest([corpus], settings, embedder=embedder)
        assert again.parsed == 0 and again.embedded_chunks == 0
        reingest.append(again.seconds)
        store = Store(settings)
        rows = store.chunks(store.all_vectors()[0])
        texts = [embed_text(c.section, c.text, c.context or "") for c in rows]  # what ingest embedded
        t = time.perf_counter()
        embedder.encode(texts)
        encode.append(time.perf_counter() - t)

    med = statistics.median
    raw_cps = chunks / med(encode)
    full_cps = chunks / med(full)
    warm_cps = chunks / med(warm)
    table = Table(title=f"ingest_bench: {len(files)} files from {args.corpus.name}, {chunks} chunks, {args.repeats} repeats (medians)")
    for col in ("measure", "seconds", "chunks/s", "pages/s", "ratio"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    table.add_row("raw model.encode (same chunks)", f"{med(encode):.1f}", f"{raw_cps:.1f}", "", "1.00")
    table.add_row("full ingest, one-shot ingest()", f"{med(full):.1f}", f"{full_cps:.1f}", f"{pages / med(full):.2f}" if pages else "n/a",
                  f"{full_cps / raw_cps:.2f} of raw (target >= 0.80)")
    table.add_row("full ingest, warm parse workers (Ingestor)", f"{med(warm):.1f}", f"{warm_cps:.1f}",
                  f"{pages / med(warm):.2f}" if pages else "n/a", f"{warm_cps / raw_cps:.2f} of raw (target >= 0.80)")
    table.add_row("re-ingest, unchanged", f"{med(reingest):.2f}", "", "",
                  f"{med(reingest) / med(full):.1%} of first (target < 5%)")
    ingestor.close()
    Console().print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
