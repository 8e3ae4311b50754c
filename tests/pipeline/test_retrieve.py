"""Retrieval: RRF, hybrid vs its parts, access control in every mode and index type (scores included: BM25
statistics over the readable chunks only), filters, neighbours, de-duplication, IVF vs flat, memory-mapped
search, old index files, concurrency, and one end-to-end run through ingest."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import faiss
import numpy as np
import pytest

from pipeline import Store, ingest
from pipeline.config import RetrievalSettings, Settings
from pipeline.errors import ConfigError
from pipeline.retrieve import Retriever, reciprocal_rank_fusion
from pipeline.schema import Document
from pipeline.store import ChunkInput
from pipeline.types import Hit

DIM = 64
MODES = ["dense", "lexical", "hybrid"]


class HashingEmbedder:
    """Bag of words -> signed hashed vector, normalized: similar wording, similar vector. No model."""

    model_name = "test-hashing"
    dim = DIM
    path = Path(".")

    def warm_up(self) -> None:
        pass

    def encode(self, texts):
        out = np.zeros((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                h = int(hashlib.md5(w.encode()).hexdigest(), 16)
                out[i, h % DIM] += 1.0 if (h >> 8) % 2 else -1.0
            out[i] /= max(np.linalg.norm(out[i]), 1e-9)
        return out


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def build_store(path: Path, docs: list[dict], flat_index_max: int = 5000, **retrieval) -> Store:
    """A store holding `docs`: dicts with texts (one chunk each), optional vectors, groups, uri, title, ..."""
    settings = Settings(store_dir=path, flat_index_max=flat_index_max, retrieval=RetrievalSettings(**retrieval))
    store = Store(settings)
    emb = HashingEmbedder()
    with store.writer():
        store.set_state(embedding_model=emb.model_name, embedding_dim=str(DIM))
        with store.transaction() as tx:
            for i, d in enumerate(docs):
                texts = d["texts"]
                vectors = d.get("vectors") or list(emb.encode(texts))
                doc = Document(
                    uid=f"doc{i}", source_uri=d.get("uri", f"file:///corpus/doc{i}.txt"), title=d.get("title", f"Doc {i}"),
                    media_type=d.get("media_type", "text/plain"), file_type=d.get("file_type", "txt"), size=100,
                    mtime=d.get("mtime", 1_700_000_000.0), sha256=f"{i:064x}", pages=1,
                    entity=d.get("entity"), period=d.get("period"),
                )
                if "ingested_at" in d:
                    doc.ingested_at = d["ingested_at"]
                chunks = [
                    ChunkInput(uid=f"doc{i}-{j}", position=j, text=t, section="", page=1, page_end=1,
                               token_count=len(t.split()), kinds="NarrativeText", table_html=None, vector=unit(v))
                    for j, (t, v) in enumerate(zip(texts, vectors))
                ]
                tx.put_document(doc, d.get("groups", ["public"]), chunks)
        store.flush_indexes()
    return store


def titles(hits: list[Hit]) -> list[str]:
    return [h.document.title for h in hits]


# -- fusion ----------------------------------------------------------------------------------------------
def test_rrf_scores_and_order_on_constructed_rankings():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k_rrf=60)
    assert [c for c, _ in fused] == [1, 3, 2, 4]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[4] == pytest.approx(1 / 63)
    # a heavier second ranking changes the winner; a smaller k_rrf sharpens the top ranks
    assert reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], weights=[1, 3])[0][0] == 3
    assert reciprocal_rank_fusion([[1, 2], [2, 3]], k_rrf=1)[0] == (2, pytest.approx(1 / 3 + 1 / 2))
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])


def test_hybrid_finds_what_each_ranking_alone_misses(tmp_path: Path):
    q = unit(np.eye(DIM)[0])
    near = [unit(np.eye(DIM)[0] + (0.5 + 0.1 * i) * np.eye(DIM)[i]) for i in range(1, 5)]
    far = [unit(np.eye(DIM)[10 + i]) for i in range(5)]
    docs = [{"title": "A", "texts": ["semantic paraphrase with no shared words"], "vectors": [q]}]
    docs += [{"title": "B", "texts": ["zyxel firmware flashing"], "vectors": [far[0]]}]
    docs += [{"title": f"dense{i}", "texts": [f"other topic number {i}"], "vectors": [v]} for i, v in enumerate(near)]
    docs += [{"title": f"lex{i}", "texts": [f"firmware notes {i}"], "vectors": [v]} for i, v in enumerate(far[1:])]
    store = build_store(tmp_path / "s", docs, fusion_depth=5, dense_weight=1.0, rrf_k=60)  # equal weights
    r = Retriever(store, HashingEmbedder())
    got = {m: titles(r.search("zyxel firmware", groups=["public"], k=2, mode=m, query_vector=q)) for m in MODES}
    assert got["dense"] == ["A", "dense0"] and got["lexical"][0] == "B" and "A" not in got["lexical"]
    assert set(got["hybrid"]) == {"A", "B"}  # recall@2: hybrid 1.0, dense 0.5, lexical 0.5
    hit = r.search("zyxel firmware", groups=["public"], k=1, mode="lexical", query_vector=q)[0]
    assert hit.scores.bm25 > 0 and hit.scores.bm25_rank == 1 and hit.scores.dense is None


# -- access control --------------------------------------------------------------------------------------
def acl_docs(n_public: int, n_hr: int) -> list[dict]:
    """hr chunks are the best matches for "salary review" in both rankings; public ones match less well."""
    q = unit(np.eye(DIM)[0])
    docs = [{"title": f"hr{i}", "groups": ["hr"], "texts": [f"salary review salary review {i}"],
             "vectors": [unit(q + 0.01 * i * np.eye(DIM)[1])]} for i in range(n_hr)]
    docs += [{"title": f"pub{i}", "groups": ["public"], "texts": [f"annual review of the canteen menu {i}"],
              "vectors": [unit(q + (0.5 + 0.05 * i) * np.eye(DIM)[2 + i % 50])]} for i in range(n_public)]
    return docs


@pytest.mark.parametrize("flat_index_max", [5000, 10], ids=["flat", "ivf"])
@pytest.mark.parametrize("mode", MODES)
def test_unreadable_best_matches_never_appear_and_caller_still_gets_k(tmp_path: Path, mode: str, flat_index_max: int):
    # 150 hr chunks outrank all 30 public ones; fusion depth k: a post-filter would leave nothing
    store = build_store(tmp_path / "s", acl_docs(n_public=30, n_hr=150), flat_index_max=flat_index_max, fusion_depth=5)
    assert (flat_index_max == 10) == hasattr(store.search_index(), "nlist")
    r = Retriever(store, HashingEmbedder())
    q = unit(np.eye(DIM)[0])
    hits = r.search("salary review", groups=["public"], k=5, mode=mode, query_vector=q)
    assert len(hits) == 5 and all(t.startswith("pub") for t in titles(hits))
    assert all(t.startswith("hr") for t in titles(r.search("salary review", groups=["hr"], k=5, mode=mode, query_vector=q)))
    both = r.search("salary review", groups="public hr".split(), k=5, mode=mode, query_vector=q)
    assert titles(both)[0].startswith("hr")
    assert r.search("salary review", groups=[], k=5, mode=mode, query_vector=q) == []
    assert r.search("salary review", groups=["h", "r"], k=5, mode=mode, query_vector=q) == []


def test_group_given_as_a_string_is_one_group_and_group_changes_apply(tmp_path: Path):
    store = build_store(tmp_path / "s", acl_docs(n_public=3, n_hr=2))
    r = Retriever(store, HashingEmbedder())
    assert titles(r.search("salary review", groups="hr", k=2))[0].startswith("hr")
    with store.writer(), store.transaction() as tx:
        tx.set_groups(tx.document_by_uri("file:///corpus/doc0.txt"), ["public"])  # hr0 becomes public
    assert "hr0" in titles(r.search("salary review", groups=["public"], k=3))
    assert "hr1" not in titles(r.search("salary review", groups=["public"], k=5))


def test_bm25_scores_reveal_nothing_about_unreadable_documents(tmp_path: Path):
    """The reported probe: a word only an hr document holds changed a public caller's scores (0.86 vs 1.50)."""
    public = [{"title": f"pub{i}", "texts": [t]} for i, t in enumerate([
        "canteen menu and merger rumours", "merger of the two canteens", "bike shed opening hours"])]
    hidden = [{"title": "hr", "groups": ["hr"], "texts": ["merger plan: acquire northwind, layoffs in canteen staff " * 3]}]
    store = build_store(tmp_path / "s", hidden + public)
    alone = build_store(tmp_path / "alone", public)  # what the public caller may read, and nothing else
    r, r_alone = Retriever(store, HashingEmbedder()), Retriever(alone, HashingEmbedder())

    def bm25(retriever, query):
        return [(h.document.title, h.scores.bm25, h.scores.bm25_rank)
                for h in retriever.search(query, groups=["public"], k=5, mode="lexical")]

    for query in ("merger", "canteen merger", "canteen northwind", "canteen layoffs", "canteen zebra"):
        assert bm25(r, query) == bm25(r_alone, query), query
    assert bm25(r, "canteen northwind") == bm25(r, "canteen zebra")
    assert bm25(r, "northwind layoffs") == []
    for mode in MODES:  # dense cosines and the fused scores agree too
        got, want = (x.search("canteen merger", groups=["public"], k=3, mode=mode) for x in (r, r_alone))
        assert [(h.document.title, h.scores) for h in got] == [(h.document.title, h.scores) for h in want]


