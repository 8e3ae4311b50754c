"""Property: nobody reads what they may not, on every read route, for random corpora, groups and callers.

Hypothesis draws a few small documents (words from a small shared vocabulary plus one word unique to each
document), gives each some access groups, and draws callers (sets of groups, the empty set included). For
every caller, the chunks and documents each read route shows are exactly those its groups allow:
Retriever.search in every mode (with and without a metadata filter, with neighbours, with and without
de-duplication), RagPipeline.retrieve, RagPipeline.ask with the extractive generator (passages, citations,
answer text, and what the validator is shown), Store.readable_documents, and the app's Services.readable
and may_open. And the scores leak nothing: what a caller gets from lexical (and hybrid) search equals what a
fresh store holding only the caller's readable documents gives, score for score.

Stores are written through Store.transaction with a hashing embedder (no model), so an example takes
tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ui.services import Services
from pipeline.config import RetrievalSettings, Settings, ValidationSettings
from pipeline.words import tokenize
from pipeline.rag import RagPipeline
from pipeline.retrieve import Retriever
from pipeline.schema import Document
from pipeline.store import ChunkInput, Store
from pipeline.types import Hit, SearchFilters

DIM = 32
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
GROUPS = ["public", "hr", "eng", "legal"]
MODES = ["dense", "lexical", "hybrid"]
MD_ONLY = SearchFilters(file_type="md")


class HashingEmbedder:
    """Bag of words -> signed hashed vector plus a constant component (never zero), normalized. No model."""

    model_name = "test-hashing"
    dim = DIM
    path = Path(".")

    def warm_up(self) -> None:
        pass

    def encode(self, texts):
        out = np.zeros((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            out[i, 0] = 0.5
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                h = int(hashlib.md5(w.encode()).hexdigest(), 16)
                out[i, 1 + h % (DIM - 1)] += 1.0 if (h >> 8) % 2 else -1.0
            out[i] /= np.linalg.norm(out[i])
        return out


# -- what hypothesis draws --------------------------------------------------------------------------------
def unique_word(i: int) -> str:
    return f"zq{i}secret"


@st.composite
def corpora(draw) -> list[dict]:
    """1-5 documents: 1-3 chunks each, some carrying the document's unique word; 1-2 groups; txt or md."""
    docs = []
    for i in range(draw(st.integers(1, 5))):
        chunks = []
        for _ in range(draw(st.integers(1, 3))):
            words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
            if draw(st.booleans()):
                words.insert(draw(st.integers(0, len(words))), unique_word(i))
            chunks.append(" ".join(words) + ".")
        docs.append({"chunks": chunks, "groups": draw(st.sets(st.sampled_from(GROUPS), min_size=1, max_size=2)),
                     "file_type": draw(st.sampled_from(["txt", "md"]))})
    return docs


callers = st.sets(st.sampled_from(GROUPS + ["nobody"]), max_size=3)


@st.composite
def queries(draw, n_docs: int) -> str:
    """Shared words and unique words of any document (the probe an attacker would try), never empty."""
    pool = WORDS + [unique_word(i) for i in range(n_docs)] + ["absentword"]
    return " ".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4)))


# -- building stores --------------------------------------------------------------------------------------
def build_store(path: Path, docs: list[dict], database_url: str | None = None) -> Store:
    """A store holding `docs`, in order; document uids and titles name the index in the drawn corpus. SQL in
    the folder's SQLite file, or in the (fresh) database at `database_url`."""
    store = Store(Settings(store_dir=path, database_url=database_url, retrieval=RetrievalSettings(fusion_depth=20),
                           validation=ValidationSettings(enabled=False), generator="extractive"))
    emb = HashingEmbedder()
    with store.writer():
        store.set_state(embedding_model=emb.model_name, embedding_dim=str(DIM))
        with store.transaction() as tx:
            for d in docs:
                i = d["index"]
                doc = Document(uid=f"doc{i}", source_uri=f"file:///corpus/doc{i}.{d['file_type']}", title=f"title{i}x",
                               media_type="text/markdown" if d["file_type"] == "md" else "text/plain",
                               file_type=d["file_type"], size=100, mtime=1_700_000_000.0, sha256=f"{i:064x}", pages=1)
                vectors = emb.encode(d["chunks"])
                tx.put_document(doc, sorted(d["groups"]), [
                    ChunkInput(uid=f"doc{i}-{j}", position=j, text=t, section="", page=1, page_end=1,
                               token_count=len(t.split()), kinds="NarrativeText", table_html=None, vector=v)
                    for j, (t, v) in enumerate(zip(d["chunks"], vectors))])
        store.flush_indexes()
    return store


def key(hit: Hit) -> tuple[str, int]:
    """A chunk named independently of the store's row ids: (document uid, position)."""
    return hit.document.uid, hit.position


def shown(hits: list[Hit], by_id: dict[int, tuple[str, int]]) -> set[tuple[str, int]]:
    """Every chunk the hits reveal: the hits, the chunks folded into them, the hits they are neighbours of."""
    out = {key(h) for h in hits}
    for h in hits:
        out |= {by_id.get(c, ("unreadable or unknown", c)) for c in h.duplicates}
        if h.neighbour_of is not None:
            out.add(by_id.get(h.neighbour_of, ("unreadable or unknown", h.neighbour_of)))
    return out


def lexical_view(hits: list[Hit]) -> list[tuple]:
    return [(key(h), h.scores.bm25, h.scores.bm25_rank, h.scores.dense, h.scores.dense_rank, h.scores.fused) for h in hits]


