"""The evaluation harness end to end on a tiny user dataset, the HTML report's escaping, and the loaders."""

from __future__ import annotations

import json

import pytest

from generator.prompt import REFUSAL
from pipeline.config import IngestSettings, Settings, ValidationSettings
from pipeline.errors import ConfigError
from validation.datasets import EvalDataset, load_chunking_eval, load_dataset, load_rgb, load_scifact
from validation.harness import contains_answer, percentile, retrieval_metrics, run_eval, write_report

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
    report = run_eval(dataset, ["extractive", "no-such-generator"], k=3, store_dir=root / "store",
                      settings=settings, embedder=embedder)
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
    again = run_eval(EvalDataset(dataset.name, dataset.items[:1], corpus=dataset.corpus), ["extractive"], k=3,
                     store_dir=run["root"] / "store", settings=run["settings"], embedder=embedder)
    assert again["store"]["ingested"] == 0 and again["store"]["unchanged"] == 3
    first = run["report"]["items"][0]["answers"]["extractive"]["text"]
    assert again["items"][0]["answers"]["extractive"]["text"] == first
    other = run["root"] / "other-corpus"
    other.mkdir()
    (other / "memo.txt").write_text("A memo about nothing in particular, for a different evaluation.")
    with pytest.raises(ConfigError, match="not part of"):  # would search the first corpus too
        run_eval(EvalDataset("other", dataset.items[:1], corpus=other), ["extractive"], k=3,
                 store_dir=run["root"] / "store", settings=run["settings"], embedder=embedder)


def test_answers_are_judged_when_the_pipeline_validation_stage_is_off(run, embedder):
    dataset: EvalDataset = run["dataset"]
    settings = run["settings"].model_copy(update={"validation": ValidationSettings(enabled=False)})
    off = run_eval(EvalDataset(dataset.name, dataset.items[:1], corpus=dataset.corpus), ["extractive"], k=3,
                   store_dir=run["root"] / "store", settings=settings, embedder=embedder)
    row, before = off["items"][0]["answers"]["extractive"], run["report"]["items"][0]["answers"]["extractive"]
    assert row["status"] == before["status"] and row["sentences"] == before["sentences"]


def test_written_documents_share_files_and_map_back_to_their_ids(tmp_path, embedder):
    """Built-in sets give documents as text: identical texts become one file that answers to both ids."""
    docs = [("a-1", "", "Visitors park in the north lot next to the main gate."),
            ("b-1", "", "Visitors park in the north lot next to the main gate."),
            ("c-1", "Bikes", "Bicycles are stored in the basement rack of building C.")]
    from validation.datasets import EvalItem

    dataset = EvalDataset("tiny", [EvalItem(id="q", question="Where do visitors park?", gold_sources=["b-1"])], docs)
    report = run_eval(dataset, ["extractive"], k=2, store_dir=tmp_path / "store",
                      settings=Settings(ingest=IngestSettings(parse_workers=0)), embedder=embedder)
    assert report["store"]["documents"] == 2 and report["store"]["rejected"] == []
    row = report["items"][0]["answers"]["extractive"]
    assert row["retrieval"]["hit"] and row["retrieval"]["mrr"] == 1.0


# -- pure metrics ----------------------------------------------------------------------------------------
def test_retrieval_metrics_count_each_document_once():
    ranked = [{"x"}, {"x"}, {"a"}, {"b"}]  # two passages of x, then gold a, then gold b
    m = retrieval_metrics(ranked, {"a", "b", "c"}, k=4)
    assert m["recall"] == pytest.approx(2 / 3) and m["hit"] and m["mrr"] == 0.5
    assert 0 < m["ndcg"] < 1
    assert retrieval_metrics([{"x"}], {"a"}, k=1) == {"recall": 0.0, "hit": False, "mrr": 0.0, "ndcg": 0.0}


def test_contains_answer_and_percentile():
    assert contains_answer("The game was in Tampa, Florida [1].", ["Tampa, Florida", "Tampa"])
    assert not contains_answer("The game was in Tampax.", ["Tampa"])
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 95) is None


# -- loaders ---------------------------------------------------------------------------------------------
def test_scifact_loader_keeps_cited_abstracts_and_a_few_others(shared_data):
    ds = load_scifact(shared_data, limit=3, extra_docs=5)
    assert len(ds.items) == 3 and len(ds.documents) <= 3 * 3 + 5
    ids = {d for d, _, _ in ds.documents}
    for item in ds.items:
        assert item.question and item.gold_answer and item.gold_sources and set(item.gold_sources) <= ids
    assert all(title and text for _, title, text in ds.documents)
    assert [i.id for i in load_scifact(shared_data, limit=5, extra_docs=0).items][:3] == [i.id for i in ds.items]


def test_chunking_eval_loader_points_gold_sources_at_corpus_files(shared_data):
    ds = load_chunking_eval(shared_data, limit=4)
    assert len(ds.items) == 4 and ds.corpus is not None
    for item in ds.items:
        assert item.question and item.gold_answer
        assert [(ds.corpus / s).is_file() for s in item.gold_sources] == [True]


def test_rgb_loader_gives_each_question_its_passages(shared_data):
    ds = load_rgb(shared_data, limit=3)
    ids = {d for d, _, _ in ds.documents}
    for item in ds.items:
        assert item.question and item.gold_answer and item.aliases[0] == item.gold_answer
        assert item.gold_sources and set(item.gold_sources) <= ids
    assert all(text for _, _, text in ds.documents)


def test_user_csv_format(tmp_path):
    path = tmp_path / "qs.csv"
    path.write_text("question,gold_answer,gold_sources,answerable\n"
                    "When does the lease end?,On 31 March 2027,lease.pdf; amendment.docx,\n"
                    "Who is the CEO?,,,false\n")
    ds = load_dataset(path, corpus=tmp_path)
    assert ds.items[0].gold_sources == ["lease.pdf", "amendment.docx"] and ds.items[0].answerable
    assert ds.items[1].gold_answer == REFUSAL and not ds.items[1].answerable
    with pytest.raises(ConfigError, match="--corpus"):
        load_dataset(path)
    (tmp_path / "bad.jsonl").write_text('{"gold_answer": "x"}\n')
    with pytest.raises(ConfigError, match="question"):
        load_dataset(tmp_path / "bad.jsonl", corpus=tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("squad")