def test_a_store_with_an_old_format_lexical_file_rebuilds_it(tmp_path: Path):
    store = build_store(tmp_path / "s", [{"title": "a", "texts": ["zyxel firmware flashing"]},
                                         {"title": "b", "texts": ["canteen menu"]}])
    path = store.dir / f"lexical-{store.generation}.npz"
    assert path.exists()
    np.savez(path, ids=np.array([1, 2]), data=np.ones(2, np.float32), indices=np.array([0, 1]),  # format 1
             indptr=np.array([0, 1, 2]), shape=np.array([2, 2]), vocab=np.frombuffer(b'{"zyxel": 0, "menu": 1}', np.uint8))
    reopened = Store(store.settings)
    hits = Retriever(reopened, HashingEmbedder()).search("canteen menu", groups=["public"], k=2, mode="lexical")
    assert titles(hits) == ["b"]
    with reopened.writer():
        reopened.flush_indexes()  # the unusable file was dropped: written again, in the current format
    assert titles(Retriever(Store(store.settings), HashingEmbedder()).search(
        "zyxel", groups=["public"], k=2, mode="lexical")) == ["a"]



def test_a_reader_whose_index_files_a_writer_removes_meanwhile_reads_from_sql(tmp_path: Path, monkeypatch):
    """A reader (the service, the app) read the generation, then an ingest's flush wrote the next one and
    removed this one's files before the reader opened them: it builds what it needs from SQL, no error."""
    import pipeline.indexes as indexes
    import pipeline.store as store_module
    from pipeline.lexical import BM25Index

    store = build_store(tmp_path / "s", [{"title": "a", "texts": ["zyxel firmware flashing"]},
                                         {"title": "b", "texts": ["canteen menu"]}])
    gen = store.generation
    for path in (store.dir / f"vectors-{gen}.faiss", store.dir / f"lexical-{gen}.npz"):
        assert path.exists()
    read_faiss, load_bm25 = store_module.read_faiss_index, BM25Index.load

    def gone_first(read):
        def read_after_the_flush(path, *args, **kwargs):
            Path(path).unlink(missing_ok=True)  # the writer's clean-up, between the reader's look and its read
            return read(path, *args, **kwargs)
        return read_after_the_flush

    monkeypatch.setattr(store_module, "read_faiss_index", gone_first(read_faiss))
    monkeypatch.setattr(indexes.BM25Index, "load", gone_first(load_bm25))
    reader = Store(store.settings)
    r = Retriever(reader, HashingEmbedder())
    for mode in MODES:
        assert titles(r.search("zyxel firmware", groups=["public"], k=1, mode=mode)) == ["a"], mode
    assert not (store.dir / f"vectors-{gen}.faiss").exists() and not (store.dir / f"lexical-{gen}.npz").exists()


