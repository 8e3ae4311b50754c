"""The built-in `manuals` evaluation set: its question file, and its gold answers against the manuals' text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from evaluation.datasets import BUILTIN, MANUALS_FILES, MANUALS_QUESTIONS, USER_FIELDS, load_manuals
from pipeline.errors import ConfigError
from pipeline.text import REFUSAL

INSTALLED = all(Path(src).is_file() for src in MANUALS_FILES.values())
needs_manuals = pytest.mark.skipif(not INSTALLED, reason="needs Debian's apache2-doc, git-doc and bash-doc")


def rows() -> list[dict]:
    return [json.loads(line) for line in MANUALS_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def page_text(path: str) -> str:
    import lxml.html

    return " ".join(lxml.html.parse(path).getroot().text_content().split())


def test_file_rows_ids_and_sources():
    data = rows()
    assert "manuals" in BUILTIN and len(data) >= 50
    assert all(set(r) <= set(USER_FIELDS) for r in data)  # the user format: loadable with --corpus too
    ids = [r["id"] for r in data]
    assert len(ids) == len(set(ids))
    kinds = Counter(i.rsplit("-", 1)[0] for i in ids)
    assert set(kinds) == {"apache", "git", "bash", "unanswerable"} and 3 <= kinds["unanswerable"] <= 8
    for r in data:
        assert r["question"].strip().endswith("?"), r["id"]
        if r["id"].startswith("unanswerable"):
            assert r["answerable"] is False and not r["gold_sources"], r["id"]
        else:
            assert r["answerable"] is True and r["gold_answer"].strip(), r["id"]
            assert r["gold_sources"] and all(s in MANUALS_FILES for s in r["gold_sources"]), r["id"]
    # spread over the pages, not a few of them
    assert len({s for r in data for s in r["gold_sources"]}) >= 20


@needs_manuals
def test_every_gold_answer_is_in_the_text_of_a_gold_page():
    texts = {rel: page_text(src) for rel, src in MANUALS_FILES.items()}
    for r in rows():
        if r["answerable"]:
            forms = [" ".join(a.split()) for a in [r["gold_answer"], *r.get("aliases", [])]]
            assert any(f in texts[s] for f in forms for s in r["gold_sources"]), r["id"]


@needs_manuals
def test_loader_copies_exactly_the_listed_pages(tmp_path):
    corpus = tmp_path / "corpus"
    ds = load_manuals(corpus_dir=corpus)
    assert ds.name == "manuals" and ds.corpus == corpus and len(ds.items) == len(rows())
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert files == sorted(MANUALS_FILES)
    for item in ds.items:
        if item.answerable:
            assert item.aliases[0] == item.gold_answer
        else:
            assert item.gold_answer == REFUSAL and not item.aliases
    few = load_manuals(limit=5, corpus_dir=corpus)
    assert [i.id for i in few.items] == [i.id for i in ds.items][:5]


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    import evaluation.datasets as datasets

    monkeypatch.setattr(datasets, "MANUALS_FILES", {**MANUALS_FILES, "git/none.html": "/usr/share/doc/git-doc/no-such-page.html"})
    with pytest.raises(ConfigError, match=r"apt-get install (\S+ )*git-doc"):  # (with the others, where missing)
        load_manuals(corpus_dir=tmp_path / "c")
