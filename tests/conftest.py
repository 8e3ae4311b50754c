"""Shared test set-up: offline mode, the shared data folder, one embedder, skipping GPU tests without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.embed import SentenceTransformerEmbedder
from pipeline.config import IngestSettings, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; a test that needs it fails with a clear message when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set SCULPTRAG_SHARED_DATA to its path")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The bundled MiniLM embedder, loaded once for the whole run."""
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for a fresh store under tmp_path, with ingest limits overridden as given."""

    def make(**ingest) -> Settings:
        return Settings(store_dir=tmp_path / "store", ingest=IngestSettings(**ingest))

    return make


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
