"""End to end on real files: three Debian handbook chapters ingested through the CLI, two questions asked of the
bundled diffusion model (sculpt) through `sculptrag ask --json` and the API; every citation is a real chunk of
an ingested file and quotes it. The full run (20 chapters, 8 questions, every generator) is
benchmarks/e2e_shared.py.

Whether sculpt answers or refuses is the model's quality, measured in docs/benchmarks.md, not checked here;
the extractive baseline answers the same questions through the API, so the citation checks always see real
citations whatever the model does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from app.cli import cli
from pipeline.config import Settings
from pipeline.rag import RagPipeline
from pipeline.retrieve import Retriever
from pipeline.store import Store

pytestmark = pytest.mark.slow  # the handbook through the CLI and the API: minutes on 2 busy cores

CHAPTERS = ("case-study.html", "installation.html", "sect.apparmor.html")
QUESTIONS = {  # question -> the chapter that answers it
    "How much RAM does a Debian installation require?": "installation.html",
    "Where are AppArmor profiles stored?": "sect.apparmor.html",
}


def _path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(unquote(urlparse(uri).path)).resolve()


def _check_citations(citations: list[dict], text: str, store: Store, files: set[Path]) -> None:
    """Each citation: a chunk of the store, quoted from that chunk, of an ingested file, marked in the text."""
    rows = {r.id: r for r in store.chunks([c["chunk_id"] for c in citations])}
    docs = store.documents_by_id({r.document_id for r in rows.values()})
    for c in citations:
        row = rows.get(c["chunk_id"])
        assert row is not None, f"citation {c} names no chunk of the store"
        assert c["quote"].strip() and c["quote"].strip() in row.text, f"the quote is not text of chunk {row.id}"
        assert docs[row.document_id].source_uri == c["source_uri"]
        assert _path(c["source_uri"]) in files, f"{c['source_uri']} is not an ingested file"
        assert f"[{c['marker']}]" in text, f"marker [{c['marker']}] not in {text!r}"


def test_handbook_chapters_through_cli_and_api_with_sculpt(shared_data: Path, tmp_path: Path, embedder):
    src = shared_data / "docs" / "debian-handbook-en"
    missing = [name for name in CHAPTERS if not (src / name).is_file()]
    assert not missing, f"shared data incomplete: {missing} not in {src}"
    docs, store_dir = tmp_path / "docs", tmp_path / "store"
    docs.mkdir()
    for name in CHAPTERS:
        shutil.copy(src / name, docs / name)
    files = {p.resolve() for p in docs.iterdir()}

    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(docs), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    settings = Settings(store_dir=store_dir)
    store = Store(settings)
    assert {_path(d.source_uri) for d in store.documents()} == files and store.check()["consistent"]

    rag = RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings))
    for question, chapter in QUESTIONS.items():
        result = runner.invoke(cli, ["ask", question, "--store", str(store_dir), "--generator", "sculpt", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["generator"] == "sculpt" and data["trace"]["generator"] == "sculpt"
        _check_citations(data["citations"], data["text"], store, files)

        answer = rag.ask(question, generator="sculpt")
        retrieved = [_path(h.document.source_uri).name for h in answer.passages]
        assert chapter in retrieved, f"{chapter} not retrieved for {question!r}: {retrieved}"
        _check_citations([c.model_dump() for c in answer.citations], answer.text, store, files)
        for c in answer.citations:  # and each is the chunk of the passage it names
            assert c.chunk_id == answer.passages[c.passage_number - 1].chunk_id
        assert answer.text == data["text"], "the CLI and the API answered the same question differently"

        baseline = rag.ask(question, generator="extractive")
        assert baseline.citations, f"the extractive baseline cites nothing: {baseline.text!r}"
        _check_citations([c.model_dump() for c in baseline.citations], baseline.text, store, files)
        assert chapter in {_path(c.source_uri).name for c in baseline.citations}