# -- filters ---------------------------------------------------------------------------------------------
def test_metadata_filters(tmp_path: Path):
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    docs = [
        {"title": "md", "uri": "file:///kb/hr/policy.md", "media_type": "text/markdown", "file_type": "md",
         "texts": ["holiday policy for staff"], "mtime": old.timestamp(), "ingested_at": old},
        {"title": "pdf", "uri": "file:///kb/eng/policy.pdf", "media_type": "application/pdf", "file_type": "pdf",
         "texts": ["holiday policy for engineers"]},
        {"title": "html", "uri": "https://intranet/holiday.html", "media_type": "text/html", "file_type": "html",
         "texts": ["holiday policy page"]},
    ]
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())

    def found(**filters) -> set[str]:
        return set(titles(r.search("holiday policy", groups=["public"], k=10, filters=filters)))

    assert found() == {"md", "pdf", "html"}
    assert found(source="/kb/hr/") == {"md"}
    assert found(source="file:///kb/") == {"md", "pdf"}
    assert found(source="*.pdf") == {"pdf"}
    assert found(source=["https://intranet/", "*.md"]) == {"md", "html"}
    assert found(media_type="text/*") == {"md", "html"}
    assert found(media_type=["text/*", "application/pdf"]) == {"md", "pdf", "html"}
    assert found(media_type="text/") == set()  # not a glob: exact
    assert found(file_type=["PDF", ".html"]) == {"pdf", "html"}
    assert found(modified_before=datetime(2021, 1, 1)) == {"md"}
    assert found(ingested_after=datetime.now(timezone.utc) - timedelta(days=1)) == {"pdf", "html"}
    assert found(fields={"title": "html"}) == {"html"}
    assert found(fields={"title": ["md", "pdf"]}, file_type="pdf") == {"pdf"}
    with pytest.raises(ConfigError, match="unknown document field"):
        found(fields={"colour": "red"})
    with pytest.raises(ValueError):
        found(sauce="*.md")


