"""Retrieval quality, dense vs BM25 vs hybrid side by side, on two shared evaluation sets.

    python benchmarks/retrieval_eval.py [--sets scifact,chunking] [--work DIR]

1. SciFact (../shared/data/qa/scifact): the 5,183 training abstracts, one chunk per abstract (section =
   title, text = the abstract's sentences joined by spaces; embedded as "title\nabstract", truncated by
   the embedder at 256 tokens as in the usual BEIR set-up), written straight into a Store: the parser and
   chunker are skipped, an abstract is one passage. Queries: the 505 training claims with evidence;
   relevant = their evidence_doc_ids. Searched with an exact flat index (as in the reference number);
   rows marked IVF use the index the default flat_index_max (5,000) picks for 5,183 vectors.
2. chunking_eval (../shared/data/qa/chunking_eval): the 5 markdown corpora go through `pipeline.ingest`
   (our parser and chunker, default settings). A chunk is relevant to a question when its character span
   in the corpus file overlaps one of the question's evidence spans. Chunk spans: the parser drops
   markdown and the chunker re-joins sentences, so a chunk is located by its words: see `locate_chunks`.

Metrics per query, averaged: recall@5 and recall@20 (share of the relevant items in the top k), nDCG@10
(binary gains), MRR (first relevant hit in the top 100). Every mode is reported on all queries and on a
test half (a seeded shuffle, odd positions); the fusion (dense weight, rrf_k) is also tuned on the other
half by nDCG@10 and that tuned hybrid is reported on the test half only, so it never saw its test queries.

`--backend onnx|onnx-int8` runs the same with that embedding backend (its own stores and cache entries).

Embeddings are cached as .npy files keyed by a hash of the model name, the backend and the texts
(SCULPTRAG_EMB_CACHE, default /tmp/sculptrag-emb-cache): the first SciFact run embeds ~1.3M tokens
(~17 min on 2 busy CPU cores), later runs none. Stores are built once under --work and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from generator.sculpt.training.data import read_scifact  # noqa: E402 - the one reader of SciFact's files

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("SCULPTRAG_EMB_CACHE", "/tmp/sculptrag-emb-cache"))
MODES = ("dense", "lexical", "hybrid")
_R = __import__("pipeline.config", fromlist=["RetrievalSettings"]).RetrievalSettings()
LABEL = {"dense": "dense", "lexical": "bm25",
         "hybrid": f"hybrid (RRF defaults: w_dense={_R.dense_weight:g}, w_bm25={_R.lexical_weight:g}, rrf_k={_R.rrf_k})"}


# -- embedding cache -------------------------------------------------------------------------------------
class CachedEmbedder:
    """Wraps an Embedder: encode() looks up /cache/<sha256(model, texts)>.npy before computing."""

    def __init__(self, inner, cache: Path = CACHE) -> None:
        self.inner = inner
        self.cache = cache
        self.model_name = inner.model_name
        self.path = inner.path

    @property
    def dim(self) -> int:
        return self.inner.dim

    def warm_up(self) -> None:
        self.inner.warm_up()

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        backend = getattr(getattr(self.inner, "settings", None), "backend", "torch")
        h = hashlib.sha256(self.model_name.encode() + (b"" if backend == "torch" else b"\x00" + backend.encode()))
        for t in texts:
            h.update(b"\x00" + t.encode())
        path = self.cache / f"{h.hexdigest()[:24]}-{len(texts)}.npy"
        if path.exists():
            return np.load(path)
        t0 = time.perf_counter()
        vecs = self.inner.encode(list(texts))
        logging.getLogger("retrieval_eval").info("embedded %d texts in %.0f s", len(texts), time.perf_counter() - t0)
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)
        return vecs


# -- data ------------------------------------------------------------------------------------------------


def load_scifact() -> tuple[list[tuple[str, str, str]], list[tuple[str, set[str]]]]:
    """([(doc_id, title, text)] of every abstract, [(claim, {relevant doc_ids})] for claims with evidence)."""
    if not (DATA / "qa" / "scifact").is_dir():
        raise SystemExit(f"SciFact not found at {DATA / 'qa' / 'scifact'}; set SCULPTRAG_SHARED_DATA")
    abstracts, claims = read_scifact(DATA)
    docs = [(str(d), title, " ".join(sentences)) for d, (title, sentences) in abstracts.items()]
    rel: dict[int, tuple[str, set[str]]] = {}
    for r in claims:
        if r.evidence_doc is not None:
            rel.setdefault(r.id, (r.claim, set()))[1].add(str(r.evidence_doc))
    return docs, [rel[k] for k in sorted(rel)]


def load_chunking_eval() -> tuple[Path, list[tuple[str, str, list[tuple[int, int]]]]]:
    """(corpora folder, [(question, corpus id, [(start, end) evidence spans])])."""
    import pandas as pd

    folder = DATA / "qa" / "chunking_eval"
    if not folder.is_dir():
        raise SystemExit(f"chunking_eval not found at {folder}; set SCULPTRAG_SHARED_DATA")
    rows = pd.read_csv(folder / "questions_df.csv")
    questions = [(r.question, r.corpus_id, [(ref["start_index"], ref["end_index"]) for ref in json.loads(r.references)])
                 for r in rows.itertuples()]
    return folder / "corpora", questions


WORD_RE = re.compile(r"[A-Za-z0-9]+")


def locate_chunks(source: str, chunk_texts: Sequence[str]) -> list[tuple[int, int] | None]:
    """Character span of each chunk (in document order) in `source`, or None when it cannot be found.

    Both sides become lowercase word sequences (markup, punctuation and whitespace dropped, as the parser
    and chunker change those); a chunk starts where its first 12 words occur and ends where its last 12
    occur after that. The search starts just after the previous chunk's start (chunks overlap and come
    in order) and falls back to the whole file; shorter n-grams (6, 3) are tried when 12 are not found.
    """
    spans = [(m.start(), m.end()) for m in WORD_RE.finditer(source)]
    words_lc = [source[a:b].lower() for a, b in spans]
    joined = " ".join(words_lc)
    word_at = np.cumsum([0] + [len(w) + 1 for w in words_lc[:-1]]) if words_lc else np.zeros(0, int)  # word -> offset

    def whole(i: int, n: int) -> bool:  # the match starts and ends at word boundaries
        return (i == 0 or joined[i - 1] == " ") and (i + n == len(joined) or joined[i + n] == " ")

    def find(words: list[str], lo: int) -> int:
        """Word index where `words` occur at or after word `lo` (or anywhere), -1 if nowhere."""
        needle = " ".join(words)
        for begin in (int(word_at[lo]) if lo < len(word_at) else len(joined), 0):
            i = joined.find(needle, begin)
            while i >= 0 and not whole(i, len(needle)):
                i = joined.find(needle, i + 1)
            if i >= 0:
                return int(np.searchsorted(word_at, i))
        return -1

    out: list[tuple[int, int] | None] = []
    cursor = 0
    for text in chunk_texts:
        words = [w.lower() for w in WORD_RE.findall(text)]
        span = None
        for n in (12, 6, 3):
            if not words:
                break
            head = find(words[:n], cursor)
            if head < 0:
                continue
            tail = find(words[-n:], head)
            tail_end = tail + min(n, len(words)) - 1 if tail >= head else head + len(words) - 1
            span = (spans[head][0], spans[min(tail_end, len(spans) - 1)][1])
            cursor = head + 1
            break
        out.append(span)
    return out


# -- metrics ---------------------------------------------------------------------------------------------
def metrics(ranked: list[list], relevant: list[set]) -> dict[str, float]:
    """Mean recall@5, recall@20, nDCG@10 (binary gains), MRR (first relevant in the top 100)."""
    r5, r20, ndcg, mrr = [], [], [], []
    for ids, rel in zip(ranked, relevant):
        r5.append(len(rel & set(ids[:5])) / len(rel))
        r20.append(len(rel & set(ids[:20])) / len(rel))
        dcg = sum(1 / math.log2(i + 2) for i, c in enumerate(ids[:10]) if c in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg.append(dcg / ideal)
        first = next((i for i, c in enumerate(ids[:100]) if c in rel), None)
        mrr.append(0.0 if first is None else 1 / (first + 1))
    return {"R@5": np.mean(r5), "R@20": np.mean(r20), "nDCG@10": np.mean(ndcg), "MRR": np.mean(mrr)}


# -- runs ------------------------------------------------------------------------------------------------
def build_scifact_store(docs, embedder, folder: Path, flat_index_max: int):
    from pipeline import Store
    from pipeline.config import Settings
    from pipeline.schema import Document
    from pipeline.store import ChunkInput

    settings = Settings(store_dir=folder, flat_index_max=flat_index_max)
    store = Store(settings)
    if store.counts()["chunks"] == len(docs):
        return store
    vecs = embedder.encode([f"{t}\n{a}" for _, t, a in docs])
    with store.writer():
        store.set_state(embedding_model=embedder.model_name, embedding_dim=str(vecs.shape[1]))
        with store.transaction() as tx:
            for (doc_id, title, abstract), v in zip(docs, vecs):
                doc = Document(uid=doc_id, source_uri=f"scifact://{doc_id}", title=title, media_type="text/plain",
                               file_type="txt", size=len(abstract), mtime=0.0,
                               sha256=hashlib.sha256(abstract.encode()).hexdigest(), pages=None)
                chunk = ChunkInput(uid=f"scifact-{doc_id}", position=0, text=abstract, section=title, page=None,
                                   page_end=None, token_count=0, kinds="NarrativeText", table_html=None, vector=v)
                tx.put_document(doc, ["public"], [chunk])
        store.flush_indexes()
    return store


def build_chunking_store(corpora: Path, embedder, work: Path):
    from pipeline import Store, ingest
    from pipeline.config import Settings

    settings = Settings(store_dir=work / "chunking_eval")
    report = ingest(sorted(corpora.glob("*.md")), settings, embedder=embedder)
    if report.rejected:
        raise SystemExit(f"ingest rejected corpus files: {report.rejections()}")
    return Store(settings)


def rank_all(retriever, queries: list[str], qvecs: np.ndarray, mode: str, keys: dict, key) -> list[list[int]]:
    """For each query, the top-100 chunk ids of one retrieval mode; `keys` learns each chunk's relevance key."""
    out = []
    for q, v in zip(queries, qvecs):
        hits = retriever.search(q, groups=["public"], k=100, mode=mode, dedupe=False, query_vector=v)
        keys.update((h.chunk_id, key(h)) for h in hits)
        out.append([h.chunk_id for h in hits])
    return out


