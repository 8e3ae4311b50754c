"""Fixtures for validation tests: the calibrated checker over the shared MiniLM embedder."""

from __future__ import annotations

import pytest

from validation.support import OverlapEmbeddingChecker


@pytest.fixture(scope="session")
def checker(embedder) -> OverlapEmbeddingChecker:
    """The default checker with the thresholds shipped in validation/calibration.json."""
    return OverlapEmbeddingChecker(embedder)
