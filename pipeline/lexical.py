"""A BM25 index over chunk texts: raw counts of Snowball stems in one sparse matrix; build, save, load, search a subset.

Scores are Okapi BM25 (k1=1.2, b=0.75). Invariant (access control): a search restricted by `allowed` scores
exactly as an index built over the allowed chunks alone would. The corpus statistics (chunk count N, each
query term's document frequency, the average chunk length) are computed at query time over the allowed
columns only, so an unreadable chunk changes neither the scores nor the order of a readable one: a caller
cannot learn from a score that a word exists in a document they may not read. Only the query terms'
posting lists are touched: at 100k chunks a 6-word query on a Zipf vocabulary takes ~2.7 ms p50 (all
readable) and ~1.3 ms (10% readable), 1.6-1.9x the earlier index of precomputed weights (which leaked).

Past PRUNE_POSTINGS postings a query is answered without reading its common terms' lists whole (MaxScore,
`_pruned` and `_split`): a chunk's BM25 share from one term is under that term's weight (k1 + 1) * idf,
so chunks that hold only low-weight terms can be ruled out once k candidates beat those weights summed, and
the candidates are scored by binary search in the lists of the lighter terms, dropped as soon as they cannot
reach the k-th best. The result is the exhaustive one, scores to the bit (tested); at 1M chunks (Zipf
vocabulary, 6-word queries, k=10; `benchmarks/bm25_prune.py`) p50 49 -> 2.7 ms, p95 71 -> 33 ms.

Terms are Snowball English stems (PyStemmer, C) of the lowercased words less stop words (the word rule,
`tokenize`, is the core's: pipeline.words, over pipeline.text's BM25_TOKEN_RE and BM25_STOPWORDS), so "delivered",
"delivering" and "delivers" meet, as do "indexes" and "index", "deliveries" and "delivery" (Snowball keeps
"delivered" and "delivery" apart: deliv / deliveri). An index records its stemmer (None: surface forms)
and tokenizes its queries with it, so a query never meets an index made with other terms; the file records
it too, and a file made by another stemmer, or another version of it, is rebuilt rather than mixed.

Ties are broken by column order (ascending chunk id), so equal scores always rank the same way.
The index is derived data: the store rebuilds it from SQL when its generation does not match, and when
`load` raises IndexFileError (a file from an older version or another stemmer, or a damaged one).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

from .errors import StoreError
from .words import STEMMER, stem, tokenize  # the word rule is the core's (pipeline.words)

__all__ = ["FORMAT", "BM25Index", "IndexFileError"]

PRUNE_POSTINGS = 200_000  # a query reading fewer postings than this sums them all (a few ms)
SPLIT = 0.25  # a pruned search of common terms only sums the lists of terms weighing at least this share of the top one
PRUNE_SHARE = 1 / 8  # a pruned search scores at most this share of the readable chunks, else it reads every list
MASKS = 8  # access masks whose statistics a search keeps (one per group set of the recent callers)
FORMAT = 3  # 1 (no "format" key): precomputed weights over all chunks; 2: raw counts + lengths; 3: + stemmer


class IndexFileError(StoreError):
    """A lexical index file that this version cannot use (older format, other stemmer, or damaged): rebuild it from SQL."""


def _merge_by_stem(words: dict[str, int], tf: sparse.csr_matrix) -> tuple[dict[str, int], sparse.csr_matrix]:
    """(stem -> row, (S, N) counts) from (word -> row, (V, N) counts): a word's row is added to its stem's row."""
    stems: dict[str, int] = {}
    to_stem = np.fromiter((stems.setdefault(stem(w), len(stems)) for w in words), np.int64, len(words))  # (V,)
    merge = sparse.csr_matrix((np.ones(len(words), np.int32), (to_stem, np.arange(len(words)))),
                              shape=(len(stems), len(words)), dtype=np.int32)  # (S, V) 0/1
    return stems, sparse.csr_matrix(merge @ tf, dtype=np.int32)


@dataclass
class _MaskStats:
    """What BM25 counts over the chunks an access mask allows: their number, their summed length, and each
    query term's document frequency among them (row -> df, filled as terms are asked for)."""

    packed: np.ndarray  # the mask, np.packbits
    n: int
    total: int
    df: dict[int, int]


