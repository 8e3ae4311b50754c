"""BM25 index: ranking, id filter, word forms (stems), statistics over the allowed chunks only, save/load round
trip, old files and files of another stemmer rebuilt."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline import Store
from pipeline.config import Settings
from pipeline.lexical import BM25Index, IndexFileError
from pipeline.words import STEMMER, tokenize
from pipeline.schema import Document
from pipeline.store import ChunkInput


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


def test_tokenize_lowercases_drops_stopwords_and_stems():
    assert tokenize("The Kernel's SCHEDULER and the CPU") == ["kernel", "schedul", "cpu"]
    assert tokenize("The Kernel's SCHEDULER and the CPU", stemmed=False) == ["kernel's", "scheduler", "cpu"]
    assert tokenize("kernel’s") == tokenize("kernel's")  # typographic apostrophe
    assert tokenize("What was it that they did not do about these?") == []  # stop words go before stemming
    assert tokenize("Q3 2023 10-Q") == ["q3", "2023", "10", "q"]


WORD_FORMS = [
    "the parcel was delivered to the warehouse on monday",  # 0
    "rebuilding the search index after an upgrade",  # 1
    "late deliveries are refunded",  # 2
    "our canteen serves curry on fridays",  # 3
]


@pytest.mark.parametrize("query, want", [
    ("who delivers parcels", 0), ("delivering", 0), ("how are indexes rebuilt", 1), ("indexing", 1),
    ("delivery refund", 2), ("refunds for a delivery", 2),
])
def test_a_query_meets_other_forms_of_its_words(query: str, want: int):
    index = BM25Index.build(range(4), WORD_FORMS)
    assert index.search(query, k=1)[1].tolist() == [want]
    assert index.stemmer == STEMMER
    surface = BM25Index.build(range(4), WORD_FORMS, stemmed=False)  # what the index did before stems
    assert surface.stemmer is None and want not in surface.search(query, k=4)[1].tolist()


def test_the_index_holds_the_stems_tokenize_gives_each_chunk():
    texts = WORD_FORMS + ["Indexes, indexing, the index", "", "the of and", "kernel’s Kernel's KERNELS"]
    for stemmed in (True, False):
        index = BM25Index.build(range(len(texts)), texts, stemmed=stemmed)
        term = {row: t for t, row in index.vocab.items()}
        dense = index.counts.toarray()
        for j, text in enumerate(texts):
            assert {term[r]: int(c) for r, c in enumerate(dense[:, j]) if c} == Counter(tokenize(text, stemmed))
            assert index.lengths[j] == len(tokenize(text, stemmed))


def test_snowball_keeps_delivered_and_delivery_apart():
    """Snowball English stems "delivered" to "deliv" and "delivery" to "deliveri": they do not meet. Pinned so
    a change of stemmer that merges them (or splits the forms above) is noticed."""
    index = BM25Index.build(range(4), WORD_FORMS)
    assert 2 not in index.search("delivered", k=4)[1].tolist()


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


FORMS = ["index", "indexes", "indexing", "deliver", "delivered", "deliveries", "delivery", "merger", "mergers",
         "merging", "canteen", "canteens"]


@pytest.mark.parametrize("words", [[f"w{i}" for i in range(12)], FORMS], ids=["plain words", "word forms"])
def test_restricted_search_equals_an_index_over_the_allowed_chunks_alone(words: list[str]):
    rng = np.random.default_rng(0)
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


def test_a_mask_s_statistics_are_kept_for_it_alone():
    """A search keeps the statistics of the masks it was given (their chunk count, length and each term's
    document frequency among them). Callers' masks that come back, in any order and past the number kept, still
    score exactly as an index over their chunks alone; a mask equal in content to a kept one shares its entry."""
    from pipeline import lexical

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(10)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(60)]
    ids = np.arange(60) + 1
    index = BM25Index.build(ids, texts)
    masks = [np.ones(60, bool)] + [rng.random(60) < share for share in (0.5, 0.2, 0.05) for _ in range(4)]
    alone = [BM25Index.build(ids[m], [t for t, a in zip(texts, m) if a]) for m in masks]
    for trial in range(120):
        i = int(rng.integers(len(masks)))  # 13 masks, 8 kept: hits, misses and evictions
        query = " ".join(rng.choice(words, 3))
        got, want = index.search(query, k=10, allowed=masks[i].copy()), alone[i].search(query, k=10)
        assert got[1].tolist() == want[1].tolist() and got[0].tolist() == want[0].tolist(), (i, query)
        assert len(index._masks) <= lexical.MASKS
    again = masks[-1].copy()
    assert index._mask_stats(again) is index._mask_stats(masks[-1])


def test_a_word_only_a_hidden_chunk_holds_scores_like_a_word_no_chunk_holds():
    allowed = np.array([True, True, False, True, True])
    with_secret = BM25Index.build(range(5), CORPUS)
    without = BM25Index.build(range(5), CORPUS[:2] + ["holiday rota for the board: nothing about suppliers"] + CORPUS[3:])
    for query in ("merger", "canteen supplier", "secret canteen", "acquire curry", "mergers", "suppliers acquiring"):
        a, b = with_secret.search(query, k=5, allowed=allowed), without.search(query, k=5, allowed=allowed)
        assert a[1].tolist() == b[1].tolist() and np.array_equal(a[0], b[0]), query
    probe, absent = with_secret.search("canteen acquire", k=5, allowed=allowed), with_secret.search("canteen zebra", k=5, allowed=allowed)
    assert np.array_equal(probe[0], absent[0]) and 2 not in probe[1]
    for form in ("acquire", "acquired", "acquiring", "acquires"):  # every form of the hidden word scores nothing
        assert with_secret.search(form, k=5, allowed=allowed)[1].size == 0


def test_ties_rank_in_column_order_and_k_cuts_inside_a_tie():
    index = BM25Index.build([7, 3, 9, 5], ["alpha beta", "alpha beta", "alpha beta", "gamma"])
    scores, ids = index.search("alpha", k=2)
    assert ids.tolist() == [7, 3] and scores[0] == scores[1]
    assert index.search("alpha", k=2, allowed=np.array([False, True, True, True]))[1].tolist() == [3, 9]
    with pytest.raises(ValueError, match="mask"):
        index.search("alpha", k=2, allowed=np.ones(3, bool))



def test_alignment_with_a_catalog_s_ids_is_remembered_for_that_array_only():
    index = BM25Index.build([3, 5, 8], ["alpha", "beta", "gamma"])
    same = np.array([3, 5, 8], np.int64)
    assert index.aligned_with(same) and index.aligned_with(same)
    assert not index.aligned_with(np.array([3, 5, 9], np.int64))  # another array is compared, not taken on trust
    assert not index.aligned_with(np.array([3, 5], np.int64))
    assert index.aligned_with(np.array([3, 5, 8], np.int64))

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


def _save_format_2(index: BM25Index, path: Path) -> None:
    """The file the previous version wrote: raw counts and lengths, surface-form terms, no stemmer recorded."""
    c = index.counts
    np.savez(path, format=np.int64(2), ids=index.ids, data=c.data, indices=c.indices, indptr=c.indptr,
             shape=np.asarray(c.shape, np.int64), lengths=index.lengths, params=np.asarray([index.k1, index.b]),
             vocab=np.frombuffer(json.dumps(index.vocab).encode(), dtype=np.uint8))


def test_a_file_of_another_format_or_stemmer_asks_for_a_rebuild(tmp_path: Path):
    surface = BM25Index.build([1, 2, 3, 4], WORD_FORMS, stemmed=False)
    _save_format_2(surface, tmp_path / "v2.npz")
    with pytest.raises(IndexFileError, match="format 2"):
        BM25Index.load(tmp_path / "v2.npz")
    surface.save(tmp_path / "surface.npz")
    with pytest.raises(IndexFileError, match="no stemmer"):
        BM25Index.load(tmp_path / "surface.npz")  # the default reader wants stems
    assert BM25Index.load(tmp_path / "surface.npz", stemmed=False).search("delivered", k=1)[1].tolist() == [1]
    stemmed = BM25Index.build([1, 2, 3, 4], WORD_FORMS)
    stemmed.save(tmp_path / "stems.npz")
    with pytest.raises(IndexFileError, match="PyStemmer"):
        BM25Index.load(tmp_path / "stems.npz", stemmed=False)
    again = BM25Index.load(tmp_path / "stems.npz")
    assert again.stemmer == STEMMER and again.search("delivering", k=1)[1].tolist() == [1]
    with np.load(tmp_path / "stems.npz") as z:  # a file written by another stemmer version
        np.savez(tmp_path / "other.npz", **{**{k: z[k] for k in z.files}, "stemmer": np.asarray("snowball-english (PyStemmer 0.1)")})
    with pytest.raises(IndexFileError, match="PyStemmer 0.1"):
        BM25Index.load(tmp_path / "other.npz")


def test_a_store_built_before_stemming_is_rebuilt_with_stems(tmp_path: Path):
    settings = Settings(store_dir=tmp_path / "store")
    store = Store(settings)
    vectors = np.eye(8, dtype=np.float32)
    with store.writer():
        store.set_state(embedding_model="none", embedding_dim="8")
        with store.transaction() as tx:
            for i, text in enumerate(WORD_FORMS):
                doc = Document(uid=f"d{i}", source_uri=f"file:///d{i}.txt", title=f"d{i}", media_type="text/plain",
                               file_type="txt", size=len(text), mtime=0.0, sha256=f"{i:064x}", pages=1)
                tx.put_document(doc, ["public"], [ChunkInput(uid=f"d{i}-0", position=0, text=text, section="", page=1,
                                                             page_end=1, token_count=0, kinds="NarrativeText",
                                                             table_html=None, vector=vectors[i])])
        store.flush_indexes()
    path = store.dir / f"lexical-{store.generation}.npz"
    ids = store.lexical_index().ids
    _save_format_2(BM25Index.build(ids, (f"\n{t}" for t in WORD_FORMS), stemmed=False), path)  # as the last version left it

    reopened = Store(settings)
    index = reopened.lexical_index()
    assert index.stemmer == STEMMER and index.search("delivering", k=1)[1].tolist() == [ids[0]]
    with reopened.writer():
        reopened.flush_indexes()  # the old file was dropped: written again, with stems
    assert BM25Index.load(path).search("indexes", k=1)[1].tolist() == [ids[1]]


def test_an_updated_index_scores_like_one_built_over_the_same_chunks():
    rng = np.random.default_rng(3)
    words = FORMS + [f"w{i}" for i in range(30)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 20))) for _ in range(60)]
    ids = np.arange(10, 70)
    index = BM25Index.build(ids, texts)
    keep = rng.random(60) < 0.8
    new_texts = [" ".join(rng.choice(words + ["zebra", "quokka"], rng.integers(1, 20))) for _ in range(12)]
    for new_ids in (np.arange(100, 112), np.arange(0, 12) * 5 + 11):  # after every id, and among them
        new_ids = new_ids[~np.isin(new_ids, ids[keep])]
        updated = index.updated(keep, new_ids.tolist(), new_texts[:len(new_ids)])
        all_ids = np.concatenate([ids[keep], new_ids])
        order = np.argsort(all_ids)
        fresh = BM25Index.build(all_ids[order], [([t for t, k in zip(texts, keep) if k] + new_texts[:len(new_ids)])[i] for i in order])
        assert updated.ids.tolist() == fresh.ids.tolist()
        for trial in range(25):
            query = " ".join(rng.choice(words + ["zebra", "quokka"], 3))
            allowed = rng.random(len(fresh.ids)) < 0.7 if trial % 2 else None
            got, want = updated.search(query, k=10, allowed=allowed), fresh.search(query, k=10, allowed=allowed)
            assert got[1].tolist() == want[1].tolist() and got[0].tolist() == want[0].tolist()  # bit for bit
    assert index.updated(np.ones(60, bool), [], []) is index


def _put(store: Store, i: int, text: str, vector: np.ndarray) -> None:
    with store.transaction() as tx:
        doc = Document(uid=f"d{i}", source_uri=f"file:///d{i}.txt", title=f"d{i}", media_type="text/plain",
                       file_type="txt", size=len(text), mtime=0.0, sha256=f"{i:064x}", pages=1)
        tx.put_document(doc, ["public"], [ChunkInput(uid=f"d{i}-0", position=0, text=text, section="", page=1, page_end=1,
                                                     token_count=0, kinds="NarrativeText", table_html=None, vector=vector)])


def _corpus(n: int, seed: int, words: int) -> tuple[np.ndarray, list[str], list[str]]:
    """(n 8-d vectors, n texts of 10-12 words from a vocabulary of `words`, the vocabulary)."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(words)]
    return rng.standard_normal((n, 8)).astype(np.float32), [" ".join(rng.choice(vocabulary, 12)) for _ in range(n)], vocabulary


