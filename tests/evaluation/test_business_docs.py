"""The built-in `business_docs` evaluation set: its file, its corpus, and its gold answers against the documents."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline.errors import ConfigError
from pipeline.text import REFUSAL
from evaluation.datasets import (
    BUILTIN, BUSINESS_DOCS, BUSINESS_DOCS_FILES, BUSINESS_DOCS_QUESTIONS, USER_FIELDS, load_business_docs,
    load_dataset,
)
from validation.text import normalize

KINDS = ("table", "lookalike", "prose", "unanswerable")


def rows() -> list[dict]:
    return [json.loads(line) for line in BUSINESS_DOCS_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def kind(row: dict) -> str:
    return row["id"].rsplit("-", 1)[0]


def test_file_rows_ids_and_kinds():
    data = rows()
    assert len(data) >= 60
    assert all(set(r) <= set(USER_FIELDS) for r in data)  # the user format: loadable with --corpus too
    ids = [r["id"] for r in data]
    assert len(ids) == len(set(ids))
    counts = Counter(kind(r) for r in data)
    assert set(counts) == set(KINDS)
    assert counts["table"] >= 20 and counts["lookalike"] >= 20 and counts["prose"] >= 10
    assert 3 <= counts["unanswerable"] <= 8
    for r in data:
        assert r["question"].strip().endswith("?"), r["id"]
        if kind(r) == "unanswerable":
            assert r["answerable"] is False and not r["gold_sources"], r["id"]
        else:
            assert r["answerable"] is True and r["gold_answer"] and r["gold_sources"], r["id"]
    # the look-alikes: several questions have more than one right document
    assert sum(len(r["gold_sources"]) > 1 for r in data if kind(r) == "lookalike") >= 8


def test_gold_sources_exist_in_the_shared_data_and_the_corpus(shared_data):
    folder = shared_data / BUSINESS_DOCS
    assert len(set(BUSINESS_DOCS_FILES)) == len(BUSINESS_DOCS_FILES)
    for rel in BUSINESS_DOCS_FILES:
        assert (folder / rel).is_file(), rel
    for r in rows():
        for rel in r["gold_sources"]:
            assert rel in BUSINESS_DOCS_FILES, (r["id"], rel)


def test_loader_builds_the_corpus_of_exactly_the_listed_files(shared_data, tmp_path):
    corpus = tmp_path / "corpus"
    ds = load_business_docs(shared_data, corpus_dir=corpus)
    assert "business_docs" in BUILTIN
    assert ds.name == "business_docs" and ds.corpus == corpus and not ds.documents
    assert len(ds.items) == len(rows())
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert files == sorted(BUSINESS_DOCS_FILES)
    for item in ds.items:
        if item.answerable:
            assert item.aliases[0] == item.gold_answer  # "answer contains" scores the aliases only
        else:
            assert item.gold_answer == REFUSAL and not item.aliases

    # a stale file is pruned, a changed one copied again, an unchanged one left alone
    (corpus / "pdf" / "old.pdf").write_bytes(b"%PDF-1.4 stale")
    (corpus / "simple-table.md").write_text("changed")
    before = (corpus / "vodafone.xlsx").stat().st_mtime_ns
    load_business_docs(shared_data, corpus_dir=corpus)
    assert not (corpus / "pdf" / "old.pdf").exists()
    assert (corpus / "simple-table.md").read_bytes() == (shared_data / BUSINESS_DOCS / "simple-table.md").read_bytes()
    assert (corpus / "vodafone.xlsx").stat().st_mtime_ns == before

    # a folder it did not make is never pruned
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by"):
        load_business_docs(shared_data, corpus_dir=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_limit_is_a_seeded_prefix_and_keeps_the_whole_corpus(shared_data, tmp_path):
    full = load_business_docs(shared_data, corpus_dir=tmp_path / "c")
    few = load_business_docs(shared_data, limit=7, corpus_dir=tmp_path / "c")
    assert [i.id for i in few.items] == [i.id for i in full.items][:7]
    assert few.corpus == full.corpus
    assert len([p for p in few.corpus.rglob("*") if p.is_file() and not p.name.startswith(".")]) == len(BUSINESS_DOCS_FILES)
    other = load_business_docs(shared_data, seed=1, corpus_dir=tmp_path / "c")
    assert [i.id for i in other.items] != [i.id for i in full.items]
    with pytest.raises(ConfigError, match="brings its own documents"):
        load_dataset("business_docs", corpus=tmp_path, root=shared_data)


# -- the gold answers against the parsed documents (parsing all of them, DA-619p above all, takes minutes) --
def _holds(text: str, answer: str) -> bool:
    """`answer` occurs in `text` as whole words after the harness's normalisation; a figure of 4+ characters may
    also be glued to its label (PDF text runs such as "NET PROFIT`67,845 crore")."""
    a = normalize(answer)
    return bool(a) and (f" {a} " in text or (len(a) >= 4 and any(c.isdigit() for c in a) and a in text))


@pytest.fixture(scope="module")
def parsed(shared_data) -> dict[str, str]:
    """Corpus file -> its normalised parsed text, as `sculptrag ingest` parses it."""
    from ingest.parse import parse_file, precheck, sniff
    from pipeline.config import Settings

    settings = Settings().ingest
    out = {}
    for rel in BUSINESS_DOCS_FILES:
        path = shared_data / BUSINESS_DOCS / rel
        file_type, media_type = sniff(path)
        pages = precheck(path, file_type, path.stat().st_size, settings)
        doc = parse_file(path, file_type, media_type, pages, settings)
        out[rel] = " " + normalize(" ".join(e.text for e in doc.elements)) + " "
    return out


# answers that other corpus files also hold, where the question itself names the right document
NAMED_IN_QUESTION = {"table-18": "Yellow: the slide with a table", "lookalike-03": "Mallori: the memo, not her e-mails",
                     "prose-09": "default: Backus's fetch"}


@pytest.mark.slow
def test_every_gold_answer_is_in_a_gold_source_and_every_holder_is_a_gold_source(parsed):
    missing, unlisted = [], []
    for r in rows():
        if not r["answerable"]:
            continue
        forms = [r["gold_answer"], *r["aliases"]]
        if not any(_holds(parsed[s], f) for s in r["gold_sources"] for f in forms):
            missing.append(r["id"])
        gold = normalize(r["gold_answer"])
        specific = (len(gold) >= 6 and not gold.replace(" ", "").isdigit()) or (gold.isdigit() and len(gold) >= 5)
        if specific and r["id"] not in NAMED_IN_QUESTION:
            others = [f for f in BUSINESS_DOCS_FILES if f not in r["gold_sources"] and f" {gold} " in parsed[f]]
            if others:
                unlisted.append((r["id"], others))
    assert not missing, f"gold answers found in none of their gold sources: {missing}"
    assert not unlisted, f"files that hold the answer but are not gold sources: {unlisted}"