# -- neighbours and duplicates ---------------------------------------------------------------------------
def test_neighbour_expansion_adds_surrounding_chunks_in_document_order(tmp_path: Path):
    texts = ["intro to the handbook", "network cards and drivers", "configuring the firewall with nftables",
             "printing with cups", "closing words"]
    store = build_store(tmp_path / "s", [{"title": "book", "texts": texts}, {"title": "other", "texts": ["firewall basics"]}])
    r = Retriever(store, HashingEmbedder())
    plain = r.search("nftables firewall", groups=["public"], k=1, mode="lexical")
    assert [h.text for h in plain] == [texts[2]]
    hits = r.search("nftables firewall", groups=["public"], k=1, mode="lexical", expand_neighbours=1)
    assert [h.text for h in hits] == texts[1:4]
    assert [h.neighbour_of for h in hits] == [plain[0].chunk_id, None, plain[0].chunk_id]
    assert r.search("closing words", groups=["public"], k=1, mode="lexical", expand_neighbours=2)[0].text == texts[2]


def test_dedupe_folds_identical_and_near_identical_chunks(tmp_path: Path):
    q = unit(np.eye(DIM)[0])
    docs = [
        {"title": "orig", "texts": ["Reset your password from the account page."], "vectors": [q]},
        {"title": "copy", "texts": ["Reset  your password from the account page. "], "vectors": [unit(q + 0.5 * np.eye(DIM)[5])]},
        {"title": "near", "texts": ["Reset your password from the account page!"], "vectors": [unit(q + 0.1 * np.eye(DIM)[1])]},
        {"title": "other1", "texts": ["Passwords expire every 90 days."], "vectors": [unit(q + 0.6 * np.eye(DIM)[2])]},
        {"title": "other2", "texts": ["Account page layout."], "vectors": [unit(q + 0.7 * np.eye(DIM)[3])]},
    ]
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())
    raw = r.search("reset password", groups=["public"], k=3, mode="dense", dedupe=False, query_vector=q)
    assert titles(raw) == ["orig", "near", "copy"]
    hits = r.search("reset password", groups=["public"], k=3, mode="dense", query_vector=q)
    assert titles(hits) == ["orig", "other1", "other2"]  # still k hits
    assert sorted(hits[0].duplicates) == sorted(h.chunk_id for h in raw[1:])


