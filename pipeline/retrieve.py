"""Retrieve: a query -> the k best chunks the caller may read, dense (FAISS) and BM25 fused by RRF.

Invariants:
- Access control happens inside retrieval, before ranking: the caller's groups (and the metadata filters)
  select the readable documents in SQL; FAISS searches only their chunks (an IDSelector in the search
  parameters) and BM25 scores only theirs (its `allowed` mask). So the best match being unreadable never
  costs the caller a result: it gets k hits whenever k readable chunks match. Every returned chunk is
  checked once more against the readable set as its row is read (a write between the steps cannot leak).
- Nothing about an unreadable document reaches the caller, not even through a score: BM25's statistics
  (chunk count, document frequencies, average length) are taken over the readable chunks only, so the
  scores and ranks a caller gets are those of an index built over what it may read (a word that only an
  unreadable document holds scores exactly like a word no document holds). Dense scores are cosines, which
  depend on no other chunk (an IVF index's lists are trained on all vectors: that can change which readable
  chunks an approximate search finds, never a score, id or text); fusion, de-duplication (`duplicates`) and neighbours (`neighbour_of`) only ever
  see readable chunks. With metadata filters the statistics are those of the filtered readable set.
- Deny by default: a document is readable by a caller that shares at least one group with it. A caller
  with no groups sees nothing; "public" is an ordinary group (the default one ingest assigns), so an
  anonymous caller passes groups=["public"] explicitly.
- Fusion is weighted reciprocal rank fusion, fused(c) = sum over rankings of w / (rrf_k + rank(c)), ranks
  from 1, over the top `fusion_depth` of each ranking; single-mode searches use the same formula with one
  ranking, so `scores.fused` always means the same thing.
- The indexes are the store's, per SQL generation, loaded lazily under the store's lock; the dense index
  used here is never mutated (writers update their own copy), so concurrent searches need no other lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .config import Settings
from .errors import ConfigError, StoreError
from .groups import parse_groups
from .words import ENTITY_NOISE, tokenize
from .schema import ChunkRow, Document
from .store import Store
from .types import DocumentRef, Hit, HitScores, SearchFilters

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "lexical"]
MODES = ("hybrid", "dense", "lexical")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None, k_rrf: int = 60
) -> list[tuple[int, float]]:
    """Fuse ranked id lists: [(id, sum of w / (k_rrf + rank))], best first (ties: better best rank, then earlier list)."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    if k_rrf < 1:
        raise ValueError(f"k_rrf must be >= 1, not {k_rrf}")
    score: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}  # id -> (best rank, index of the list that gave it)
    for li, (ranking, w) in enumerate(zip(rankings, weights)):
        for rank, cid in enumerate(ranking, start=1):
            cid = int(cid)
            score[cid] = score.get(cid, 0.0) + w / (k_rrf + rank)
            if cid not in best or rank < best[cid][0]:
                best[cid] = (rank, li)
    return sorted(score.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0]))


@dataclass(frozen=True)
class _Ranking:
    """One ranking of candidate chunks: ids best first, {id: (score, rank from 1)}, and its weight in the fusion."""

    ids: list[int]
    scores: dict[int, tuple[float, int]]
    weight: float

    @classmethod
    def of(cls, scores: np.ndarray, ids: np.ndarray, weight: float) -> _Ranking:
        return cls(ids.tolist(), {int(c): (float(v), r) for r, (v, c) in enumerate(zip(scores, ids), start=1)}, weight)