def evaluate(retriever, queries: list[str], qvecs: np.ndarray, relevant: list[set], key, seed: int = 0, extra=()):
    """All modes on all queries; then the fusion tuned on one half of the queries, every mode on the other.

    `extra`: [(label, retriever, mode)] more configurations, reported on both splits.
    """
    from pipeline.retrieve import reciprocal_rank_fusion

    keys: dict[int, object] = {}
    runs = {m: rank_all(retriever, queries, qvecs, m, keys, key) for m in MODES}

    def score(ranked: list[list[int]], idx: list[int]) -> dict[str, float]:
        return metrics([[keys[c] for c in ranked[j]] for j in range(len(idx))], [relevant[i] for i in idx])

    everyone = list(range(len(queries)))
    rows = [("all", len(queries), LABEL[m], score(runs[m], everyone)) for m in MODES]
    extra_runs = [(label, rank_all(r, queries, qvecs, mode, keys, key)) for label, r, mode in extra]
    rows += [("all", len(queries), label, score(run, everyone)) for label, run in extra_runs]

    order = everyone[:]
    random.Random(seed).shuffle(order)
    tune, test = sorted(order[0::2]), sorted(order[1::2])
    # Fusing the two stored rankings is exactly what search() does here (depth 100, all readable, no dedupe).
    best = None
    for rrf_k in (10, 30, 60, 100):
        for w in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0):
            fused = [[c for c, _ in reciprocal_rank_fusion([runs["dense"][i], runs["lexical"][i]], [w, 1.0], rrf_k)[:100]]
                     for i in tune]
            ndcg = score(fused, tune)["nDCG@10"]
            if best is None or ndcg > best[0] + 1e-12:
                best = (ndcg, w, rrf_k)
    _, w, rrf_k = best
    rows += [("test half", len(test), LABEL[m], score([runs[m][i] for i in test], test)) for m in MODES]
    rows += [("test half", len(test), label, score([run[i] for i in test], test)) for label, run in extra_runs]
    tuned = retriever.settings.model_copy(deep=True)
    tuned.retrieval.dense_weight, tuned.retrieval.rrf_k = w, rrf_k
    tuned_retriever = type(retriever)(retriever.store, retriever.embedder, tuned)
    ranked = rank_all(tuned_retriever, [queries[i] for i in test], qvecs[test], "hybrid", keys, key)
    rows.append(("test half", len(test), f"hybrid tuned on the other half (w_dense={w:g}, rrf_k={rrf_k})", score(ranked, test)))
    return rows


