"""Fixtures for store/ingestion tests: a small real-document folder and one shared embedder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.embed import SentenceTransformerEmbedder
from pipeline.config import IngestSettings, Settings

SMALL_SET = [
    "fake-text.txt", "fake.docx", "fake-html.html", "README.md", "fake-email.eml",
    "pdf/layout-parser-paper-fast.pdf", "stanley-cups.xlsx", "fake.odt", "fake-power-point.pptx",
]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture
def small_docs(shared_data: Path, tmp_path: Path) -> Path:
    """A copy of a few real documents in several formats (the tests modify and delete files)."""
    src = shared_data / "docs" / "unstructured-example-docs"
    dst = tmp_path / "docs"
    dst.mkdir()
    for name in SMALL_SET:
        shutil.copy(src / name, dst / Path(name).name)
    return dst


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for a fresh store under tmp_path, with ingest limits overridden as given."""

    def make(**ingest) -> Settings:
        return Settings(store_dir=tmp_path / "store", ingest=IngestSettings(**ingest))

    return make
