"""RagPipeline.ask_batch: several questions, one generation call, each answer the one `ask` gives alone."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from pipeline.types import DenoiseState
from pipeline import ingest
from pipeline.config import IngestSettings, Settings
from pipeline.errors import ConfigError
from pipeline.rag import BatchItem, RagPipeline
from pipeline.types import Answer

DOCS = {
    "public/holidays.txt": "Company holidays. The office is closed on the first Monday of August for the summer holiday. "
    "Staff receive twenty-five days of paid leave per year.",
    "public/parking.txt": "Parking rules. Visitors park in the north lot. Bicycles are stored in the basement rack.",
    "public/markup.txt": "Badge office. Lost badges are replaced at the <b>front desk</b> within one day.",
    "hr/salaries.txt": "Salary bands. The summer holiday bonus for engineers is 1,200 euros, paid in August. "
    "Band C salaries start at 58,000 euros.",
}
ITEMS = [
    BatchItem(question="What is the summer holiday bonus for engineers?", groups=("public",), k=3),
    BatchItem(question="What is the summer holiday bonus for engineers?", groups=("public", "hr"), k=3),
    BatchItem(question="Where do visitors park?", groups=("public",), k=1),
    BatchItem(question="Where are lost badges replaced?", groups=("public",), k=2),
    BatchItem(question="How many days of paid leave do staff receive?", groups=("public",),
              filters={"source": "*holidays.txt"}),
    BatchItem(question="Which river flows through the capital of Peru?", groups=("nobody",)),  # reads nothing
]


@pytest.fixture(scope="module")
def rag(tmp_path_factory, embedder) -> RagPipeline:
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    root: Path = tmp_path_factory.mktemp("batch")
    for rel, text in DOCS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    settings = Settings(store_dir=root / "store", ingest=IngestSettings(parse_workers=0), generator="extractive")
    ingest([root / "public"], settings, groups=["public"], embedder=embedder)
    ingest([root / "hr"], settings, groups=["hr"], embedder=embedder)
    store = Store(settings)
    return RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings))


def same_answer(batched: Answer, alone: Answer) -> None:
    assert batched.text == alone.text
    assert batched.citations == alone.citations
    assert [h.chunk_id for h in batched.passages] == [h.chunk_id for h in alone.passages]
    assert batched.validation.status == alone.validation.status
    assert batched.validation.sentences == alone.validation.sentences  # each sentence's verdict and reasons
    t, u = batched.trace, alone.trace
    assert (t.generator, t.steps, t.nfe, t.tokens_per_step, t.answer_tokens) == \
        (u.generator, u.steps, u.nfe, u.tokens_per_step, u.answer_tokens)


@pytest.mark.parametrize("generator", ["extractive", "sculpt"])
def test_each_batched_answer_is_the_one_ask_gives_alone(rag: RagPipeline, generator: str):
    states: dict[int, list[DenoiseState]] = {}
    answers = rag.ask_batch(ITEMS, generator=generator, on_state=lambda i, s: states.setdefault(i, []).append(s))
    assert len(answers) == len(ITEMS)
    for item, answer in zip(ITEMS, answers):
        alone = rag.ask(item.question, groups=list(item.groups), k=item.k, filters=item.filters, generator=generator)
        same_answer(answer, alone)
        assert set(answer.timings) >= {"retrieve_s", "generate_s", "total_s"}
    if generator == "sculpt":  # a diffusion model shows each answer forming, item by item
        assert set(states) <= set(range(len(ITEMS))) and states
        for i, seen in states.items():
            assert [s.step for s in seen] == list(range(1, len(seen) + 1))
            assert all("<b>" not in s.text for s in seen)  # markup made inert, as in stream
        assert any("front desk" in s.text for s in states[3])  # the quote that carried the markup


def test_groups_are_never_mixed_across_items(rag: RagPipeline):
    public, hr, *_ = rag.ask_batch(ITEMS)
    assert all("salaries" not in h.document.source_uri for h in public.passages)
    assert "1,200" not in public.text and "1,200 euros" in hr.text
    assert any("salaries" in c.source_uri for c in hr.citations)
    nobody = rag.ask_batch(ITEMS)[-1]
    assert nobody.passages == [] and nobody.citations == []


def test_an_empty_question_is_refused_before_anything_runs(rag: RagPipeline):
    with pytest.raises(ConfigError, match="empty"):
        rag.ask_batch([ITEMS[0], BatchItem(question="  ")])


def test_the_service_queue_answers_a_batch_with_one_ask_batch_call(rag: RagPipeline, monkeypatch):
    from app.service.scheduler import Job, _run_batch

    calls = []
    real = rag.ask_batch
    monkeypatch.setattr(rag, "ask_batch", lambda items, **kw: calls.append(len(items)) or real(items, **kw))
    states: list[int] = []
    jobs = [Job(question=i.question, groups=i.groups, k=i.k, filters=i.filters, generator="sculpt",
                on_state=lambda s, n=n: states.append(n)) for n, i in enumerate(ITEMS[:4])]
    gone = Job(question=ITEMS[0].question, groups=("public",), generator="sculpt")
    gone.cancelled.set()  # a client that left before its batch ran
    for j in (*jobs, gone):
        j.future.set_running_or_notify_cancel()
    _run_batch(rag, [*jobs, gone])
    assert calls == [4]
    assert set(states) <= {0, 1, 2, 3} and states
    for n, j in enumerate(jobs):  # every live job saw its own denoising states, one per step
        assert states.count(n) == j.future.result().trace.steps
    for j, item in zip(jobs, ITEMS[:4]):
        same_answer(j.future.result(), rag.ask(item.question, groups=item.groups, k=item.k, generator="sculpt"))
    with pytest.raises(concurrent.futures.CancelledError):
        gone.future.result()