def test_duplicates_and_neighbours_never_name_an_unreadable_chunk(tmp_path: Path):
    q = unit(np.eye(DIM)[0])
    text = "Reset your password from the account page."
    docs = [
        {"title": "hr", "groups": ["hr"], "texts": ["intro", text, "outro"], "vectors": [unit(np.eye(DIM)[3]), q, unit(np.eye(DIM)[4])]},
        {"title": "pub", "texts": ["before", text, "after"], "vectors": [unit(np.eye(DIM)[5]), unit(q + 0.01 * np.eye(DIM)[1]), unit(np.eye(DIM)[6])]},
    ]
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())
    for mode in MODES:
        hits = r.search("reset password", groups=["public"], k=1, mode=mode, query_vector=q, expand_neighbours=1)
        assert [h.text for h in hits] == ["before", text, "after"] and {h.document.title for h in hits} == {"pub"}
        assert hits[1].duplicates == [] and {h.neighbour_of for h in hits} == {None, hits[1].chunk_id}
        both = r.search("reset password", groups=["public", "hr"], k=2, mode=mode, query_vector=q)
        assert both[0].duplicates == [hits[1].chunk_id]  # the twins are folded only for a caller who reads both


# -- index types, loading, concurrency -------------------------------------------------------------------
def random_docs(n: int, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [{"title": f"r{i}", "texts": [f"random chunk {i}"], "vectors": [vecs[i]]} for i in range(n)], vecs


def test_ivf_returns_the_same_top_hit_as_flat(tmp_path: Path):
    docs, vecs = random_docs(400)
    flat = Retriever(build_store(tmp_path / "flat", docs), HashingEmbedder())
    ivf = Retriever(build_store(tmp_path / "ivf", docs, flat_index_max=100), HashingEmbedder())
    index = ivf.store.search_index()
    assert hasattr(index, "nlist") and index.nprobe < index.nlist
    rng = np.random.default_rng(1)
    for i in rng.choice(400, 20, replace=False):
        qv = unit(vecs[i] + 0.05 * rng.standard_normal(DIM))
        a = flat.search("x", groups=["public"], k=3, mode="dense", query_vector=qv)
        b = ivf.search("x", groups=["public"], k=3, mode="dense", query_vector=qv)
        assert a[0].document.title == b[0].document.title == f"r{i}"
        assert b[0].scores.dense == pytest.approx(a[0].scores.dense, abs=1e-3)  # float16 codes in the lists


def test_ivf_widens_its_search_when_few_readable_chunks_lie_in_the_probed_lists(tmp_path: Path):
    docs, vecs = random_docs(400)
    readable = set(range(0, 400, 50))  # 8 of 400, scattered over the IVF lists
    for i, d in enumerate(docs):
        d["groups"] = ["public"] if i in readable else ["hr"]
    flat = Retriever(build_store(tmp_path / "flat", docs), HashingEmbedder())
    ivf = Retriever(build_store(tmp_path / "ivf", docs, flat_index_max=100), HashingEmbedder())
    assert ivf.store.search_index().nprobe == 2 and ivf.store.search_index().nlist == 10  # nlist/4: 2 of 10 lists
    for i in (3, 101, 257):
        a = flat.search("x", groups=["public"], k=8, mode="dense", query_vector=vecs[i])
        b = ivf.search("x", groups=["public"], k=8, mode="dense", query_vector=vecs[i])
        assert len(b) == 8 and [h.chunk_id for h in b] == [h.chunk_id for h in a]


@pytest.mark.parametrize("n", [1_999, 19_999, 20_000, 40_000])
def test_the_index_kind_and_its_probe_share_follow_the_size(n: int):
    """Flat up to flat_max; IVF above, probing nlist/4 of its lists under NARROW_PROBE_FROM vectors and nlist/8
    from there (the share measured on real embeddings: benchmarks/ivf_recall.py)."""
    from pipeline.indexes import NARROW_PROBE_FROM, build_faiss_index

    vecs = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) + 1
    assert not hasattr(build_faiss_index(ids, vecs, 8, flat_max=n), "nlist")  # exact
    ivf = build_faiss_index(ids, vecs, 8, flat_max=n - 1)
    assert ivf.nlist == int(min(4 * np.sqrt(n), n / 39)) and ivf.ntotal == n
    assert ivf.nprobe == ivf.nlist // (8 if n >= NARROW_PROBE_FROM else 4)
    assert ivf.sq.qtype == faiss.ScalarQuantizer.QT_fp16 and ivf.code_size == 2 * 8  # float16 lists