def _commit(writer: Store, texts: list[str], vectors: np.ndarray, add: range, delete: range = range(0)) -> None:
    """Another ingest: the documents numbered `add` put in (a transaction each), then those in `delete` taken out."""
    with writer.writer():
        writer.set_state(embedding_model="none", embedding_dim="8")
        for i in add:
            _put(writer, i, texts[i], vectors[i])
        if delete:
            with writer.transaction() as tx:
                for doc in tx.session.query(Document).filter(Document.uid.in_([f"d{i}" for i in delete])):
                    tx.delete_document(doc)


def test_a_replica_brings_its_indexes_up_by_what_changed(tmp_path: Path, monkeypatch):
    """A reader on a folder of its own (no index files for new generations) updates its BM25 and FAISS indexes
    by the chunks added and removed, and ends where one built from SQL would."""
    from pipeline.indexes import faiss_ids

    vectors, texts, vocabulary = _corpus(1300, seed=0, words=300)
    rng = np.random.default_rng(0)
    writer = Store(Settings(store_dir=tmp_path / "writer"))
    url = f"sqlite:///{tmp_path / 'writer' / 'sculptrag.db'}"
    _commit(writer, texts, vectors, add=range(1200))
    replica = Store(Settings(store_dir=tmp_path / "replica", database_url=url))
    replica.lexical_index(), replica.search_index()  # built from SQL: the folder has no files

    built: list[int] = []
    real_build = BM25Index.build.__func__
    monkeypatch.setattr(BM25Index, "build", classmethod(lambda cls, ids, *a, **k: built.append(len(list(ids))) or real_build(cls, ids, *a, **k)))
    _commit(writer, texts, vectors, add=range(1200, 1230), delete=range(0, 1200, 40))
    lexical, dense = replica.lexical_index(), replica.search_index()
    assert built == [30]  # only the 30 new chunks were tokenized
    fresh = Store(Settings(store_dir=tmp_path / "fresh", database_url=url))
    assert lexical.ids.tolist() == fresh.lexical_index().ids.tolist()
    assert faiss_ids(dense) == faiss_ids(fresh.search_index()) == set(lexical.ids.tolist())
    for q in range(20):
        query = " ".join(rng.choice(vocabulary, 4))
        a, b = lexical.search(query, k=10), fresh.lexical_index().search(query, k=10)
        assert a[1].tolist() == b[1].tolist() and a[0].tolist() == b[0].tolist()
        qv = rng.standard_normal((1, 8)).astype(np.float32)
        assert dense.search(qv, 10)[1].tolist() == fresh.search_index().search(qv, 10)[1].tolist()

    built.clear()  # most of the store replaced: built from SQL instead
    _commit(writer, texts, vectors, add=range(0), delete=range(1, 1200, 2))
    assert built == [len(replica.lexical_index().ids)] == [1230 - 30 - 600]