class BM25Index:
    """Term counts by chunk, with chunk lengths; `search` derives the BM25 weights for the chunks it may score."""

    def __init__(self, ids: np.ndarray, vocab: dict[str, int], counts: sparse.csr_matrix, lengths: np.ndarray,
                 k1: float = 1.2, b: float = 0.75, stemmer: str | None = STEMMER) -> None:
        if stemmer not in (STEMMER, None):
            raise ValueError(f"stemmer must be {STEMMER!r} or None (surface forms), not {stemmer!r}")
        self.ids = ids  # (N,) int64 chunk row ids, column order of `counts`
        self.vocab = vocab  # term -> row of `counts`
        self.stemmer = stemmer  # how the terms were made; queries are tokenized the same way
        self.counts = counts  # (V, N) int32 term counts, CSR: row t is term t's posting list
        self.lengths = lengths  # (N,) int64 tokens per chunk
        self.k1, self.b = float(k1), float(b)
        self._total_length = int(lengths.sum())
        self._posting_lengths = lengths.astype(np.int32)[counts.indices]  # aligned with counts.data: no gather per query
        self._masks: OrderedDict[bytes, _MaskStats] = OrderedDict()  # the statistics of the last MASKS masks
        self._masks_lock = threading.Lock()
        self._aligned: np.ndarray | None = None  # the last id array found equal to `ids` (compared once, not per query)

    def __len__(self) -> int:
        return len(self.ids)

    def aligned_with(self, ids: np.ndarray) -> bool:
        """Whether `ids` (a catalog's, ascending) are this index's chunk ids in this order. The array last found
        equal is remembered, so a catalog asked about query after query is compared once (1M ids: ~1 ms)."""
        if ids is self._aligned:
            return True
        if not np.array_equal(self.ids, ids):
            return False
        self._aligned = ids
        return True

    @classmethod
    def build(cls, ids: Sequence[int], texts: Iterable[str], k1: float = 1.2, b: float = 0.75,
              stemmed: bool = True) -> "BM25Index":
        """Index `texts` (one per id); `stemmed`: terms are Snowball stems (default), else surface forms.

        Counted by surface form first, then the rows of the words that share a stem are summed: each distinct
        word is stemmed once per build, not once per occurrence (the counts equal those of `tokenize`'s stems)."""
        vocab: dict[str, int] = {}
        rows, cols, vals, lengths = [], [], [], []
        for j, text in enumerate(texts):
            counts = Counter(tokenize(text, stemmed=False))
            lengths.append(sum(counts.values()))
            for term, c in counts.items():
                rows.append(vocab.setdefault(term, len(vocab)))
                cols.append(j)
                vals.append(c)
        ids_arr = np.asarray(list(ids), dtype=np.int64)
        if len(ids_arr) != len(lengths):
            raise ValueError(f"{len(ids_arr)} ids but {len(lengths)} texts")
        tf = sparse.csr_matrix((np.asarray(vals, np.int32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                               shape=(len(vocab), len(lengths)), dtype=np.int32)
        if stemmed:
            vocab, tf = _merge_by_stem(vocab, tf)
        tf.sort_indices()  # each posting list in column order
        return cls(ids_arr, vocab, tf, np.asarray(lengths, np.int64), k1, b, STEMMER if stemmed else None)

    def updated(self, keep: np.ndarray, ids: Sequence[int], texts: Sequence[str]) -> "BM25Index":
        """A new index: this one's columns that `keep` (a (N,) bool mask) marks, plus `texts` (one per id, none
        of them here already). It scores every query as an index built over those chunks would; only the new
        texts are tokenized. A term left with no chunk keeps its (empty) row."""
        keep = np.asarray(keep, dtype=bool)
        if keep.all() and not len(ids):
            return self
        add = BM25Index.build(ids, texts, self.k1, self.b, stemmed=self.stemmer is not None)
        vocab = dict(self.vocab)
        remap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in sorted(add.vocab, key=add.vocab.__getitem__)),
                            np.int64, len(add.vocab))  # new index's row -> row here
        all_ids = np.concatenate([self.ids[keep], add.ids])
        lengths = np.concatenate([self.lengths[keep], add.lengths])
        order = np.argsort(all_ids, kind="stable")  # columns stay in ascending id order (ties rank by it)
        column = np.empty_like(order)  # position in all_ids -> its column
        column[order] = np.arange(len(order))
        old, new = (self.counts if keep.all() else self.counts[:, keep]).tocoo(), add.counts.tocoo()
        counts = sparse.csr_matrix(
            (np.concatenate([old.data, new.data]),
             (np.concatenate([old.row, remap[new.row]]), column[np.concatenate([old.col, new.col + old.shape[1]])])),
            shape=(len(vocab), len(all_ids)), dtype=np.int32)
        counts.sort_indices()
        all_ids, lengths = all_ids[order], lengths[order]
        return BM25Index(all_ids, vocab, counts, lengths, self.k1, self.b, self.stemmer)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) among the columns `allowed` marks (a (N,) bool mask; None: all), scored with the
        statistics of those columns alone; ties in column order."""
        n_all = len(self.ids)
        terms = tokenize(query, self.stemmer is not None)
        query_terms = Counter(self.vocab[t] for t in terms if t in self.vocab)  # row -> count, query order
        stats = None
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (n_all,):
                raise ValueError(f"allowed must be a bool mask of shape ({n_all},), not {allowed.shape}")
            stats = self._mask_stats(allowed)
            n, total = stats.n, stats.total
        else:
            n, total = n_all, self._total_length
        if not query_terms or n == 0 or k < 1:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        avgdl = max(total / n, 1e-9)
        k1, b = self.k1, self.b
        base, slope = k1 * (1 - b), k1 * b / avgdl  # length normalisation: base + slope * length
        indptr, indices = self.counts.indptr, self.counts.indices
        postings = []  # (lo, hi, df, weight) per distinct query term with a readable posting, query order
        for row, qtf in query_terms.items():
            lo, hi = int(indptr[row]), int(indptr[row + 1])
            if stats is None:
                df = hi - lo
            elif (df := stats.df.get(row)) is None:
                df = stats.df[row] = int(np.count_nonzero(allowed[indices[lo:hi]]))
            if df:
                idf = np.log1p((n - df + 0.5) / (df + 0.5))  # > 0 for every df <= n
                postings.append((lo, hi, df, (k1 + 1) * idf * qtf))  # weight: every posting scores under it
        if not postings:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        found = self._pruned(postings, k, n, allowed, base, slope) if sum(p[2] for p in postings) >= PRUNE_POSTINGS else None
        if found is None:
            columns, scores = self._exhaustive(postings, allowed, base, slope)
        else:
            columns, scores = found
        if len(columns) > k:
            kth = -np.partition(-scores, k - 1)[k - 1]  # the k-th best score
            top = scores > kth
            tied = np.flatnonzero(scores == kth)[: k - int(top.sum())]  # ties in column order
            top[tied] = True
            columns, scores = columns[top], scores[top]
        order = np.argsort(-scores, kind="stable")  # columns ascend, so equal scores rank by column
        return scores[order].astype(np.float32), self.ids[columns[order]]

    def _mask_stats(self, allowed: np.ndarray) -> "_MaskStats":
        """The statistics of the chunks `allowed` marks: counted once per mask and kept for the next searches
        with the same one (a caller's groups give the same mask until the store changes, which makes a new
        index). A term's document frequency is counted at its first query. Kept by the mask itself, compared
        whole, so one mask's statistics never serve another."""
        packed = np.packbits(allowed)
        key = hashlib.blake2b(packed.tobytes(), digest_size=16).digest()
        with self._masks_lock:
            stats = self._masks.get(key)
            if stats is not None and np.array_equal(stats.packed, packed):
                self._masks.move_to_end(key)
                return stats
        stats = _MaskStats(packed, int(np.count_nonzero(allowed)), int(self.lengths[allowed].sum()), {})
        with self._masks_lock:
            self._masks[key] = stats
            while len(self._masks) > MASKS:
                self._masks.popitem(last=False)
        return stats

    def _term(self, lo: int, hi: int, weight: float, base: float, slope: float, at: np.ndarray | None = None):
        """A posting list's (columns, BM25 contributions): all of it, or its entries at the positions `at`."""
        cols, tf, length = self.counts.indices[lo:hi], self.counts.data[lo:hi], self._posting_lengths[lo:hi]
        if at is not None:
            cols, tf, length = cols[at], tf[at], length[at]
        return cols, tf * weight / (tf + (base + slope * length))  # float64

    def _exhaustive(self, postings, allowed, base, slope) -> tuple[np.ndarray, np.ndarray]:
        """Every scored column (ascending) and its score: each posting list read whole."""
        scores = np.zeros(len(self.ids))
        for lo, hi, _, weight in postings:  # query-term order; a term's columns are distinct, so += adds once each
            at = None if allowed is None else np.flatnonzero(allowed[self.counts.indices[lo:hi]])
            cols, contribution = self._term(lo, hi, weight, base, slope, at)
            scores[cols] += contribution
        # the same float operations, in the same order, as an index over the allowed columns alone would do, so
        # the scores are equal to the last bit
        columns = np.flatnonzero(scores > 0)
        return columns, scores[columns]

    def _pruned(self, postings, k, n, allowed, base, slope) -> tuple[np.ndarray, np.ndarray] | None:
        """The exhaustive result's top k without reading every posting list whole (MaxScore).

        Terms are taken rarest first; each one's chunks not yet seen become candidates. A chunk holding none of
        the terms taken so far scores under the weights of the terms left, summed (a posting's share
        tf / (tf + K) is under 1). So once the k-th best candidate beats that sum, no other chunk can reach the
        top k, and the result is exact. Before there is a k-th best, the k new chunks this term favours most are
        scored first, to have one; then a new chunk whose share of this term plus that sum cannot beat it is not
        scored, and one is dropped while it is scored as soon as it cannot (`_score_new`).
        When the candidates would pass PRUNE_SHARE of the readable chunks, `_split` tries; None: read everything."""
        indices = self.counts.indices
        order = sorted(range(len(postings)), key=lambda i: -postings[i][3])  # highest weight (rarest) first
        left = sum(p[3] for p in postings)  # weights of the terms not taken yet
        seen = np.zeros(len(self.ids), bool)  # scored, or ruled out
        columns, scores, limit, kth = [], [], PRUNE_SHARE * n, None

        def score(j: int, chunks: np.ndarray, own: np.ndarray) -> float | None:  # the k-th best so far
            found = self._score_new(postings, order[j:], chunks, own, kth, base, slope)
            columns.append(found[0])
            scores.append(found[1])
            pool = np.concatenate(scores)
            return -np.partition(-pool, k - 1)[k - 1] if len(pool) >= k else None  # (None: fewer than k yet)

        for j, i in enumerate(order):
            lo, hi, df, weight = postings[i]
            left -= weight
            cols = indices[lo:hi]
            at = np.flatnonzero(~seen[cols] if allowed is None else allowed[cols] & ~seen[cols])
            new = cols[at]
            seen[new] = True
            # a new chunk holds none of the terms taken before: it scores under its share of this term plus the
            # weights of the terms left
            own = self._term(lo, hi, weight, base, slope, at)[1]
            need = k - sum(map(len, columns))  # (while kth is None, every candidate so far was kept)
            if kth is None and len(new) >= need:  # no k-th best yet: score the new chunks this term favours
                best = np.zeros(len(new), bool)  # most first, to have one
                best[np.argpartition(-own, need - 1)[:need]] = True
                limit -= need
                kth = score(j, new[best], own[best])
                new, own = new[~best], own[~best]
            if kth is not None:
                keep = own + left > kth * (1 - 1e-9)  # the others cannot beat the k-th best already found
                new, own = new[keep], own[keep]
            limit -= len(new)
            if limit < 0:
                return self._split(postings, k, n, allowed, base, slope)
            kth = score(j, new, own)
            if kth is not None and kth > left * (1 + 1e-9):
                columns = np.concatenate(columns)
                at = np.argsort(columns)
                return columns[at], np.concatenate(scores)[at]
        return None

    def _score_new(self, postings, terms: Sequence[int], chunks: np.ndarray, own: np.ndarray, kth: float | None,
                   base: float, slope: float) -> tuple[np.ndarray, np.ndarray]:
        """(chunks, their full scores) for chunks that hold the term terms[0] (`own`: their shares of it) and
        none of the query's terms weighing more. The lighter terms, terms[1:] (heaviest first), are looked up
        by binary search; a chunk is dropped as soon as what it holds so far plus the weights of the terms not
        yet looked up cannot beat `kth`. The shares are summed in query-term order, as the exhaustive sum does:
        the same scores, to the bit (a term a chunk lacks adds 0.0, which changes no sum)."""
        shares = {terms[0]: own}
        partial, rest = own.copy(), sum(postings[i][3] for i in terms[1:])
        for i in terms[1:]:
            lo, hi, _, weight = postings[i]
            rest -= weight
            shares[i] = share = self._shares(lo, hi, weight, base, slope, chunks)
            partial += share
            if kth is not None:
                keep = partial + rest > kth * (1 - 1e-9)
                if not keep.all():
                    chunks, partial = chunks[keep], partial[keep]
                    shares = {t: v[keep] for t, v in shares.items()}
        total = np.zeros(len(chunks))
        for i in sorted(shares):  # postings are in query-term order
            total += shares[i]
        return chunks, total

    def _split(self, postings, k, n, allowed, base, slope) -> tuple[np.ndarray, np.ndarray] | None:
        """For queries of common terms only: the terms of weight at least SPLIT of the highest are summed over
        their whole lists (partial scores); a chunk can gain at most the other terms' weights, summed (`left`),
        so only chunks whose partial score plus `left` passes the k-th best partial score can reach the top k
        (and none without a summed term, if `left` itself does not pass it). Those are scored in full (exact, as
        in `_pruned`); None when they would be too many."""
        top = max(p[3] for p in postings)
        essential = [p for p in postings if p[3] >= SPLIT * top]
        left = sum(p[3] for p in postings if p[3] < SPLIT * top)
        if not left:
            return None
        columns, partial = self._exhaustive(essential, allowed, base, slope)
        if len(columns) < k:
            return None
        floor = -np.partition(-partial, k - 1)[k - 1]  # the k-th best partial score: the k-th full one is at least it
        if left > floor * (1 - 1e-9):  # a chunk with none of the summed terms could still reach the top k
            return None
        candidates = columns[partial + left > floor * (1 - 1e-9)]
        if len(candidates) > PRUNE_SHARE * n:
            return None
        return candidates, self._score_for(postings, candidates, base, slope)

    def _score_for(self, postings, candidates: np.ndarray, base, slope) -> np.ndarray:
        """The BM25 scores of `candidates` (ascending columns), each query term looked up, in query-term order."""
        scores = np.zeros(len(candidates))
        for lo, hi, _, weight in postings:
            scores += self._shares(lo, hi, weight, base, slope, candidates)
        return scores

    def _shares(self, lo: int, hi: int, weight: float, base: float, slope: float, chunks: np.ndarray) -> np.ndarray:
        """Each of `chunks`' BM25 share of one term (its posting list, found by binary search); 0.0 for a chunk
        the list does not hold (which, added, changes no sum)."""
        cols = self.counts.indices[lo:hi]
        at = np.searchsorted(cols, chunks)
        hit = at < len(cols)
        hit[hit] = cols[at[hit]] == chunks[hit]
        out = np.zeros(len(chunks))
        out[hit] = self._term(lo, hi, weight, base, slope, at[hit])[1]
        return out

    def save(self, path: Path) -> None:
        """Write to `path` (a .npz): a temp file of this thread's own, fsync, rename."""
        path = Path(path)
        tmp = path.with_name(f"{path.name.removesuffix('.npz')}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
        c = self.counts
        with open(tmp, "wb") as f:
            np.savez(f, format=np.int64(FORMAT), ids=self.ids, data=c.data, indices=c.indices, indptr=c.indptr,
                     shape=np.asarray(c.shape, np.int64), lengths=self.lengths, params=np.asarray([self.k1, self.b]),
                     stemmer=np.asarray(self.stemmer or ""),  # "": surface forms
                     vocab=np.frombuffer(json.dumps(self.vocab).encode(), dtype=np.uint8))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, stemmed: bool = True) -> "BM25Index":
        """Read a file written by `save`; IndexFileError for an older format, terms made otherwise than `stemmed`
        asks (another stemmer or version of it, or none), or a damaged file: rebuild it. FileNotFoundError when
        there is none."""
        want = STEMMER if stemmed else None
        try:
            with np.load(path) as z:
                if "format" not in z.files or int(z["format"]) != FORMAT:
                    found = int(z["format"]) if "format" in z.files else 1
                    raise IndexFileError(f"{path} is a format {found} lexical index, this version reads format "
                                         f"{FORMAT}; it is rebuilt from the store's SQL")
                got = str(z["stemmer"]) or None
                if got != want:
                    raise IndexFileError(f"{path} holds terms made by {got or 'no stemmer'}, this index uses "
                                         f"{want or 'no stemmer'}; it is rebuilt from the store's SQL")
                counts = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"]))
                ids, lengths, (k1, b) = z["ids"], z["lengths"].astype(np.int64), z["params"]
                vocab = json.loads(z["vocab"].tobytes().decode())
        except (IndexFileError, FileNotFoundError):
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise IndexFileError(f"cannot read the lexical index {path} ({e}); it is rebuilt from the store's SQL") from e
        if not (len(ids) == len(lengths) == counts.shape[1] and len(vocab) == counts.shape[0]):
            raise IndexFileError(f"the lexical index {path} does not agree with itself; it is rebuilt from the store's SQL")
        return cls(ids, vocab, counts, lengths, float(k1), float(b), want)
