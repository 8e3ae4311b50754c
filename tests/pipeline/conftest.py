"""Fixtures for store/ingestion tests: a small real-document folder (the embedder is tests/conftest.py's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SMALL_SET = [
    "fake-text.txt", "fake.docx", "fake-html.html", "README.md", "fake-email.eml",
    "pdf/layout-parser-paper-fast.pdf", "stanley-cups.xlsx", "fake.odt", "fake-power-point.pptx",
]


@pytest.fixture
def small_docs(shared_data: Path, tmp_path: Path) -> Path:
    """A copy of a few real documents in several formats (the tests modify and delete files)."""
    src = shared_data / "docs" / "unstructured-example-docs"
    dst = tmp_path / "docs"
    dst.mkdir()
    for name in SMALL_SET:
        shutil.copy(src / name, dst / Path(name).name)
    return dst
