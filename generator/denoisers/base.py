"""The Denoiser protocol (what the sampler needs from a model) and the helpers adapters share.

A denoiser maps a token canvas to logits for every position. It knows its special ids (mask, EOS, pad:
read from the tokenizer and config.json, never literals), whether its logits are shifted (Dream predicts
position i from hidden state i-1), and whether it can reuse a KV cache of a prefix. The sampler
(generator/sampler.py) knows nothing else about models; adapters know nothing about sampling.

Left padding: a denoiser that sets `exact_left_padding = True` promises that a left-padded row (attention
mask 0 on the pads) gets the logits it gets alone (positions counted from its first real token); batched
generation pads prompts of different lengths only for such a denoiser (others are batched by prompt length).

KV-cache contract: `prefill(ids, mask, n, suffix_start=None)` runs a full forward and returns the logits of
all positions plus the keys/values of the first n positions (and, for a dual cache, of the positions from
`suffix_start` on); `forward(ids[:, n:suffix_start], mask, cache)` then runs only the positions between the
cached prefix and the cached suffix (the attention mask still covers the whole sequence).

Weights load lazily (`load_weights`): the model is built on the meta device, then each tensor is read from
its safetensors shard, cast to the target dtype and placed on the target device one at a time, so loading an
8B checkpoint never holds a second copy of it (nor a float32 one) in RAM.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from pipeline.device import resolve_device_and_dtype
from pipeline.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]


@dataclass
class KVCache:
    """Keys and values reused across steps: per layer, one (B, H_kv, L, D) buffer of the whole sequence's keys
    (after RoPE) and one of its values, as of the last refresh. The prefix [0, length) and, for a dual cache,
    the suffix [L - suffix_length, L) are reused; a cached step writes its own positions in between in place
    and attends over the whole buffer. Nothing is concatenated per step: at batch 32 on an 8B model, copying
    the cache into a new tensor each layer and step was more than half of a step's GPU time."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    length: int = 0
    suffix_length: int = 0


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
    exact_left_padding: bool  # a left-padded row's logits are its logits alone (see the module docstring)
    vocab_size: int
    max_length: int | None
    device: torch.device

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """(B, T) ids between the cached prefix (P) and suffix (S), (B, P+T+S) mask or None -> (B, T, V) logits."""
        ...

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache_len: int,
        suffix_start: int | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Full forward: (B, L, V) logits and the cache of the first `cache_len` positions (and, if
        `suffix_start` is given, of the positions from it on)."""
        ...


# the denoisers' device setting -> (device, dtype): CUDA in bf16 (fp16 without bf16) when available, else CPU
# float32 (the one resolver, pipeline.device)
resolve_device = resolve_device_and_dtype


def positions_from_mask(attention_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """(B, L) position ids counted from the first real token, so a left-padded row sees the positions a lone
    row would. Left pads get negative positions: their (never used) query rows keep the same offsets to the
    real tokens as in the reference LLaDA code, which numbers a padded row 0..L-1 (RoPE sees only offsets)."""
    pos = torch.arange(length, device=device).expand(batch, length)
    if attention_mask is None:
        return pos
    first = attention_mask.long().argmax(1, keepdim=True)  # (B, 1) index of the first real token
    return pos - first


def read_config(path: Path) -> dict:
    """config.json of a checkpoint folder, with a clear error when it is missing or unreadable."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(f"no config.json in {path}; point model_path at a checkpoint folder")
    try:
        return json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {cfg_path}: {e}") from e


def checkpoint_files(path: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it: model.safetensors, or the shards named in
    model.safetensors.index.json. Reads headers only."""
    from safetensors import safe_open

    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelLoadError(f"cannot read the weight map of {index}: {e}") from e
        absent = sorted({f for f in weight_map.values() if not (path / f).is_file()})
        if absent:
            raise ModelLoadError(f"{index} names shards that are not in {path}: {', '.join(absent)}")
        return {name: path / f for name, f in weight_map.items()}
    single = path / "model.safetensors"
    if not single.is_file():
        raise ModelLoadError(f"no model.safetensors (or its index) in {path}; only safetensors are loaded")
    with safe_open(str(single), framework="pt") as f:
        return {name: single for name in f.keys()}


def torch_dtype(name: str | torch.dtype | None, default: torch.dtype) -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (or a torch.dtype, or None for `default`) -> torch.dtype."""
    if name is None:
        return default
    if isinstance(name, torch.dtype):
        return name
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise ConfigError(f"dtype must be one of {', '.join(table)}, got {name!r}")
    return table[name]


def load_weights(model: nn.Module, path: Path, device: torch.device, dtype: torch.dtype,
                 ignore: tuple[str, ...] = (), layout: str = "model") -> nn.Module:
    """Fill `model` (built on the meta device) from the checkpoint folder `path`, one tensor at a time:
    read from its shard, cast to `dtype`, moved to `device`, set in place of the meta parameter. Names and
    shapes are checked against the model first (from the safetensors headers, before any tensor is read).
    Tensor names ending in one of `ignore` (buffers some exports save) are skipped."""
    from safetensors import safe_open

    files = {k: f for k, f in checkpoint_files(path).items() if not k.endswith(ignore)}
    expected = dict(model.state_dict(keep_vars=True))
    missing, unexpected = sorted(set(expected) - set(files)), sorted(set(files) - set(expected))
    if missing or unexpected:
        raise ModelLoadError(f"{path} does not match the {layout} layout of its config.json: missing tensors "
                             f"{_few(missing)}, unexpected tensors {_few(unexpected)}")
    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        by_file.setdefault(f, []).append(name)
    for f, names in by_file.items():
        with safe_open(str(f), framework="pt", device="cpu") as st:
            for name in names:
                shape = tuple(st.get_slice(name).get_shape())
                if shape != tuple(expected[name].shape):
                    raise ModelLoadError(f"{path}: tensor {name} has shape {shape} in {f.name}, but config.json "
                                         f"implies {tuple(expected[name].shape)}")
            for name in names:
                tensor = st.get_tensor(name).to(device).to(dtype)  # one tensor at a time: cast on the device
                module_name, _, attr = name.rpartition(".")
                setattr(model.get_submodule(module_name), attr, nn.Parameter(tensor, requires_grad=False))
    return model


def _few(names: list[str], n: int = 5) -> str:
    if not names:
        return "none"
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def find_tokenizer(path: Path):
    """The checkpoint's tokenizer, or None (logged) when the folder has no tokenizer files at all: such a
    denoiser works on token ids only (tests, benchmarks); a text generator refuses it."""
    if not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        log.warning("no tokenizer files in %s: the denoiser works on token ids only", path)
        return None
    return load_tokenizer(path)


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
