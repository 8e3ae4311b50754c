"""BM25 index: ranking, id filter, statistics over the allowed chunks only, save/load round trip, old files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.lexical import BM25Index, IndexFileError, tokenize


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


# -- statistics over the allowed columns only (access control) ------------------------------------------
CORPUS = [
    "merger talks with the canteen supplier stalled",
    "canteen menu for the week: soup, salad and curry",
    "secret merger plan for the board: acquire the canteen supplier",  # column 2: the hidden one
    "salary bands and the merger timeline",
    "curry recipes from the canteen, curry every friday",
]


def test_restricted_search_equals_an_index_over_the_allowed_chunks_alone():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 15))) for _ in range(40)]
    ids = np.arange(100, 140)
    index = BM25Index.build(ids, texts)
    for trial in range(20):
        allowed = rng.random(40) < 0.5
        alone = BM25Index.build(ids[allowed], [t for t, a in zip(texts, allowed) if a])
        query = " ".join(rng.choice(words, 3))
        got, want = index.search(query, k=10, allowed=allowed), alone.search(query, k=10)
        assert got[1].tolist() == want[1].tolist() and got[0].tolist() == want[0].tolist()  # bit for bit
    everything = np.ones(40, bool)
    assert index.search("w1 w2", k=40, allowed=everything)[0].tolist() == index.search("w1 w2", k=40)[0].tolist()


def test_a_word_only_a_hidden_chunk_holds_scores_like_a_word_no_chunk_holds():
    allowed = np.array([True, True, False, True, True])
    with_secret = BM25Index.build(range(5), CORPUS)
    without = BM25Index.build(range(5), CORPUS[:2] + ["holiday rota for the board: nothing about suppliers"] + CORPUS[3:])
    for query in ("merger", "canteen supplier", "secret canteen", "acquire curry"):
        a, b = with_secret.search(query, k=5, allowed=allowed), without.search(query, k=5, allowed=allowed)
        assert a[1].tolist() == b[1].tolist() and np.array_equal(a[0], b[0]), query
    probe, absent = with_secret.search("canteen acquire", k=5, allowed=allowed), with_secret.search("canteen zebra", k=5, allowed=allowed)
    assert np.array_equal(probe[0], absent[0]) and 2 not in probe[1]
    assert with_secret.search("acquire", k=5, allowed=allowed)[1].size == 0


def test_ties_rank_in_column_order_and_k_cuts_inside_a_tie():
    index = BM25Index.build([7, 3, 9, 5], ["alpha beta", "alpha beta", "alpha beta", "gamma"])
    scores, ids = index.search("alpha", k=2)
    assert ids.tolist() == [7, 3] and scores[0] == scores[1]
    assert index.search("alpha", k=2, allowed=np.array([False, True, True, True]))[1].tolist() == [3, 9]
    with pytest.raises(ValueError, match="mask"):
        index.search("alpha", k=2, allowed=np.ones(3, bool))


def test_old_format_and_damaged_files_ask_for_a_rebuild(tmp_path: Path):
    index = BM25Index.build([1, 2], ["alpha beta", "gamma"])
    old = tmp_path / "old.npz"  # format 1: precomputed weights, no "format" key
    np.savez(old, ids=index.ids, data=np.ones(3, np.float32), indices=np.array([0, 0, 1]), indptr=np.array([0, 1, 2, 3]),
             shape=np.array([3, 2]), vocab=np.frombuffer(b'{"alpha": 0, "beta": 1, "gamma": 2}', dtype=np.uint8))
    with pytest.raises(IndexFileError, match="format 1"):
        BM25Index.load(old)
    good = tmp_path / "lex.npz"
    index.save(good)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:40])  # a crash before the data reached the disk
    with pytest.raises(IndexFileError, match="rebuilt"):
        BM25Index.load(tmp_path / "cut.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npz", "lex.npz", "old.npz"]  # no temp file left
    assert BM25Index.load(good).search("gamma", k=1)[1].tolist() == [2]
