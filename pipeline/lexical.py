"""A BM25 index over chunk texts, as one sparse matrix: build, save, load, search with an id filter.

Scores are Okapi BM25 (k1=1.2, b=0.75). The term-by-chunk weight matrix is precomputed, so a query is a
sparse row sum: ~1 ms per 10k chunks. The index is derived data: the store rebuilds it from SQL when its
generation does not match, so it never needs to survive a crash.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
STOPWORDS = frozenset(
    "a an and are as at be been but by for from has have he her his i in is it its of on or she that the "
    "their them they this to was were what when where which who whom why will with you your do does did "
    "not no can could would should how than then there these those into about".split()
)


def tokenize(text: str) -> list[str]:
    return [t for t in (m.group(0).lower() for m in TOKEN_RE.finditer(text)) if t not in STOPWORDS]


class BM25Index:
    def __init__(self, ids: np.ndarray, vocab: dict[str, int], weights: sparse.csr_matrix) -> None:
        self.ids = ids  # (N,) int64 chunk row ids, column order of `weights`
        self.vocab = vocab
        self.weights = weights  # (V, N) BM25 term weights

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: Sequence[int], texts: Iterable[str], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        vocab: dict[str, int] = {}
        rows, cols, vals, lengths = [], [], [], []
        for j, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths.append(sum(counts.values()))
            for term, c in counts.items():
                rows.append(vocab.setdefault(term, len(vocab)))
                cols.append(j)
                vals.append(c)
        n = len(lengths)
        ids_arr = np.asarray(list(ids), dtype=np.int64)
        if n == 0:
            return cls(ids_arr, vocab, sparse.csr_matrix((0, 0), dtype=np.float32))
        tf = sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(vocab), n))
        length = np.asarray(lengths, np.float32)
        df = np.diff(tf.indptr).astype(np.float32)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * length / max(length.mean(), 1e-9))  # per column
        tf = tf.tocoo()
        w = tf.data * (k1 + 1) / (tf.data + norm[tf.col]) * idf[tf.row]
        return cls(ids_arr, vocab, sparse.csr_matrix((w.astype(np.float32), (tf.row, tf.col)), shape=tf.shape))

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); `allowed` is a boolean mask over columns (None: all)."""
        terms = [self.vocab[t] for t in tokenize(query) if t in self.vocab]
        if not terms or len(self.ids) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = np.asarray(self.weights[terms].sum(axis=0)).ravel()
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return scores[order].astype(np.float32), self.ids[order]

    def save(self, path: Path) -> None:
        """Write to `path` (a .npz) atomically."""
        tmp = path.with_suffix(".tmp.npz")
        w = self.weights.tocsr()
        np.savez(tmp, ids=self.ids, data=w.data, indices=w.indices, indptr=w.indptr, shape=np.asarray(w.shape),
                 vocab=np.frombuffer(json.dumps(self.vocab).encode(), dtype=np.uint8))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        z = np.load(path)
        w = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return cls(z["ids"], json.loads(z["vocab"].tobytes().decode()), w)
