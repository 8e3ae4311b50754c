"""The noise sweep and the unanswerable slice: fixed passage sets per level, split refusal rates, the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from pipeline.config import IngestSettings, Settings
from evaluation.datasets import EvalDataset, EvalItem
from evaluation.report import noise_table, summary_table, write_report
from evaluation.runner import EvalRun, noise_passages, pool_size, run_eval

GOLD = {  # five different passages about leave: enough gold hits for every level at k=5
    "leave-1": "Staff receive twenty-five days of paid leave per year.",
    "leave-2": "Unused paid leave days may be carried over into the first quarter of the next year.",
    "leave-3": "Requests for annual leave go to your line manager at least two weeks ahead.",
    "leave-4": "Part-time staff earn paid leave in proportion to the hours they work.",
    "leave-5": "Sick leave does not count against the yearly paid leave allowance.",
    "parking": "Visitors park in the north lot next to the main gate.",
}
OTHER = {
    "bikes": "Bicycles are stored in the basement rack of building C.",
    "canteen": "The canteen serves lunch between noon and two o'clock.",
    "widgets": "The widget factory opens at nine in the morning.",
    "printers": "Printers on every floor need a badge to release a print job.",
    "fire": "Fire drills take place on the first Tuesday of each quarter.",
    "wifi": "The guest wifi password changes every Monday.",
    "visitors": "Visitors to the plant park in the north lot and sign in at reception.",  # states park's answer
}
ITEMS = [
    EvalItem("leave", "How many days of paid leave do staff receive?", "twenty-five days",
             [f"leave-{i}" for i in range(1, 6)], aliases=["twenty-five days"]),
    EvalItem("park", "Where do visitors park?", "in the north lot", ["parking"], aliases=["north lot"]),
    EvalItem("lost", "What is the dress code on Fridays?", "smart casual", ["dress-code"]),  # not in the store
    EvalItem("ceo", "Who is the chief executive?", answerable=False),
]
LEVELS = (0.0, 0.4, 0.8, 1.0)
K = 5


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("slices")
    dataset = EvalDataset("noisy", ITEMS, [(d, "", t) for d, t in {**GOLD, **OTHER}.items()])
    settings = Settings(ingest=IngestSettings(parse_workers=0))
    report = run_eval(EvalRun(dataset=dataset, generators=["extractive"], k=K, store_dir=root / "store",
                              settings=settings, noise=LEVELS), embedder=embedder)
    _, html_path = write_report(report, root / "out")
    return {"root": root, "report": report, "html": html_path.read_text(),
            "settings": settings.model_copy(update={"store_dir": root / "store", "database_url": None})}


@pytest.fixture(scope="module")
def rag(sweep, embedder):
    from pipeline.rag import RagPipeline
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    store = Store(sweep["settings"])
    return RagPipeline(sweep["settings"], store=store, retriever=Retriever(store, embedder=embedder,
                                                                           settings=sweep["settings"]))


def records(report: dict, item_id: str) -> dict[str, dict]:
    return {r["slice"]: r for r in report["items"] if r["id"] == item_id}


def test_each_level_gives_the_promised_share_of_gold_passages(sweep, rag):
    report = sweep["report"]
    assert list(report["slices"]) == ["noise=0", "noise=0.4", "noise=0.8", "noise=1"]
    leave, park = records(report, "leave"), records(report, "park")
    # enough gold hits: k - round(r*k) gold passages, the rest distractors; none at level 1
    assert [sum(p["gold"] for p in leave[s]["passages"]) for s in report["slices"]] == [5, 3, 1, 0]
    assert [len(leave[s]["passages"]) for s in report["slices"]] == [5, 5, 5, 5]
    # one gold hit: it stays, and distractors fill only up to round(r*k), so their share stays at most r
    assert [sum(p["gold"] for p in park[s]["passages"]) for s in report["slices"]] == [1, 1, 1, 0]
    assert [len(park[s]["passages"]) for s in report["slices"]] == [1, 3, 5, 5]
    # a document that states the answer is no distractor, though it is not a gold source
    assert not any(p["source"] == "visitors" for s in report["slices"] for p in park[s]["passages"])
    park_pool = [h.document.source_uri.rsplit("/", 1)[-1] for h in rag.retrieve(ITEMS[1].question, ["public"], pool_size(K))]
    assert "visitors.txt" in park_pool[:3]  # it was retrieved, near the top
    assert [leave[s]["answers"]["extractive"]["gold_given"] for s in report["slices"]] == [5, 3, 1, 0]
    # the top gold hits and the top distractors of the pool, in some shuffled order
    pool = [h.document.source_uri.rsplit("/", 1)[-1].removesuffix(".txt")
            for h in rag.retrieve(ITEMS[0].question, ["public"], pool_size(K))]
    gold, noise = [s for s in pool if s in GOLD and s != "parking"], [s for s in pool if s not in GOLD or s == "parking"]
    given = [p["source"] for p in leave["noise=0.4"]["passages"]]
    assert sorted(given) == sorted(gold[:3] + noise[:2])


def test_level_one_rows_are_the_unanswerable_slice(sweep):
    report = sweep["report"]
    for r in report["items"]:
        assert r["answerable"] == (r["id"] != "ceo" and r["slice"] != "noise=1")
    top = report["slices"]["noise=1"]["summary"]["extractive"]
    assert top["refusal_answerable"] is None and top["refusal_answerable_gold"] is None
    rows = [r["answers"]["extractive"] for r in report["items"] if r["slice"] == "noise=1"]
    assert len(rows) == 4  # leave, park, lost (its gold is nowhere, distractors only is what it always gets), ceo
    assert top["refusal_unanswerable"] == pytest.approx(sum(r["refusal"] for r in rows) / 4)
    assert records(report, "leave")["noise=1"]["answers"]["extractive"]["refusal"]  # no leave passage: refused


def test_refusal_rates_are_split_by_answerability(sweep):
    report = sweep["report"]
    zero = report["slices"]["noise=0"]
    assert zero["skipped"] == 1 and zero["skipped_why"] == {"no_gold_in_pool": 1}  # "lost"
    assert report["slices"]["noise=1"]["skipped"] == 0
    s = zero["summary"]["extractive"]
    assert s["n"] == 3  # leave, park, and ceo over its own retrieved passages
    assert s["refusal_answerable"] == 0.0 and s["refusal_answerable_gold"] == 0.0  # gold given: answered
    ceo = records(report, "ceo")["noise=0"]["answers"]["extractive"]
    assert s["refusal_unanswerable"] == float(ceo["refusal"])
    assert report["summary"] == zero["summary"]  # what report_html and the app read
    assert "refused w/ gold" in summary_table(report, {"extractive": s})[0]
    headers, rows = noise_table(report)
    assert headers[:5] == ["noise", "asked", "skipped", "extractive refuses answerable", "extractive refuses unanswerable"]
    assert [r[:3] for r in rows] == [["0", "3", "1"], ["0.4", "3", "1"], ["0.8", "3", "1"], ["1", "4", "0"]]


def test_sweep_report_renders(sweep):
    page = sweep["html"]
    assert page.count("<details class=item>") == len(sweep["report"]["items"]) == 13
    assert "refused w/ gold" in page and "<script" not in page.lower()


def test_passage_sets_are_fixed_and_seeded():
    gold, noise = list("ABCDE"), list("vwxyz")
    picked = noise_passages(gold, noise, 5, 0.4, "q|0.4")
    assert sorted(picked) == ["A", "B", "C", "v", "w"] and picked == noise_passages(gold, noise, 5, 0.4, "q|0.4")
    assert noise_passages(gold[:1], noise, 5, 0.8, "q|0.8").count("A") == 1
    assert sorted(noise_passages(gold, noise, 5, 1.0, "q|1.0")) == noise


def test_ask_with_hits_answers_over_exactly_those_passages(sweep, rag):
    pool = rag.retrieve("Where do visitors park?", ["public"], 20)
    parking = next(h for h in pool if "parking" in h.document.source_uri)
    hits = [pool[-1], parking]  # the worst hit first: no retrieval would give this set
    answer = rag.ask("Where do visitors park?", generator="extractive", hits=hits)
    assert [h.chunk_id for h in answer.passages] == [pool[-1].chunk_id, parking.chunk_id]
    assert "north lot" in answer.text and [c.chunk_id for c in answer.citations] == [parking.chunk_id]
    streamed = list(rag.stream("Where do visitors park?", generator="extractive", hits=hits))[-1]
    assert [h.chunk_id for h in streamed.passages] == [h.chunk_id for h in hits]


@pytest.mark.parametrize("value, message", [("0,2", "outside [0, 1]"), ("0,half", "not a number"),
                                            ("0,,1", "separated by commas"), ("-0.1", "outside [0, 1]")])
def test_cli_rejects_bad_noise_levels(tmp_path, value, message):
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "qs.jsonl"), "--noise", value])
    assert result.exit_code == 2 and message in result.output, result.output


def test_cli_unanswerable_prints_each_slice_and_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPTRAG_INGEST__PARSE_WORKERS", "0")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("parking", "bikes", "canteen"):
        (corpus / f"{name}.txt").write_text({**GOLD, **OTHER}[name])
    questions = tmp_path / "qs.jsonl"
    questions.write_text(json.dumps({"id": "park", "question": "Where do visitors park?",
                                     "gold_sources": ["parking.txt"], "aliases": ["north lot"]}) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(questions), "--corpus", str(corpus), "--generator", "extractive",
                                      "--k", "2", "--unanswerable", "--store", str(tmp_path / "store"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "noise=0:" in result.output and "noise=1:" in result.output and "sweep" in result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"]["noise"] == [0.0, 1.0] and set(report["slices"]) == {"noise=0", "noise=1"}
