"""The attack suite's shared set-up: one real embedder, stores under tmp_path that parse inline (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.embed import SentenceTransformerEmbedder
from pipeline.config import IngestSettings, Settings

SECRET = "Zanzibar-7741"  # a word that appears only in hr documents: it must never reach a public caller


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_dir=tmp_path / "store", ingest=IngestSettings(parse_workers=0))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """public/ (two notes) and hr/ (one salary note holding SECRET), as an operator would lay them out."""
    root = tmp_path / "corpus"
    (root / "public").mkdir(parents=True)
    (root / "hr").mkdir()
    (root / "public" / "canteen.txt").write_text("The canteen opens at eight and serves soup on Fridays.\n")
    (root / "public" / "parking.txt").write_text("Parking permits are renewed every January at the front desk.\n")
    (root / "hr" / "salaries.txt").write_text(
        f"Confidential salary review. The bonus code word is {SECRET}. Salaries rise four percent in March.\n")
    return root
