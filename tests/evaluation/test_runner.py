"""evaluation.runner end to end on a tiny user dataset, and the HTML report's escaping."""

from __future__ import annotations

import json

import pytest

from pipeline.config import IngestSettings, Settings, ValidationSettings
from pipeline.errors import ConfigError
from evaluation.datasets import EvalDataset, EvalItem, load_dataset
from evaluation.report import write_report
from evaluation.runner import EvalRun, run_eval

DOCS = {
    "holidays.txt": "Company holidays. The office is closed on the first Monday of August for the summer holiday. "
    "Staff receive twenty-five days of paid leave per year.",
    "parking.txt": "Parking rules. Visitors park in the north lot. Bicycles are stored in the basement rack.",
    "widgets.txt": "Widget factory. The widget factory opens at nine in the morning. <script>alert(1)</script> "
    "Each widget costs five euros.",
}
QUESTIONS = [
    {"id": "leave", "question": "How many days of paid leave do staff receive?",
     "gold_answer": "twenty-five days of paid leave per year", "gold_sources": ["holidays.txt"]},
    {"id": "park", "question": "Where do visitors park?", "gold_answer": "in the north lot",
     "gold_sources": "parking", "aliases": ["north lot"]},
    {"id": "widget", "question": "When does the widget factory open?", "gold_sources": ["widgets.txt"]},
    {"id": "ceo", "question": "Who is the chief executive of the company?", "answerable": False},
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, embedder):
    """One harness run with the extractive generator (and a generator that does not exist), written out."""
    root = tmp_path_factory.mktemp("harness")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    questions = root / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    dataset = load_dataset(questions, corpus=corpus)
    settings = Settings(ingest=IngestSettings(parse_workers=0))
    report = run_eval(EvalRun(dataset=dataset, generators=["extractive", "no-such-generator"], k=3,
                              store_dir=root / "store", settings=settings), embedder=embedder)
    json_path, html_path = write_report(report, root / "out")
    return {"root": root, "dataset": dataset, "settings": settings, "report": report,
            "json": json.loads(json_path.read_text()), "html": html_path.read_text()}


def test_report_json_has_per_question_and_summary_metrics(run):
    report = run["json"]
    assert report["dataset"] == "questions" and report["config"]["k"] == 3
    assert report["store"]["documents"] == 3 and report["store"]["rejected"] == []
    assert [it["id"] for it in report["items"]] == ["leave", "park", "widget", "ceo"]
    for item in report["items"]:
        row = item["answers"]["extractive"]
        assert row["status"] in ("pass", "warn", "fail")
        assert row["text"] and row["seconds"] > 0
        assert all(s["status"] in ("pass", "warn", "fail") for s in row["sentences"])
        assert len(item["passages"]) == 3
    leave = report["items"][0]["answers"]["extractive"]
    assert "twenty-five days" in leave["text"]
    assert leave["retrieval"] == {"recall": 1.0, "hit": True, "mrr": 1.0, "ndcg": 1.0}  # gold doc ranked first
    assert leave["token_f1"] > 0.3 and leave["evidence_recall"] == 1.0
    assert leave["citations"] and leave["citations"][0]["source"] == "holidays.txt" and leave["citations"][0]["gold"]
    park = report["items"][1]
    assert park["answers"]["extractive"]["contains_gold"] is True  # "north lot" is in the answer
    assert [p["gold"] for p in park["passages"]].count(True) == 1  # "parking" (a stem) names parking.txt
    assert report["items"][2]["answers"]["extractive"]["token_f1"] is None  # no gold answer given
    summary = report["summary"]["extractive"]
    assert summary["n"] == 4 and summary["errors"] == 0
    assert summary["pass"] + summary["warn"] + summary["fail"] == pytest.approx(1.0)
    assert summary["recall_at_k"] == 1.0 and summary["latency_p95_s"] >= summary["latency_median_s"] > 0
    assert summary["refusal_unanswerable"] is not None
    assert summary["refusal_answerable_gold"] == 0.0  # every answerable question had its gold passage, none refused
    assert "slices" not in report and all("slice" not in it for it in report["items"])  # no noise sweep asked for


def test_generator_that_cannot_load_is_reported_and_left_out(run):
    status = run["report"]["generators"]
    assert status["extractive"]["status"] == "ok"
    missing = status["no-such-generator"]
    assert missing["status"] == "error" and "unknown generator" in missing["error"]
    assert list(run["report"]["summary"]) == ["extractive"]
    assert "no-such-generator was not run" in run["html"]


def test_html_report_is_self_contained_and_escapes_document_text(run):
    page = run["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the widgets passage, shown as text
    assert "<script" not in page.lower()
    assert "<svg" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page
    assert page.count("<details class=item>") == 4
    assert "How many days of paid leave do staff receive?" in page


def test_rerun_reuses_the_store(run, embedder):
    dataset: EvalDataset = run["dataset"]
    again = run_eval(EvalRun(dataset=EvalDataset(dataset.name, dataset.items[:1], corpus=dataset.corpus),
                             generators=["extractive"], k=3, store_dir=run["root"] / "store", settings=run["settings"]),
                     embedder=embedder)
    assert again["store"]["ingested"] == 0 and again["store"]["unchanged"] == 3
    first = run["report"]["items"][0]["answers"]["extractive"]["text"]
    assert again["items"][0]["answers"]["extractive"]["text"] == first
    other = run["root"] / "other-corpus"
    other.mkdir()
    (other / "memo.txt").write_text("A memo about nothing in particular, for a different evaluation.")
    with pytest.raises(ConfigError, match="not part of"):  # would search the first corpus too
        run_eval(EvalRun(dataset=EvalDataset("other", dataset.items[:1], corpus=other), generators=["extractive"], k=3,
                         store_dir=run["root"] / "store", settings=run["settings"]), embedder=embedder)


def test_answers_are_judged_when_the_pipeline_validation_stage_is_off(run, embedder):
    dataset: EvalDataset = run["dataset"]
    settings = run["settings"].model_copy(update={"validation": ValidationSettings(enabled=False)})
    off = run_eval(EvalRun(dataset=EvalDataset(dataset.name, dataset.items[:1], corpus=dataset.corpus),
                           generators=["extractive"], k=3, store_dir=run["root"] / "store", settings=settings),
                   embedder=embedder)
    row, before = off["items"][0]["answers"]["extractive"], run["report"]["items"][0]["answers"]["extractive"]
    assert row["status"] == before["status"] and row["sentences"] == before["sentences"]


def test_written_documents_share_files_and_map_back_to_their_ids(tmp_path, embedder):
    """Built-in sets give documents as text: identical texts become one file that answers to both ids."""
    docs = [("a-1", "", "Visitors park in the north lot next to the main gate."),
            ("b-1", "", "Visitors park in the north lot next to the main gate."),
            ("c-1", "Bikes", "Bicycles are stored in the basement rack of building C.")]
    dataset = EvalDataset("tiny", [EvalItem(id="q", question="Where do visitors park?", gold_sources=["b-1"])], docs)
    report = run_eval(EvalRun(dataset=dataset, generators=["extractive"], k=2, store_dir=tmp_path / "store",
                              settings=Settings(ingest=IngestSettings(parse_workers=0))), embedder=embedder)
    assert report["store"]["documents"] == 2 and report["store"]["rejected"] == []
    row = report["items"][0]["answers"]["extractive"]
    assert row["retrieval"]["hit"] and row["retrieval"]["mrr"] == 1.0
