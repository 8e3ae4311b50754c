"""The evaluation sets' loaders: the built-in sets from the shared data, and the user format."""

from __future__ import annotations

import pytest

from evaluation.datasets import load_chunking_eval, load_dataset, load_rgb, load_scifact
from pipeline.errors import ConfigError
from pipeline.text import REFUSAL


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