@pytest.mark.parametrize("kind", ["float16 lists", "float32 lists (older stores)"])
def test_an_ivf_index_copied_out_of_its_mapping_searches_and_grows_like_the_original(tmp_path: Path, kind: str):
    from pipeline.indexes import build_faiss_index, copy_in_memory, read_faiss_index, write_faiss_index

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64) + 1
    if kind.startswith("float16"):
        index = build_faiss_index(ids, vecs, 16, flat_max=100)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 50, faiss.METRIC_INNER_PRODUCT)
        index.train(vecs)
        index.add_with_ids(vecs, ids)
        index.nprobe = 12
    write_faiss_index(tmp_path / "v.faiss", index)
    mapped = read_faiss_index(tmp_path / "v.faiss", mmap_min_bytes=0)
    assert memory_mapped(mapped)
    # FAISS's mapped lists would start 32 threads at every search to read its lists ahead: none
    assert faiss.downcast_InvertedLists(mapped.invlists).prefetch_nthread == 0
    copy = copy_in_memory(mapped)
    assert not memory_mapped(copy) and type(copy) is type(mapped) and copy.nprobe == mapped.nprobe
    queries = vecs[:40] + 0.1 * rng.standard_normal((40, 16)).astype(np.float32)
    (d0, i0), (d1, i1) = mapped.search(queries, 5), copy.search(queries, 5)
    assert (i0 == i1).all() and np.allclose(d0, d1)
    copy.add_with_ids(-vecs[:1], np.array([9999], dtype=np.int64))  # the copy can grow; the mapping stays as it was
    assert copy.search(-vecs[:1], 1)[1][0, 0] == 9999 and mapped.ntotal == 3000


def memory_mapped(index) -> bool:
    import faiss

    if hasattr(index, "invlists"):
        return isinstance(faiss.downcast_InvertedLists(index.invlists), faiss.OnDiskInvertedLists)
    return not faiss.downcast_index(index.index).codes.is_owned


