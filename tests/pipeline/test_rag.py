"""RagPipeline and `sculptrag ask`: access control reaches citations, JSON shape, streaming, threads."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from pipeline.types import DenoiseState
from pipeline import ingest
from pipeline.config import IngestSettings, Settings
from pipeline.rag import RagPipeline
from pipeline.types import Answer

DOCS = {
    "public/holidays.txt": "Company holidays. The office is closed on the first Monday of August for the summer holiday. "
    "Staff receive twenty-five days of paid leave per year.",
    "public/parking.txt": "Parking rules. Visitors park in the north lot. Bicycles are stored in the basement rack.",
    "hr/salaries.txt": "Salary bands. The summer holiday bonus for engineers is 1,200 euros, paid in August. "
    "Band C salaries start at 58,000 euros.",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, embedder) -> Settings:
    root = tmp_path_factory.mktemp("rag")
    for rel, text in DOCS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    s = Settings(store_dir=root / "store", ingest=IngestSettings(parse_workers=0), generator="extractive")
    ingest([root / "public"], s, groups=["public"], embedder=embedder)
    ingest([root / "hr"], s, groups=["hr"], embedder=embedder)
    return s


@pytest.fixture(scope="module")
def rag(settings, embedder) -> RagPipeline:
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    store = Store(settings)
    return RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings))


def test_hr_document_never_reaches_a_caller_without_hr(rag: RagPipeline):
    q = "What is the summer holiday bonus for engineers?"
    public = rag.ask(q, groups=["public"], k=3)
    assert all("salaries" not in h.document.source_uri for h in public.passages)
    assert all("salaries" not in c.source_uri for c in public.citations)
    assert "1,200" not in public.text
    assert len(public.passages) == 2  # both readable documents, though the hr one matches best
    hr = rag.ask(q, groups=["public", "hr"], k=3)
    assert "1,200 euros" in hr.text
    assert any("salaries" in c.source_uri for c in hr.citations)


def test_citations_resolve_to_real_chunks_and_quote_them(rag: RagPipeline):
    answer = rag.ask("Where do visitors park?", groups=["public"])
    assert "north lot" in answer.text
    (c,) = answer.citations
    assert f"[{c.marker}]" in answer.text and c.marker == 1
    hit = answer.passages[c.passage_number - 1]
    assert c.chunk_id == hit.chunk_id and c.quote == hit.text and "north lot" in c.quote
    assert c.source_uri.endswith("parking.txt") and c.document_title


def test_stream_yields_states_then_the_answer(rag: RagPipeline):
    items = list(rag.stream("How many days of paid leave?", groups=["public"]))
    assert isinstance(items[-1], Answer) and all(isinstance(i, DenoiseState) for i in items[:-1]) and len(items) > 1
    assert "twenty-five days" in items[-1].text
    assert set(items[-1].timings) >= {"retrieve_s", "generate_s", "total_s"}


def test_concurrent_asks_agree(rag: RagPipeline):
    questions = ["Where do visitors park?", "How many days of paid leave?"] * 4
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda q: rag.ask(q, groups=["public"]).text, questions))
    assert texts[0::2] == [texts[0]] * 4 and texts[1::2] == [texts[1]] * 4


def test_ask_cli_json_has_the_documented_fields(settings: Settings):
    result = CliRunner().invoke(
        cli, ["ask", "Where are bicycles stored?", "--store", str(settings.store_dir), "--generator", "extractive", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "basement" in data["text"]
    c = data["citations"][0]
    assert {"marker", "document_title", "source_uri", "page", "chunk_id", "quote"} <= set(c)
    assert data["validation"]["status"] and {"retrieve_s", "generate_s"} <= set(data["timings"])


def test_ask_cli_without_store_says_what_to_do(tmp_path: Path):
    result = CliRunner().invoke(cli, ["ask", "anything", "--store", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "sculptrag ingest" in result.output


@pytest.mark.slow  # minutes on 2 busy cores (--durations, issue 16)
def test_demo_ingests_the_bundled_samples_and_answers_with_sources(tmp_path: Path):
    result = CliRunner().invoke(cli, ["demo", "--store", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "200 laptops" in result.output and "Sources" in result.output
    assert result.output.count("[1]") >= 4  # every question got at least one cited source


@pytest.mark.parametrize("generator", ["sculpt", pytest.param("smollm2", marks=pytest.mark.slow)])
def test_ask_end_to_end_with_the_bundled_diffusion_model_and_the_ar_baseline(settings: Settings, generator: str):
    """CLI and API on a real store with each generative model: the answer cites chunks that exist."""
    result = CliRunner().invoke(
        cli, ["ask", "Where do visitors park?", "--store", str(settings.store_dir), "--generator", generator, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] and data["trace"]["generator"] == generator
    for c in data["citations"]:  # a cited chunk is a real chunk of a readable document, quoted whole
        assert c["chunk_id"] and any(c["quote"].strip() in DOCS[f"public/{n}.txt"] for n in ("parking", "holidays"))
    answer = RagPipeline(settings).ask("How many days of paid leave?", groups=["public"], generator=generator)
    for c in answer.citations:  # API: every citation is one of the passages the question retrieved
        assert c.chunk_id == answer.passages[c.passage_number - 1].chunk_id


def test_map_spans_follows_renumbered_markers():
    from pipeline.rag import map_spans

    text, raw = "Alpha beta. [1] Gamma delta. [2]", "Alpha beta. [3] Gamma delta. [12]"
    assert [raw[a:b] for a, b in map_spans(text, raw, [(16, 32)])] == ["Gamma delta. [12]"]
    assert [raw[a:b] for a, b in map_spans(text, raw, [(0, 15)])] == ["Alpha beta. [3]"]
    assert map_spans("Alpha.", "Alpha. [9]", [(0, 6)]) == [(0, 10)]  # a dropped marker: the whole answer


def test_a_failing_answer_is_repaired_and_the_rounds_are_recorded(settings, embedder):
    """The loop itself: a validator that fails any answer citing the parking document makes the pipeline
    answer again without that passage (extractive has no remasking repair), and records the round."""
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    def strict(answer: Answer) -> dict:  # fails the sentence that cites the parking document
        bad = {f"[{c.marker}]" for c in answer.citations if "parking" in c.source_uri}
        spans = [m.span() for m in re.finditer(r"[^\[\]]+\[\d+\]", answer.text) if m.group().split()[-1] in bad]
        return {"status": "fail" if spans else "pass", "failing_spans": spans}

    store = Store(settings)
    rag = RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings),
                      validator=strict)
    answer = rag.ask("Where do visitors park, and how many days of paid leave are there?", groups=["public"], k=2)
    rounds = answer.validation.repair
    assert rounds[0].before == "fail" and rounds[0].after == "pass" and "regenerate" in rounds[0].how
    assert all("parking" not in c.source_uri for c in answer.citations) and answer.citations
    assert answer.timings["repair_s"] > 0
    # repair_rounds=0 for one call: validated, never repaired
    once = rag.ask("Where do visitors park, and how many days of paid leave are there?", groups=["public"], k=2,
                   repair_rounds=0)
    assert once.validation.status == "fail" and not once.validation.repair
    assert "repair" not in once.model_dump(mode="json")["validation"]  # written only when a round ran


def test_per_call_options_make_variants_that_share_the_loaded_model(rag: RagPipeline):
    """Sampling options per call (what the app's Settings page sends): sculpt variants share the loaded
    weights and their lock; a set of options is built once; options that pick weights cannot be shared."""
    base, base_lock = rag.generator("sculpt")
    slow, slow_lock = rag.generator("sculpt", {"max_steps": 2, "sampler": "naive"})
    assert slow is not base and slow._model is base._model and slow_lock is base_lock
    assert slow.config == base.config.model_copy(update={"max_steps": 2, "sampler": "naive"})
    assert rag.generator("sculpt", {"sampler": "naive", "max_steps": 2})[0] is slow  # same options, same variant
    assert rag.generator("sculpt")[0] is base
    answer = rag.ask("How many days of paid leave are there?", groups=["public"], generator="sculpt",
                     options={"max_steps": 2})
    assert answer.trace.steps <= 2
    with pytest.raises(Exception, match="cannot change"):
        base.with_options(device="cuda")


def test_deleted_documents_leave_retrieval_and_the_store_consistent(settings, embedder, tmp_path):
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    s = settings.model_copy(update={"store_dir": tmp_path / "store"})
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.txt").write_text(DOCS["public/parking.txt"])
    (docs / "holidays.txt").write_text(DOCS["public/holidays.txt"])
    ingest([docs], s, groups=["public"], embedder=embedder)
    store = Store(s)
    retriever = Retriever(store, embedder=embedder, settings=s)
    assert any("parking" in h.document.source_uri for h in retriever.search("Where do visitors park?", groups=["public"]))
    doc = next(d for d in store.documents() if d.source_uri.endswith("parking.txt"))
    assert store.delete_documents([doc.id, 999_999]) == doc.n_chunks > 0
    assert [d.title for d in store.documents()] == [d.title for d in Store(s).documents()]
    assert all("parking" not in h.document.source_uri for h in retriever.search("Where do visitors park?", groups=["public"]))
    check = Store(s).check()
    assert check["consistent"] and check["faiss_vectors"] == check["sql_chunks"]


def test_map_spans_and_repair_read_grouped_markers():
    from pipeline.types import GenerationRequest, Passage
    from pipeline.rag import _without_failing_sources, map_spans

    raw = "Alpha beta. [4, 7] Gamma delta. [2]"
    text = "Alpha beta. [1][2] Gamma delta. [3]"  # as finalize_citations writes it
    assert [raw[a:b] for a, b in map_spans(text, raw, [(19, 35)])] == ["Gamma delta. [2]"]
    request = GenerationRequest(question="q", passages=[Passage(number=n, text=f"p{n}") for n in (2, 4, 7)])
    left = _without_failing_sources(request, raw, [(0, 18)])  # the first sentence fails: [4, 7] go
    assert [p.number for p in left.passages] == [2]
