"""The stemmed word rule: Snowball English stems (PyStemmer) of BM25 terms.

The lexical index (pipeline.lexical), retrieval's entity matching and the sculpt model's relevance terms
stem with `stem`, so "delivered", "delivering" and "delivers" meet, as do "indexes" and "index". An index
records `STEMMER` and a file made by another stemmer, or another version of it, is rebuilt rather than mixed.
Kept apart from pipeline.text because it loads a C extension.
"""

from __future__ import annotations

import functools
import threading

import Stemmer  # PyStemmer: the Snowball stemmers in C

from .text import BM25_STOPWORDS, BM25_TOKEN_RE

__all__ = ["STEMMER", "stem", "tokenize", "ENTITY_NOISE"]

STEMMER = f"snowball-english (PyStemmer {Stemmer.version()})"  # what `tokenize` stems with; recorded in each index

_local = threading.local()  # a PyStemmer object is not thread-safe: one per thread


@functools.lru_cache(maxsize=1 << 18)  # text is Zipf-shaped: most tokens are repeats, a hit costs a dict lookup
def stem(word: str) -> str:
    """The Snowball English stem of a lowercased word ("kernel’s" and "kernel's" -> "kernel")."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english", 0)  # no cache of its own: lru_cache is the cache
    return stemmer.stemWord(word.replace("’", "'"))


def tokenize(text: str, stemmed: bool = True) -> list[str]:
    """The BM25 terms of `text`: lowercased words less stop words, as Snowball English stems unless `stemmed`
    is False."""
    words = [t for t in (m.group(0).lower() for m in BM25_TOKEN_RE.finditer(text)) if t not in BM25_STOPWORDS]
    return [stem(w) for w in words] if stemmed else words


# words that name no one in particular (stems): "ACME Corp." is named by "ACME", not by "corporation"
ENTITY_NOISE = frozenset(tokenize("inc incorporated corp corporation company co ltd limited llc plc lp group "
                                  "holding holdings sa ag nv gmbh the of and & international"))