@pytest.mark.parametrize("flat_index_max", [5000, 100], ids=["flat", "ivf"])
def test_memory_mapped_search_then_write_then_search(tmp_path: Path, flat_index_max: int):
    docs, vecs = random_docs(300)
    assert not memory_mapped(build_store(tmp_path / "ram", docs, flat_index_max=flat_index_max).search_index())
    store = build_store(tmp_path / "s", docs, flat_index_max=flat_index_max, mmap_min_bytes=0)
    assert memory_mapped(store.search_index())
    if flat_index_max == 100:  # the store's mapped IVF lists read no list ahead of a search either
        assert faiss.downcast_InvertedLists(store.search_index().invlists).prefetch_nthread == 0
    r = Retriever(store, HashingEmbedder())
    assert r.search("x", groups=["public"], k=1, mode="dense", query_vector=vecs[7])[0].document.title == "r7"
    # the same process writes next: the writer's index is its own, the mapped one is never mutated
    with store.writer():
        with store.transaction() as tx:
            tx.put_document(
                Document(uid="new", source_uri="file:///corpus/new.txt", title="new", media_type="text/plain",
                         file_type="txt", size=1, mtime=0.0, sha256="f" * 64),
                ["public"], [ChunkInput("new-0", 0, "fresh", "", None, None, 1, "", None, unit(-vecs[7]))],
            )
        store.flush_indexes()
    assert r.search("x", groups=["public"], k=1, mode="dense", query_vector=-vecs[7])[0].document.title == "new"


def test_concurrent_searches_agree_with_sequential_ones(tmp_path: Path):
    docs, vecs = random_docs(200)
    for i, d in enumerate(docs):
        d["groups"] = ["public"] if i % 2 else ["hr"]
    path = tmp_path / "s"
    build_store(path, docs, flat_index_max=50)
    queries = [(vecs[i], ["public"] if i % 3 else ["hr", "public"]) for i in range(40)]
    expected = [[h.chunk_id for h in Retriever(Store(Settings(store_dir=path, flat_index_max=50)), HashingEmbedder()).search(
        f"random chunk {i}", groups=g, k=5, query_vector=v)] for i, (v, g) in enumerate(queries)]
    shared = Retriever(Store(Settings(store_dir=path, flat_index_max=50)), HashingEmbedder())  # cold: lazy loads race
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, len(queries), 4):
                v, g = queries[i]
                results[i] = [h.chunk_id for h in shared.search(f"random chunk {i}", groups=g, k=5, query_vector=v)]
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(o,)) for o in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [results[i] for i in range(len(queries))] == expected


def test_bad_arguments_and_json(tmp_path: Path):
    r = Retriever(build_store(tmp_path / "s", [{"title": "t", "texts": ["some text here"]}]), HashingEmbedder())
    with pytest.raises(ConfigError):
        r.search("   ", groups=["public"])
    with pytest.raises(ConfigError):
        r.search("text", groups=["public"], mode="sparse")
    with pytest.raises(ConfigError):
        r.search("text", groups=["public"], k=0)
    hit = r.search("some text", groups=["public"], k=1)[0]
    again = Hit.model_validate(json.loads(hit.model_dump_json()))
    assert again == hit and again.to_passage(1).text == "some text here"


# -- end to end ------------------------------------------------------------------------------------------
def test_ingested_hr_document_never_reaches_other_callers(tmp_path: Path, embedder):
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "all").mkdir()
    (docs / "hr" / "salaries.txt").write_text("Salary bands for 2024: engineers earn between 60k and 90k euros per year.\n")
    for i, text in enumerate([
        "The canteen serves lunch from noon to two, and salads are available every day.",
        "Annual leave is 25 days per year; ask your manager before booking holidays.",
        "Laptops are replaced every three years by the IT service desk.",
    ]):
        (docs / "all" / f"note{i}.txt").write_text(text + "\n")
    settings = Settings(store_dir=tmp_path / "store")
    assert ingest([docs / "hr"], settings, groups=["hr"], embedder=embedder).ingested == 1
    assert ingest([docs / "all"], settings, embedder=embedder).ingested == 3
    r = Retriever(Store(settings), embedder)
    question = "How much do engineers earn per year?"
    for mode in MODES:
        hits = r.search(question, groups=["public"], k=3, mode=mode)
        assert all("salaries" not in h.document.source_uri for h in hits)
        assert len(hits) == 3 or mode == "lexical"
    top = r.search(question, groups=["hr", "public"], k=3)
    assert top[0].document.source_uri.endswith("hr/salaries.txt") and top[0].scores.dense > 0.3