@pytest.mark.parametrize("flat_index_max", [10_000, 100], ids=["flat", "ivf"])
def test_a_reader_of_memory_mapped_index_files_updates_a_copy_of_them(tmp_path: Path, flat_index_max: int):
    """A reader in the writer's folder maps the flushed FAISS file (read-only); the writer then commits without
    flushing (an ingest between batches). The reader's update copies the mapped index into memory before it
    changes it (changing the mapping itself would crash the process; FAISS refuses to clone a mapped IVF)."""
    from pipeline.config import RetrievalSettings
    from pipeline.indexes import faiss_ids

    vectors, texts, _ = _corpus(700, seed=1, words=200)
    settings = Settings(store_dir=tmp_path / "store", flat_index_max=flat_index_max,
                        retrieval=RetrievalSettings(mmap_min_bytes=0))
    writer = Store(settings)
    _commit(writer, texts, vectors, add=range(600))
    with writer.writer():
        writer.flush_indexes()
    reader = Store(settings)
    mapped = reader.search_index()
    assert reader._mapped == id(mapped)
    _commit(writer, texts, vectors, add=range(600, 700), delete=range(0, 600, 30))
    updated = reader.search_index()
    assert updated is not mapped and faiss_ids(updated) == faiss_ids(Store(settings).vector_index())
    assert len(faiss_ids(mapped)) == 600  # the mapped one untouched
    assert updated.search(vectors[650:651], 1)[1][0][0] in faiss_ids(updated)