class Retriever:
    """Hybrid search over a Store. Cheap to construct; the embedder loads in warm_up() (or the first search)."""

    def __init__(self, store: Store, embedder=None, settings: Settings | None = None, acl_cache_size: int = 64) -> None:
        self.store = store
        self.settings = settings or store.settings
        self.embedder = embedder
        self.acl_cache_size = acl_cache_size
        self._lock = threading.Lock()
        self._embedder_ready = False
        self._acl_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._doc_terms: tuple[int, dict] | None = None  # (generation, {document id: (entity terms, period terms)})

    def load_embedder(self):
        """The embedder, loaded (and checked against the store's model) on first use; share it with an
        Ingestor or a support checker so one process holds one copy."""
        return self._embedder()

    def warm_up(self) -> None:
        """Load the embedder (checking it is the store's model) and the indexes."""
        self._embedder()
        self.store.search_index()
        self.store.lexical_index()
        self.store.chunk_catalog()

    def search(
        self,
        query: str,
        *,
        groups: Sequence[str],
        k: int | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        mode: Mode | None = None,
        expand_neighbours: int = 0,
        dedupe: bool = True,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The k best chunks that `groups` may read and `filters` admit, best first.

        With `expand_neighbours=n`, the chunks at positions p-n..p+n of each hit's document follow it in
        document order (marked `neighbour_of`). With `dedupe`, a chunk whose text equals, or whose embedding
        has cosine > settings.retrieval.dedupe_threshold with, a better hit is folded into that hit
        (`duplicates`) and the next candidate takes its place. `query_vector` skips encoding the query.
        """
        k, mode, groups, filters = self._request(query, groups, k, mode, expand_neighbours, filters)
        catalog = self.store.chunk_catalog()
        allowed_docs, mask = self._readable(catalog, groups, filters)
        n_readable = int(mask.sum())
        if n_readable == 0:
            return []
        depth = min(max(self.settings.retrieval.fusion_depth, 2 * k if dedupe else k), n_readable)
        rankings = self._candidates(query, query_vector, mode, depth, catalog, mask)
        fused = self._fuse(query, rankings, catalog, allowed_docs)
        cap = max(1, -(-k // 3)) if self.settings.retrieval.spread_documents and MULTI_DOCUMENT_RE.search(query) else None
        rows, folded = self._select(fused, k, allowed_docs, dedupe, cap)
        return self._hits(rows, folded, rankings, expand_neighbours, allowed_docs)

    # -- steps -----------------------------------------------------------------------------------------
    def _request(self, query: str, groups: Sequence[str], k: int | None, mode: Mode | None, expand_neighbours: int,
                 filters: SearchFilters | Mapping[str, Any] | None) -> tuple[int, Mode, list[str], SearchFilters | None]:
        """Check a search's arguments: (k, mode, groups, filters) with the settings' defaults filled in."""
        cfg = self.settings.retrieval
        k = cfg.k if k is None else k
        mode = mode or cfg.mode
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if k < 1 or expand_neighbours < 0:
            raise ConfigError(f"k must be >= 1 and expand_neighbours >= 0 (got k={k}, expand_neighbours={expand_neighbours})")
        if not query or not query.strip():
            raise ConfigError("the query is empty; pass the question text")
        groups = parse_groups(groups, allow_empty=True)  # "hr" is one group, "hr,finance" two, as everywhere
        if filters is not None and not isinstance(filters, SearchFilters):
            filters = SearchFilters.model_validate(filters)
        return k, mode, groups, filters

    def _candidates(self, query: str, query_vector: np.ndarray | None, mode: Mode, depth: int, catalog,
                    mask: np.ndarray) -> dict[str, _Ranking]:
        """The top `depth` readable chunks (`mask` over catalog.ids) by each ranking the mode uses:
        {"dense": ..., "lexical": ...}, dense first."""
        cfg = self.settings.retrieval
        rankings: dict[str, _Ranking] = {}
        lexical = None
        if mode == "hybrid":  # BM25 on another thread while this one encodes the query and searches FAISS (both
            # release the GIL for most of their work): at 1M chunks hybrid costs about the slower of the two
            lexical = _pool().submit(self._lexical_ranking, query, depth, catalog, mask, cfg.lexical_weight)
        if mode in ("dense", "hybrid"):
            rankings["dense"] = self._dense_ranking(query, query_vector, depth, catalog, mask,
                                                    cfg.dense_weight if mode == "hybrid" else 1.0)
        if lexical is not None:
            rankings["lexical"] = lexical.result()
        elif mode == "lexical":
            rankings["lexical"] = self._lexical_ranking(query, depth, catalog, mask, 1.0)
        return rankings

    def _dense_ranking(self, query: str, query_vector: np.ndarray | None, depth: int, catalog, mask: np.ndarray,
                       weight: float) -> _Ranking:
        """FAISS over the readable chunks only (an ID selector; none when everything is readable)."""
        cfg = self.settings.retrieval
        qv = self._embedder().encode([query])[0] if query_vector is None else np.asarray(query_vector, np.float32)
        allowed_ids = None if mask.all() else catalog.ids[mask]
        index = self.store.search_index(catalog.generation)  # the generation this search read: no second query
        scores, ids = dense_search(index, qv, depth, allowed_ids, cfg.nprobe, cfg.faiss_threads)
        return _Ranking.of(scores, ids, weight)

    def _lexical_ranking(self, query: str, depth: int, catalog, mask: np.ndarray, weight: float) -> _Ranking:
        """BM25 with its statistics over the readable chunks only (its `allowed` mask)."""
        bm25 = self.store.lexical_index(catalog.generation)  # (on the BM25 thread: no SQL unless it must load)
        if bm25.aligned_with(catalog.ids):
            allowed = None if mask.all() else mask
        else:  # index and catalog from different generations (a write in between): align by id, so the
            allowed = np.isin(bm25.ids, catalog.ids[mask])  # statistics never count a chunk outside the readable set
        scores, ids = bm25.search(query, depth, allowed=allowed)
        return _Ranking.of(scores, ids, weight)

    def _fuse(self, query: str, rankings: Mapping[str, _Ranking], catalog, allowed_docs: np.ndarray) -> list[tuple[int, float]]:
        """Weighted RRF of the rankings, then the boost of the readable documents the query names."""
        cfg = self.settings.retrieval
        if sum(r.weight for r in rankings.values()) <= 0:
            raise ConfigError("retrieval dense_weight and lexical_weight are both 0; give one a positive weight")
        fused = reciprocal_rank_fusion([r.ids for r in rankings.values()], [r.weight for r in rankings.values()], cfg.rrf_k)
        if cfg.metadata_weight > 0 and fused:
            fused = self._boost_named_documents(query, fused, catalog, allowed_docs)
        return fused

    def _hits(self, rows: list[tuple[ChunkRow, float]], folded: dict[int, list[int]], rankings: Mapping[str, _Ranking],
              expand_neighbours: int, allowed_docs: np.ndarray) -> list[Hit]:
        """Hits for the selected rows (with their neighbours when asked), each with its scores and document."""
        dense, lexical = rankings.get("dense"), rankings.get("lexical")
        hits_by_id = {row.id: (row, _hit_scores(row.id, score, dense, lexical)) for row, score in rows}
        order = [row.id for row, _ in rows]
        neighbours: dict[int, int] = {}
        if expand_neighbours:
            order, neighbours = self._expand(rows, expand_neighbours, allowed_docs, hits_by_id)
        docs = self.store.documents_by_id({hits_by_id[c][0].document_id for c in order})
        return [_hit(row, docs[row.document_id], scores, neighbours.get(c), folded.get(c, []))
                for c in order for row, scores in [hits_by_id[c]] if row.document_id in docs]  # deleted meanwhile: dropped

    def _embedder(self):
        with self._lock:
            if self._embedder_ready:
                return self.embedder
            if self.embedder is None:
                from pipeline.embedding import make_embedder

                self.embedder = make_embedder(self.settings.embedding)
            stored = self.store.get_state("embedding_model")
            if stored is not None and stored != self.embedder.model_name:
                raise StoreError(
                    f"this store was built with the embedding model {stored!r}, but the retriever uses "
                    f"{self.embedder.model_name!r}; set SCULPTRAG_EMBEDDING__MODEL={stored}"
                )
            self.embedder.warm_up()
            self._embedder_ready = True
            return self.embedder

    def _readable(self, catalog, groups: Sequence[str], filters: SearchFilters | None) -> tuple[np.ndarray, np.ndarray]:
        """(readable document ids, mask over catalog.ids), cached per generation, groups and filters."""
        key = (catalog.generation, tuple(sorted(set(groups))), filters.model_dump_json() if filters else "")
        with self._lock:
            hit = self._acl_cache.get(key)
            if hit is not None:
                self._acl_cache.move_to_end(key)
                return hit
        docs = self.store.readable_documents(groups, filters)
        value = (docs, catalog.mask_for_documents(docs))
        if self.acl_cache_size:
            with self._lock:
                self._acl_cache[key] = value
                while len(self._acl_cache) > self.acl_cache_size:
                    self._acl_cache.popitem(last=False)
        return value

    def _boost_named_documents(self, query: str, fused: list[tuple[int, float]], catalog, allowed_docs: np.ndarray):
        """Fuse a third signal: the readable documents whose entity or period the query names. Each chunk of
        them gains metadata_weight * strength / (rrf_k + 1): the best-named document as much as a first
        place in a ranking, one named half as well half as much. Candidates only: it reorders what dense and
        BM25 found, it never brings in a chunk neither found."""
        cfg = self.settings.retrieval
        named = named_documents(query, self._document_terms(catalog.generation), allowed_docs)
        if not named:
            return fused
        ids = np.fromiter((c for c, _ in fused), np.int64, len(fused))
        pos = np.minimum(np.searchsorted(catalog.ids, ids), max(len(catalog.ids) - 1, 0))
        found = catalog.ids[pos] == ids
        docs = np.where(found, catalog.document_ids[pos], -1)
        boosted = [(c, sc + cfg.metadata_weight * named.get(int(d), 0.0) / (cfg.rrf_k + 1)) for (c, sc), d in zip(fused, docs)]
        order = {c: i for i, (c, _) in enumerate(fused)}
        return sorted(boosted, key=lambda cs: (-cs[1], order[cs[0]]))

    def _document_terms(self, gen: int) -> dict[int, tuple[frozenset, frozenset]]:
        """{document id: (entity terms, period terms)} of the documents that state either, at generation `gen`."""
        with self._lock:
            if self._doc_terms is not None and self._doc_terms[0] == gen:
                return self._doc_terms[1]
        terms = {doc_id: (entity_terms(entity or ""), period_terms(period or ""))
                 for doc_id, entity, period in self.store.document_metadata()}
        with self._lock:
            self._doc_terms = (gen, terms)
        return terms

    def _select(self, fused: list[tuple[int, float]], k: int, allowed_docs: np.ndarray, dedupe: bool,
                per_document: int | None = None):
        """Walk the fused ranking: keep readable, non-duplicate chunks until k, at most `per_document` from one
        document while others have candidates (then the best of the rest). -> ([(row, fused)], {kept: [folded]})."""
        threshold = self.settings.retrieval.dedupe_threshold
        kept: list[tuple[ChunkRow, float]] = []
        held: list[tuple[ChunkRow, float]] = []  # over their document's share, kept only if k is not reached
        per_doc: dict[int, int] = {}
        kept_vecs: list[np.ndarray] = []  # every chunk kept or held, in order, with its id in vec_ids
        vec_ids: list[int] = []
        kept_texts: dict[str, int] = {}
        folded: dict[int, list[int]] = {}
        start, batch = 0, 2 * k if dedupe else k
        while len(kept) < k and start < len(fused):
            part = fused[start:start + batch]
            start += batch
            rows = self.store.chunks([c for c, _ in part])
            scores = dict(part)
            for row in rows:
                if not _contains(allowed_docs, row.document_id):
                    continue  # the document's groups changed since the ranking was made
                if dedupe:
                    text_key = " ".join(row.text.split()).casefold()
                    vec = np.frombuffer(row.embedding, dtype=np.float32)
                    twin = kept_texts.get(text_key)
                    if twin is None and kept_vecs:
                        sims = np.stack(kept_vecs) @ vec
                        j = int(np.argmax(sims))
                        twin = vec_ids[j] if sims[j] > threshold else None
                    if twin is not None:
                        folded.setdefault(twin, []).append(row.id)
                        continue
                    kept_texts.setdefault(text_key, row.id)
                    kept_vecs.append(vec)
                    vec_ids.append(row.id)
                if per_document is not None and per_doc.get(row.document_id, 0) >= per_document:
                    held.append((row, scores[row.id]))
                    continue
                per_doc[row.document_id] = per_doc.get(row.document_id, 0) + 1
                kept.append((row, scores[row.id]))
                if len(kept) == k:
                    break
        if len(kept) < k and held:
            kept = sorted(kept + held[: k - len(kept)], key=lambda rs: -rs[1])
        return kept, folded

    def _expand(self, rows, n: int, allowed_docs: np.ndarray, hits_by_id: dict):
        """Primary hits in rank order, each with the chunks p-n..p+n of its document in position order."""
        windows = [(r.document_id, r.position - n, r.position + n) for r, _ in rows]
        at = {(d, p): c for c, d, p in self.store.window_chunk_ids(windows)}
        extra = [c for c in at.values() if c not in hits_by_id]
        for row in self.store.chunks(extra):
            if _contains(allowed_docs, row.document_id):
                hits_by_id[row.id] = (row, HitScores())
        order: list[int] = []
        seen: set[int] = set()
        neighbours: dict[int, int] = {}
        primaries = {r.id for r, _ in rows}
        for r, _ in rows:
            for p in range(r.position - n, r.position + n + 1):
                c = at.get((r.document_id, p))
                if c is None or c in seen or c not in hits_by_id:
                    continue
                seen.add(c)
                order.append(c)
                if c not in primaries:
                    neighbours[c] = r.id
        return order, neighbours


# a question over several documents: its k passages should come from several of them
MULTI_DOCUMENT_RE = re.compile(
    r"\b(over time|across|compar(?:e|ed|es|ing|ison)|trends?|versus|vs\.?|year[- ]over[- ]year|quarter[- ]over[- ]quarter"
    r"|each (?:quarter|year|month|period|company|document)|(?:all|both|the last \w+) (?:quarters|years|months|periods|companies|documents)"
    r"|change[sd]? (?:from|between|over)|from \w+ \d{4} to)\b", re.IGNORECASE)
_MONTHS = frozenset(tokenize("january february march april may june july august september october november december"))


def entity_terms(entity: str) -> frozenset:
    return frozenset(tokenize(entity)) - ENTITY_NOISE


def period_terms(period: str) -> frozenset:
    """The words of a period that tell periods apart: years, months, quarters (not "quarterly period ended")."""
    return frozenset(t for t in tokenize(period) if (t.isdigit() and len(t) == 4) or t in _MONTHS or re.fullmatch(r"q[1-4]|fy\d+|h[12]", t))


def named_documents(query: str, terms: Mapping[int, tuple[frozenset, frozenset]], readable: np.ndarray) -> dict[int, float]:
    """{document id: strength in (0, 1]} of the readable documents whose entity the query names (at least half
    of its distinctive words) or whose period it names (its year, month, quarter); the best named is 1."""
    q = set(tokenize(query))
    if not q or not terms:
        return {}
    scores: dict[int, float] = {}
    for doc_id, (entity, period) in terms.items():
        e = len(q & entity) / len(entity) if entity else 0.0
        score = (e if e >= 0.5 else 0.0) + 0.5 * len(q & period)
        if score > 0:
            scores[doc_id] = score
    if not scores:
        return {}
    ids = np.fromiter(scores, np.int64, len(scores))
    keep = ids[np.isin(ids, readable)].tolist()  # only documents this caller may read
    best = max((scores[d] for d in keep), default=0.0)
    return {d: scores[d] / best for d in keep} if best else {}


def dense_search(index, query: np.ndarray, n: int, allowed_ids: np.ndarray | None, nprobe: int | None = None,
                 threads: int = 1):
    """Top-n (scores, ids) by inner product among `allowed_ids` (None: all), with a FAISS ID selector.

    IVF: starts at `nprobe` (default the index's) and doubles it while fewer than n readable chunks were
    found in the probed lists, so a sparse readable set still yields n results. `threads`: OpenMP threads
    for this call (0: FAISS's default).
    """
    import faiss

    n = min(n, int(index.ntotal), len(allowed_ids) if allowed_ids is not None else n)
    if n <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    sel, bitmap = None, None
    if allowed_ids is not None:
        bits = np.zeros(int(allowed_ids.max()) + 1, dtype=bool)
        bits[allowed_ids] = True
        bitmap = np.packbits(bits, bitorder="little")  # bit i of byte i>>3 = id i is readable
        sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    with _omp_threads(threads):
        if hasattr(index, "nlist"):  # IVF
            probe = min(nprobe or index.nprobe, index.nlist)
            while True:
                D, I = index.search(q, n, params=faiss.SearchParametersIVF(sel=sel, nprobe=probe))
                if int((I[0] >= 0).sum()) >= n or probe >= index.nlist:
                    break
                probe = min(2 * probe, index.nlist)
        else:
            D, I = index.search(q, n, params=faiss.SearchParameters(sel=sel) if sel is not None else None)
    del bitmap  # kept alive until the searches above are done: the selector points into it
    found = I[0] >= 0
    return D[0][found].astype(np.float32), I[0][found].astype(np.int64)


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (the process it belongs to, the pool)
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that run BM25 beside FAISS in hybrid searches (one per core: more would only queue). A
    forked child makes its own: the parent's threads do not exist there."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="sculptrag-bm25"))
        return _POOL[1]


@contextlib.contextmanager
def _omp_threads(n: int):
    """OpenMP threads for FAISS calls in this block, on this thread only (the setting is per thread).

    One query gains nothing from more threads, and waking idle OpenMP workers can cost ~10 ms per
    search on a busy machine (measured with libgomp on 2 shared cores).
    """
    import faiss

    if n <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _contains(sorted_ids: np.ndarray, value: int) -> bool:
    i = int(np.searchsorted(sorted_ids, value))
    return i < len(sorted_ids) and int(sorted_ids[i]) == value


def _hit_scores(chunk_id: int, fused: float, dense: _Ranking | None, lexical: _Ranking | None) -> HitScores:
    d = dense.scores.get(chunk_id) if dense else None
    l = lexical.scores.get(chunk_id) if lexical else None  # noqa: E741
    return HitScores(dense=d[0] if d else None, dense_rank=d[1] if d else None,
                     bm25=l[0] if l else None, bm25_rank=l[1] if l else None, fused=fused)


def _hit(row: ChunkRow, doc: Document, scores: HitScores, neighbour_of: int | None, duplicates: list[int]) -> Hit:
    return Hit(
        chunk_id=row.id, chunk_uid=row.uid, position=row.position, page=row.page, page_end=row.page_end,
        section=row.section, context=row.context or "", text=row.text, table_html=row.table_html, scores=scores,
        neighbour_of=neighbour_of,
        duplicates=duplicates,
        document=DocumentRef(id=doc.id, uid=doc.uid, title=doc.title, source_uri=doc.source_uri,
                             media_type=doc.media_type, file_type=doc.file_type, pages=doc.pages),
    )