# -- documents named by the question, questions over several documents --------------------------------------
def filings() -> list[dict]:
    """Three look-alike filings: two quarters of ACME, one of Globex; each sentence in every one of them."""
    body = ["Total net sales rose compared with the prior quarter.", "Operating costs were stable.",
            "The board declared a dividend.", "Inventory turned over faster."]
    weaker = ["Net sales rose compared with the prior quarter."] + body[1:]  # a slightly worse match for the wording
    return [
        {"title": "ACME 10-Q Q1", "entity": "ACME Corporation", "period": "For the quarterly period ended April 1, 2023", "texts": body},
        {"title": "ACME 10-Q Q2", "entity": "ACME Corporation", "period": "For the quarterly period ended July 1, 2023", "texts": body},
        {"title": "Globex 10-Q Q2", "entity": "Globex Inc.", "period": "For the quarterly period ended July 1, 2023", "texts": weaker},
    ]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_question_naming_a_company_and_period_ranks_that_filing_first(tmp_path, mode):
    question = "What were Globex total net sales in July 2023?"
    plain = Retriever(build_store(tmp_path / "a", filings(), metadata_weight=0.0), HashingEmbedder())
    named = Retriever(build_store(tmp_path / "b", filings()), HashingEmbedder())
    assert titles(named.search(question, groups=["public"], k=1, mode=mode)) == ["Globex 10-Q Q2"]
    # without the document signal the better-worded look-alike wins
    assert titles(plain.search(question, groups=["public"], k=1, mode=mode)) != ["Globex 10-Q Q2"]
    both = named.search("ACME net sales in 2023", groups=["public"], k=2, mode=mode, dedupe=False)  # (same texts)
    assert set(titles(both)) == {"ACME 10-Q Q1", "ACME 10-Q Q2"}


def test_a_named_document_the_caller_cannot_read_changes_nothing(tmp_path):
    docs = filings()
    docs[2]["groups"] = ["hr"]
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())
    hits = r.search("What were Globex total net sales in July 2023?", groups=["public"], k=8)
    assert "Globex 10-Q Q2" not in titles(hits)
    assert titles(hits)[:1] == titles(Retriever(build_store(tmp_path / "t", filings()[:2]), HashingEmbedder())
                                      .search("What were Globex total net sales in July 2023?", groups=["public"], k=8))[:1]


def test_a_question_over_time_draws_on_several_documents(tmp_path):
    docs = [{"title": f"Report {i}", "texts": [f"Net sales in report {i} part {j}: sales grew again." for j in range(6)]}
            for i in range(3)]
    docs[0]["texts"] = [f"Net sales net sales grew, net sales part {j}." for j in range(6)]  # one document matches best
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())
    one = r.search("net sales grew", groups=["public"], k=6, mode="lexical", dedupe=False)
    spread = r.search("How did net sales change over time?", groups=["public"], k=6, mode="lexical", dedupe=False)
    assert len(set(titles(one))) == 1 and len(spread) == 6
    assert len(set(titles(spread))) == 3 and max(titles(spread).count(t) for t in set(titles(spread))) <= 2


def test_a_duplicate_of_a_chunk_held_back_by_the_spread_cap_is_folded_into_it(tmp_path):
    """Regression: near-duplicate detection indexed the kept list with the position of a held-back chunk."""
    twins = ["Sales change: costs fell after the merger closed.", "Sales change: costs fell after the merger closed!"]
    docs = [{"title": "Report 0", "texts": ["Sales change: revenue grew in spring.", "Sales change: margins held in winter.",
                                            *twins]}]
    docs += [{"title": f"Report {i}", "texts": [f"Sales were flat in report {i}."]} for i in (1, 2)]
    r = Retriever(build_store(tmp_path / "s", docs), HashingEmbedder())
    hits = r.search("How did sales change over time?", groups=["public"], k=3, mode="lexical")
    assert not set(twins) <= {h.text for h in hits}  # one of the twins at most
    assert {"Report 1", "Report 2"} <= set(titles(hits))