def test_skipping_the_common_terms_lists_changes_no_result(monkeypatch):
    """The pruned search (rare terms name the candidates, common ones are looked up for them) returns what reading
    every posting list returns, to the bit, with and without an access mask; and it is the path most queries take."""
    from pipeline import lexical

    rng = np.random.default_rng(1)
    vocab = np.array([f"w{i}" for i in range(3000)])
    texts = [" ".join(vocab[np.minimum(rng.zipf(1.2, 40) - 1, len(vocab) - 1)]) for _ in range(4000)]
    index = BM25Index.build(np.arange(4000) * 3 + 1, texts)
    taken, split, dropped = [], [], []
    pruned, split_search, score_new = BM25Index._pruned, BM25Index._split, BM25Index._score_new

    def spy(self, *args):
        found = pruned(self, *args)
        taken.append(found is not None)
        return found

    def split_spy(self, *args):
        found = split_search(self, *args)
        split.append(found is not None)
        return found

    def score_spy(self, postings, terms, chunks, *args):
        found = score_new(self, postings, terms, chunks, *args)
        dropped.append(len(chunks) - len(found[0]))
        return found

    monkeypatch.setattr(BM25Index, "_pruned", spy)
    monkeypatch.setattr(BM25Index, "_split", split_spy)
    monkeypatch.setattr(BM25Index, "_score_new", score_spy)
    for trial in range(60):
        query = " ".join(rng.choice(texts[rng.integers(4000)].split(), 6))
        allowed = None if trial % 3 == 0 else rng.random(4000) < (0.5 if trial % 3 == 1 else 0.05)
        k = int(rng.choice([1, 10, 50]))
        monkeypatch.setattr(lexical, "PRUNE_POSTINGS", 10**12)
        want = index.search(query, k, allowed)
        monkeypatch.setattr(lexical, "PRUNE_POSTINGS", 0)
        got = index.search(query, k, allowed)
        assert got[1].tolist() == want[1].tolist() and np.array_equal(got[0], want[0]), (query, k)
    assert len(taken) == 60 and 10 <= sum(taken) < 60, taken  # both ways are exercised
    assert sum(split) >= 5, split  # and so is the split of a query of common terms
    assert sum(d > 0 for d in dropped) >= 5, dropped  # and chunks dropped while they are scored