# -- the property -----------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_read_route_shows_exactly_what_the_callers_groups_allow(data):
    check_read_routes(data, new_database=lambda: None)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_read_route_shows_exactly_what_the_callers_groups_allow_on_postgresql(data, postgres_server):
    """The same property with the store's SQL on a real PostgreSQL server (a fresh database per store):
    the group filter is SQL, so the database that runs it must be the one tested."""
    check_read_routes(data, new_database=postgres_server.database)


def check_read_routes(data, new_database: Callable[[], str | None]) -> None:
    docs = data.draw(corpora(), label="docs")
    for i, d in enumerate(docs):
        d["index"] = i
    who = data.draw(st.lists(callers, min_size=1, max_size=2), label="callers")
    opened: list[Store] = []  # their connection pools are closed after the example (a server allows 200 clients)
    try:
        _check_read_routes(data, new_database, docs, who, opened)
    finally:
        for store in opened:
            store.engine.dispose()


def _check_read_routes(data, new_database: Callable[[], str | None], docs: list[dict], who, opened: list[Store]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = new_database()
        store = build_store(Path(tmp) / "all", docs, url)
        opened.append(store)
        assert store.engine.dialect.name == ("sqlite" if url is None else "postgresql")
        uid_to_id = {d.uid: d.id for d in store.documents()}
        id_to_uid = {i: u for u, i in uid_to_id.items()}
        everything = store.chunks(store.chunk_catalog().ids)
        by_id = {c.id: (id_to_uid[c.document_id], c.position) for c in everything}
        retriever = Retriever(store, HashingEmbedder())
        seen_by_validator: list[set[tuple[str, int]]] = []

        def validator(answer) -> dict:
            seen_by_validator.append({key(h) for h in answer.passages})
            return {"status": "pass"}

        rag = RagPipeline(store.settings, store=store, retriever=retriever, validator=validator)
        services = Services(store.settings, warm=False)
        opened.append(services.store)

        for nth, groups in enumerate(who):
            readable = [d for d in docs if d["groups"] & groups]
            readable_uids = {f"doc{d['index']}" for d in readable}
            chunks_of = {f"doc{d['index']}": [(f"doc{d['index']}", j) for j in range(len(d["chunks"]))] for d in docs}
            allowed = {c for u in readable_uids for c in chunks_of[u]}
            allowed_md = {c for d in readable if d["file_type"] == "md" for c in chunks_of[f"doc{d['index']}"]}
            caller = sorted(groups)
            n = len(everything)
            query = data.draw(queries(len(docs)), label="query")
            matching = {(f"doc{d['index']}", j) for d in docs for j, t in enumerate(d["chunks"])
                        if set(tokenize(t)) & set(tokenize(query))}

            # documents: the store, the app's services
            readable_ids = {uid_to_id[u] for u in readable_uids}
            assert set(store.readable_documents(caller).tolist()) == readable_ids
            assert services.readable(caller) == readable_ids
            assert all(services.may_open(caller, i) == (i in readable_ids) for i in uid_to_id.values())

            # retrieval: k covers the whole store, so "exactly" is checkable, not just "no more than"
            for mode in MODES:
                for dedupe in (True, False):
                    hits = retriever.search(query, groups=caller, k=n, mode=mode, dedupe=dedupe)
                    got = shown(hits, by_id)
                    want = allowed & matching if mode == "lexical" else allowed
                    assert got == want, (mode, dedupe, caller)
                    if not dedupe:
                        assert len(hits) == len(want)
                filtered = retriever.search(query, groups=caller, k=n, mode=mode, filters=MD_ONLY)
                assert shown(filtered, by_id) == (allowed_md & matching if mode == "lexical" else allowed_md)
                near = retriever.search(query, groups=caller, k=1, mode=mode, expand_neighbours=1)
                assert shown(near, by_id) <= allowed
                assert all(h.neighbour_of is None or by_id[h.neighbour_of][0] == h.document.uid for h in near)

            assert shown(rag.retrieve(query, caller, k=n), by_id) == allowed
            seen_by_validator.clear()
            answer = rag.ask(query, groups=caller, generator="extractive", k=n)
            assert shown(answer.passages, by_id) == allowed
            assert seen_by_validator == [{key(h) for h in answer.passages}]
            assert {c.chunk_id for c in answer.citations} <= {h.chunk_id for h in answer.passages}
            readable_uris = {f"file:///corpus/doc{d['index']}.{d['file_type']}" for d in readable}
            assert {c.source_uri for c in answer.citations} <= readable_uris
            revealed = answer.model_copy(update={"question": ""}).model_dump_json()
            hidden = [d["index"] for d in docs if f"doc{d['index']}" not in readable_uids]
            assert not [s for i in hidden for s in (unique_word(i), f"title{i}x", f"/corpus/doc{i}.") if s in revealed]

            # no leak through scores: the same search over a store holding only what the caller may read
            if readable:
                opened.append(build_store(Path(tmp) / f"alone{nth}", readable, new_database()))
                alone = Retriever(opened[-1], HashingEmbedder())
                for mode in ("lexical", "hybrid"):
                    for filters in (None, MD_ONLY):
                        got = retriever.search(query, groups=caller, k=n, mode=mode, filters=filters)
                        want = alone.search(query, groups=caller, k=n, mode=mode, filters=filters)
                        assert lexical_view(got) == lexical_view(want), (mode, filters)
