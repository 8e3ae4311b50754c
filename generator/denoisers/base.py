"""The Denoiser protocol (what the sampler needs from a model) and the helpers adapters share.

A denoiser maps a token canvas to logits for every position. It knows its special ids (mask, EOS, pad:
read from the tokenizer and config.json, never literals), whether its logits are shifted (Dream predicts
position i from hidden state i-1), and whether it can reuse a KV cache of a prefix. The sampler
(generator/sampler.py) knows nothing else about models; adapters know nothing about sampling.

KV-cache contract: `prefill(ids, mask, n)` runs a full forward and returns the logits of all positions
plus the keys/values of the first n positions; `forward(ids[:, n:], mask, cache)` then runs only the
positions after the cached prefix (the attention mask still covers the whole sequence).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from pipeline.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]


@dataclass
class KVCache:
    """Keys and values of a cached prefix, one (B, H_kv, P, D) tensor per layer (keys after RoPE)."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0


@runtime_checkable
class Denoiser(Protocol):
    """A masked-diffusion model as the sampler sees it."""

    mask_id: int
    eos_id: int
    pad_id: int
    stop_ids: tuple[int, ...]  # EOS plus end-of-turn ids: the answer ends at the first of these
    special_ids: tuple[int, ...]  # every special id (BOS, chat markers, mask...): never generated
    tokenizer: Any  # a transformers tokenizer, or None for tokenizer-free benchmarks
    shift_logits: bool
    supports_cache: bool
    vocab_size: int
    max_length: int | None
    device: torch.device

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """(B, T) ids after the cached prefix, (B, P+T) mask or None -> (B, T, V) float logits."""
        ...

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache_len: int
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Full forward: (B, L, V) logits and the cache of the first `cache_len` positions."""
        ...


def resolve_device(setting: str = "auto") -> tuple[torch.device, torch.dtype]:
    """'auto' | 'cpu' | 'cuda' -> (device, dtype): CUDA in bf16 when available, else CPU float32."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {setting!r}")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use device='auto' or 'cpu'")
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32


def positions_from_mask(attention_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """(B, L) position ids that skip left padding, so a padded row sees the positions a lone row would."""
    if attention_mask is None:
        return torch.arange(length, device=device).expand(batch, length)
    return (attention_mask.long().cumsum(1) - 1).clamp(min=0)


def read_config(path: Path) -> dict:
    """config.json of a checkpoint folder, with a clear error when it is missing or unreadable."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(f"no config.json in {path}; point model_path at a checkpoint folder")
    try:
        return json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {cfg_path}: {e}") from e


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of model.safetensors or of the shards named in model.safetensors.index.json (on CPU)."""
    from safetensors.torch import load_file

    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        raise ModelLoadError(f"no model.safetensors (or its index) in {path}; only safetensors are loaded")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(str(path / shard), device="cpu"))
    return state


def load_tokenizer(path: Path):
    """The checkpoint's tokenizer, without remote code: AutoTokenizer, else tokenizer.json or vocab+merges."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # custom tokenizer classes (Dream) need remote code: fall back to the files
        log.info("AutoTokenizer failed for %s (%s); loading the tokenizer files directly", path, e)
    special = _special_tokens_from_files(path)
    if (path / "tokenizer.json").is_file():
        tok = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **special)
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        from transformers import Qwen2TokenizerFast

        tok = Qwen2TokenizerFast(str(path / "vocab.json"), str(path / "merges.txt"), **special)
    else:
        raise ModelLoadError(f"no usable tokenizer files in {path} (tokenizer.json or vocab.json+merges.txt)")
    template = path / "chat_template.jinja"
    cfg = _read_json(path / "tokenizer_config.json")
    tok.chat_template = template.read_text() if template.is_file() else cfg.get("chat_template")
    return tok


def special_ids(tokenizer, config: dict, extra_stops: tuple[int, ...] = ()) -> dict[str, Any]:
    """mask/eos/pad/stop/special ids from config.json and the tokenizer (config wins for the mask id).

    `extra_stops` (e.g. generation_config.json's eos ids) also end the answer.
    """
    mask_id = config.get("mask_token_id")
    if mask_id is None and tokenizer is not None:
        mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise ModelLoadError("the checkpoint names no mask token (config mask_token_id or tokenizer mask_token)")
    eos_id = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    eos_cfg = config.get("eos_token_id")
    eos_cfg = eos_cfg[0] if isinstance(eos_cfg, list) and eos_cfg else eos_cfg
    eos_id = eos_id if eos_id is not None else eos_cfg
    if eos_id is None and tokenizer is not None:
        eos_id = tokenizer.sep_token_id  # BERT-style models end a text with [SEP]
    if eos_id is None:
        raise ModelLoadError("the checkpoint names no EOS token (tokenizer eos_token or config eos_token_id)")
    pad_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    pad_id = pad_id if pad_id is not None else config.get("pad_token_id", eos_id)
    stops = {int(eos_id)}
    stops.update(int(i) for i in extra_stops)
    specials: set[int] = {int(mask_id)}
    if tokenizer is not None:
        specials.update(int(i) for i in tokenizer.all_special_ids)
        vocab = tokenizer.get_vocab()
        for name in ("<|eot_id|>", "<|im_end|>", "<|end_of_turn|>", "<end_of_turn>"):
            if name in vocab:  # end-of-turn markers of common chat templates end the answer too
                stops.add(int(vocab[name]))
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        specials.update(int(i) for i, t in added.items() if getattr(t, "special", False))
    return dict(mask_id=int(mask_id), eos_id=int(eos_id), pad_id=int(pad_id), stop_ids=tuple(sorted(stops)),
                special_ids=tuple(sorted(specials - stops)))


def generation_eos(path: Path) -> list[int]:
    """EOS ids listed in generation_config.json (an int or a list), if the file exists."""
    eos = _read_json(Path(path) / "generation_config.json").get("eos_token_id")
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def _special_tokens_from_files(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        for key in ("bos_token", "eos_token", "pad_token", "mask_token", "unk_token"):
            val = _read_json(path / name).get(key)
            if isinstance(val, dict):
                val = val.get("content")
            if isinstance(val, str) and key not in out:
                out[key] = val
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}
