"""The attack suite's shared set-up: stores under tmp_path that parse inline (fast), a corpus with an hr secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import IngestSettings, Settings

SECRET = "Zanzibar-7741"  # a word that appears only in hr documents: it must never reach a public caller


FORMAT_SEEDS = [
    "fake-text.txt", "fake-text-utf-16.txt", "README.md", "README.rst", "README.org", "fake-html.html",
    "fake-html-cp1252.html", "factbook.xml", "stanley-cups.csv", "stanley-cups.tsv", "fake-email.eml",
    "fake-email.msg", "fake-doc.rtf", "fake.docx", "fake-power-point.pptx", "stanley-cups.xlsx", "fake.odt",
    "language-docs/eng_spa_mult.epub", "pdf/layout-parser-paper-fast.pdf", "pdf/fake-memo.pdf",
]


@pytest.fixture(scope="session")
def format_seeds() -> list[str]:
    """One small real file per format (paths in the unstructured example corpus), each parsing in < 1 s."""
    return FORMAT_SEEDS


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
