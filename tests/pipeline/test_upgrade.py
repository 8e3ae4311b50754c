"""A store made by an older version opens, gains the new columns, and is re-chunked by the next ingest; the
context line (document, entity, period, section) is indexed for search but never part of a quoted passage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline import Store, ingest
from pipeline.config import IngestSettings, Settings
from pipeline.retrieve import Retriever

COVER = ("ACME Corporation\n\n(Exact name of registrant as specified in its charter)\n\n"
         "For the quarterly period ended July 1, 2023\n\nLiquidity\n\n")


@pytest.fixture
def filing(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    body = "\n\n".join(f"Paragraph {i}. The warehouse team counted {i * 7} pallets of widgets and shipped them to the "
                       "northern depot on time." for i in range(40))
    (folder / "acme-10q.txt").write_text(COVER + body + "\n\nTotal net sales rose eight percent compared with the prior quarter.\n")
    (folder / "other.txt").write_text("Globex notes. Total net sales fell two percent at Globex in the same quarter.\n")
    return folder


def settings_for(tmp_path: Path) -> Settings:
    return Settings(store_dir=tmp_path / "store", ingest=IngestSettings(parse_workers=0))


def test_the_context_line_is_searched_but_never_quoted(filing, tmp_path, embedder):
    settings = settings_for(tmp_path)
    ingest([filing], settings, embedder=embedder)
    (doc,) = [d for d in Store(settings).documents() if d.source_uri.endswith("acme-10q.txt")]
    assert doc.entity == "ACME Corporation" and "July 1, 2023" in doc.period
    hits = Retriever(Store(settings), embedder).search("ACME Corporation", groups=["public"], k=20, mode="lexical")
    found = [h for h in hits if "Total net sales rose" in h.text]
    assert found and all(h.document.source_uri.endswith("acme-10q.txt") for h in hits)  # through the context line
    assert "ACME" not in found[0].text and "quarterly period" not in found[0].text  # which is never quoted
    assert "ACME Corporation" in found[0].context  # but known, and the generator sees it with the file's name
    assert found[0].to_passage(1).context == f"acme 10q txt | {found[0].context}"
    # document metadata is a filter field like any other column
    from pipeline.types import SearchFilters

    only = Retriever(Store(settings), embedder).search("net sales", groups=["public"], k=5,
                                                       filters=SearchFilters(fields={"entity": "ACME Corporation"}))
    assert only and all(h.document.source_uri.endswith("acme-10q.txt") for h in only)


def test_an_old_store_gains_its_columns_and_is_rechunked_once(filing, tmp_path, embedder):
    settings = settings_for(tmp_path)
    ingest([filing], settings, embedder=embedder)
    db = tmp_path / "store" / "sculptrag.db"
    with sqlite3.connect(db) as con:  # what a store made before the chunk format v2 looks like
        for table, column in [("chunks", "context"), ("documents", "chunk_digest"), ("documents", "entity"),
                              ("documents", "period"), ("documents", "dated"), ("documents", "author"),
                              ("quarantine", "chunk_digest")]:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("DROP TABLE alembic_version")  # and before Alembic (tests/pipeline/test_migrations.py)
    store = Store(settings)  # opens, adds the columns
    assert store.check()["consistent"]
    assert all(d.chunk_digest is None for d in store.documents())
    report = ingest([filing], settings, embedder=embedder)
    assert report.parsed == 2 and report.updated == 2 and report.unchanged == 0  # re-chunked with the new format
    assert all(d.chunk_digest and d.entity is not None or d.source_uri.endswith("other.txt") for d in Store(settings).documents())
    report = ingest([filing], settings, embedder=embedder)
    assert report.parsed == 0 and report.unchanged == 2  # and only once
    assert Store(settings).check()["consistent"]


def test_ask_filters_by_what_documents_say_about_themselves(filing, tmp_path, embedder, monkeypatch):
    import json

    from typer.testing import CliRunner

    from app.cli import cli

    settings = settings_for(tmp_path)
    ingest([filing], settings, embedder=embedder)
    store = str(settings.store_dir)
    run = CliRunner().invoke
    out = run(cli, ["ask", "How did total net sales change?", "--store", store, "--generator", "extractive", "--json",
                    "--filter", "entity=ACME Corporation"])
    assert out.exit_code == 0, out.output
    cited = {c["source_uri"].rsplit("/", 1)[-1] for c in json.loads(out.stdout)["citations"]}
    assert cited == {"acme-10q.txt"}
    bad = run(cli, ["ask", "x", "--store", store, "--filter", "colour=red"])
    assert bad.exit_code == 2 and "unknown document field" in bad.output


def test_a_question_about_a_company_is_answered_from_its_filing_and_refused_for_another(filing, tmp_path, embedder):
    """The chunk that answers never names ACME: its document does (the context line), and the generator sees
    that. A question about a company that no passage, title or document names is refused, not answered with
    another company's figure."""
    from pipeline.rag import RagPipeline

    settings = settings_for(tmp_path)
    ingest([filing], settings, embedder=embedder)
    rag = RagPipeline(settings, store=Store(settings))
    answer = rag.ask("How did ACME's total net sales change compared with the prior quarter?", groups=["public"], k=4)
    assert "Total net sales rose eight percent" in answer.text and not answer.validation.refusal
    answer = rag.ask("How did Initech's total net sales change compared with the prior quarter?", groups=["public"],
                     k=4)
    assert answer.validation.refusal
