"""BM25 index: ranking, id filter, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.lexical import BM25Index, tokenize


def test_bm25_ranks_rare_matching_terms_first_and_filters(tmp_path: Path):
    texts = [
        "apt-get installs packages from the Debian archive",
        "the kernel schedules processes and handles interrupts",
        "dpkg installs a single package file; apt resolves dependencies",
        "the the the the and of a",
    ]
    index = BM25Index.build([10, 11, 12, 13], texts)
    scores, ids = index.search("how does dpkg install a package", k=3)
    assert ids[0] == 12 and 11 not in ids and 13 not in ids
    assert np.all(np.diff(scores) <= 0)
    allowed = np.array([True, True, False, True])
    _, ids = index.search("dpkg installs", k=3, allowed=allowed)
    assert 12 not in ids and ids.tolist() == [10]
    index.save(tmp_path / "lex.npz")
    again = BM25Index.load(tmp_path / "lex.npz")
    assert again.search("interrupts", k=1)[1].tolist() == [11]


def test_tokenize_lowercases_and_drops_stopwords():
    assert tokenize("The Kernel's SCHEDULER and the CPU") == ["kernel's", "scheduler", "cpu"]


def test_empty_index_and_unknown_terms():
    assert len(BM25Index.build([], [])) == 0
    assert BM25Index.build([1], ["alpha beta"]).search("gamma", k=5)[1].size == 0
