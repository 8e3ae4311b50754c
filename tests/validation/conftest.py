"""Fixtures for validation tests: the bundled MiniLM embedder, loaded once, and the calibrated checker."""

from __future__ import annotations

import pytest

from ingest.embed import SentenceTransformerEmbedder
from validation.support import OverlapEmbeddingChecker


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture(scope="session")
def checker(embedder) -> OverlapEmbeddingChecker:
    """The default checker with the thresholds shipped in validation/calibration.json."""
    return OverlapEmbeddingChecker(embedder)
