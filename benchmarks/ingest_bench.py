"""Ingest throughput, side by side on one corpus: raw model.encode vs the full pipeline vs re-ingest.

    python benchmarks/ingest_bench.py [--corpus DIR] [--files N] [--repeats R] [--backends torch,onnx,onnx-int8]

Prints one table, a row per embedding backend (--backends: torch, onnx, onnx-int8): raw `encode`
throughput on the very same chunk texts, chunks/s of the full ingest (discover, parse, validate, chunk,
embed, store) and its ratio to raw encode (target >= 0.85), the speed-up over the first backend's one-shot
ingest, the unchanged re-ingest time as a share of the first ingest (target < 5%), and the cosine of each
backend's vectors to the first one's on the same texts. The full ingest is measured twice: a one-shot
`ingest()` (parse workers start with it, as in the CLI) and an `Ingestor` whose workers are already warm
(as in a service); the model is loaded before either, as for raw encode. Medians over R repeats; each
repeat uses fresh stores.
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
from pipeline.embedding import make_embedder  # noqa: E402
from pipeline import Store, ingest  # noqa: E402
from pipeline.ingestion import Ingestor  # noqa: E402
from pipeline.config import EmbeddingSettings, Settings  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs" / "debian-handbook-en"


def measure(backend: str, corpus: Path, first: Path, work: Path, repeats: int, texts: list[str] | None):
    """One backend: medians of one-shot ingest, warm ingest, unchanged re-ingest and raw encode (of `texts`,
    or of this run's own chunk texts when None), the chunk count, pages, and the raw-encode vectors."""
    embedder = make_embedder(EmbeddingSettings(backend=backend))
    embedder.warm_up()
    full, warm, reingest, encode, chunks, pages, vectors = [], [], [], [], 0, 0, None
    ingestor = Ingestor(Settings(store_dir=work / f"{backend}-warm-up"), embedder=embedder)
    ingestor.ingest([first])  # starts and warms the parse workers once, as a service holding an Ingestor would
    for r in range(repeats):
        settings = Settings(store_dir=work / f"{backend}-store-{r}")
        report = ingest([corpus], settings, embedder=embedder)
        full.append(report.seconds)
        warm.append(ingestor.ingest([corpus], store=Store(Settings(store_dir=work / f"{backend}-warm-{r}"))).seconds)
        chunks, pages = report.chunks_added, report.pages
        again = ingest([corpus], settings, embedder=embedder)
        assert again.parsed == 0 and again.embedded_chunks == 0
        reingest.append(again.seconds)
        if texts is None:
            store = Store(settings)
            rows = store.chunks(store.all_vectors()[0])
            texts = [embed_text(c.section, c.text, c.context or "") for c in rows]  # what ingest embedded
        t = time.perf_counter()
        vectors = embedder.encode(texts)
        encode.append(time.perf_counter() - t)
    ingestor.close()
    med = statistics.median
    return {"full": med(full), "warm": med(warm), "reingest": med(reingest), "encode": med(encode), "chunks": chunks,
            "pages": pages, "vectors": vectors, "texts": texts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--files", type=int, default=20, help="first N files of the corpus (sorted by name)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8", help="embedding backends, compared on the same chunks")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sculptrag-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file())[: args.files]
    for f in files:
        shutil.copy(f, corpus / f.name)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results, texts = {}, None
    for backend in backends:  # every backend encodes the chunk texts of the first one's store
        results[backend] = measure(backend, corpus, files[0], work, args.repeats, texts)
        texts = results[backend]["texts"]
    base = results[backends[0]]
    table = Table(title=f"ingest_bench: {len(files)} files from {args.corpus.name}, {base['chunks']} chunks, "
                        f"{args.repeats} repeats (medians)")
    for col in ("backend", "raw encode chunks/s", "one-shot ingest chunks/s", "of raw", "warm ingest chunks/s",
                "of raw", f"x {backends[0]} one-shot", "re-ingest", f"cosine to {backends[0]} (min / mean)"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for backend, r in results.items():
        raw, full, warm = (r["chunks"] / r[k] for k in ("encode", "full", "warm"))
        cos = (r["vectors"] * base["vectors"]).sum(axis=1)
        table.add_row(backend, f"{len(texts) / r['encode']:.1f}", f"{full:.1f}", f"{full / raw:.2f}", f"{warm:.1f}",
                      f"{warm / raw:.2f}", f"{full / (base['chunks'] / base['full']):.2f}",
                      f"{r['reingest'] / r['full']:.1%}", f"{cos.min():.5f} / {cos.mean():.5f}")
    Console(width=170).print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