def print_table(console, title: str, rows) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("queries", "n", "retrieval", "R@5", "R@20", "nDCG@10", "MRR"):
        table.add_column(col, justify="left" if col in ("queries", "retrieval") else "right")
    for split, n, mode, m in rows:
        table.add_row(split, str(n), mode, *(f"{m[c]:.3f}" for c in ("R@5", "R@20", "nDCG@10", "MRR")))
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="scifact,chunking")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sculptrag-retrieval-eval",
                    help="stores are built here once and reused")
    ap.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"],
                    help="the embedding backend (SCULPTRAG_EMBEDDING__BACKEND); each has its own stores and cache")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("sentence_transformers", "httpx", "unstructured", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from rich.console import Console

    from pipeline.config import EmbeddingSettings
    from pipeline.embedding import make_embedder
    from pipeline.retrieve import Retriever

    embedder = CachedEmbedder(make_embedder(EmbeddingSettings(backend=args.backend)))
    if args.backend != "torch":
        args.work = args.work / args.backend
    tables = []
    sets = args.sets.split(",")
    if "scifact" in sets:
        docs, claims = load_scifact()
        # exact (flat) search, as in the reference number (and the default up to 100k vectors); an IVF
        # index over the same vectors is reported beside it, at nprobe nlist/16 and at nlist/4
        store = build_scifact_store(docs, embedder, args.work / "scifact-flat", flat_index_max=len(docs))
        ivf_store = build_scifact_store(docs, embedder, args.work / "scifact-ivf", flat_index_max=5000)
        ivf = ivf_store.search_index()
        wide = ivf_store.settings.model_copy(deep=True)
        wide.retrieval.nprobe = ivf.nlist // 4
        default_ivf = Retriever(ivf_store, embedder)
        extra = [(f"dense, IVF nlist={ivf.nlist} nprobe={ivf.nprobe}", default_ivf, "dense"),
                 (f"hybrid, IVF nprobe={ivf.nprobe}", default_ivf, "hybrid"),
                 (f"dense, IVF nprobe={wide.retrieval.nprobe}", Retriever(ivf_store, embedder, wide), "dense")]
        queries = [c for c, _ in claims]
        retriever = Retriever(store, embedder)
        rows = evaluate(retriever, queries, embedder.encode(queries), [r for _, r in claims],
                        key=lambda h: h.document.uid, extra=extra)
        tables.append((f"SciFact train claims with evidence ({len(docs):,} abstracts, one chunk each; flat index "
                       "unless noted)", rows))
    if "chunking" in sets:
        corpora, questions = load_chunking_eval()
        store = build_chunking_store(corpora, embedder, args.work)
        relevant_chunks, located, total = chunk_relevance(store, corpora, questions)
        keep = [i for i, rel in enumerate(relevant_chunks) if rel]
        if len(keep) < len(questions):
            logging.getLogger("retrieval_eval").warning("%d questions have no locatable relevant chunk; left out",
                                                         len(questions) - len(keep))
        queries = [questions[i][0] for i in keep]
        retriever = Retriever(store, embedder)
        rows = evaluate(retriever, queries, embedder.encode(queries), [relevant_chunks[i] for i in keep],
                        key=lambda h: h.chunk_id)
        tables.append((f"chunking_eval (5 corpora through pipeline.ingest: {total:,} chunks, {located:,} located)", rows))
    console = Console(width=150)
    for title, rows in tables:
        print_table(console, title, rows)


def chunk_relevance(store, corpora: Path, questions) -> tuple[list[set[int]], int, int]:
    """Per question, the ids of chunks whose located span overlaps one of its evidence spans."""
    from sqlalchemy import select

    from pipeline.schema import ChunkRow, Document

    spans: dict[str, list[tuple[int, tuple[int, int] | None]]] = {}
    with store.sessions() as s:
        for doc in s.scalars(select(Document)):
            rows = list(s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.document_id == doc.id)
                                  .order_by(ChunkRow.position)))
            corpus_id = Path(doc.source_uri).stem
            text = (corpora / f"{corpus_id}.md").read_text(encoding="utf-8")
            located = locate_chunks(text, [t for _, t in rows])
            spans[corpus_id] = [(cid, sp) for (cid, _), sp in zip(rows, located)]
    total = sum(len(v) for v in spans.values())
    found = sum(sp is not None for v in spans.values() for _, sp in v)
    relevant = []
    for _, corpus_id, evidence in questions:
        relevant.append({cid for cid, sp in spans[corpus_id] if sp and any(sp[0] < b and a < sp[1] for a, b in evidence)})
    return relevant, found, total


if __name__ == "__main__":
    main()
