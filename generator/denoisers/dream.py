"""Dream (Dream-org/Dream-v0-Instruct-7B layout) implemented natively: loads without trust_remote_code.

Dream is Qwen2.5 turned into a masked-diffusion model: Qwen2 blocks (q/k/v projections with bias, GQA,
RoPE, SwiGLU MLP) run bidirectionally, and the logits are shifted: position i is predicted from hidden
state i-1 (`shift_logits=True`; the sampler aligns them). Parameter names follow the published checkpoint
(`model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, `model.layers.N.mlp.gate_proj.weight`,
`model.norm.weight`, `lm_head.weight`). The mask id comes from config.json or the tokenizer's mask token.
A config.json asking for another layout (sliding-window attention, RoPE scaling, a mixture of experts, another
activation) is refused with an error that names the key; `auto_map` and other non-architectural keys are
ignored: no remote code is ever run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.device import loads_model
from pipeline.errors import ModelLoadError

from .base import (
    KVCache,
    checkpoint_files,
    find_tokenizer,
    generation_eos,
    load_weights,
    read_config,
    resolve_device,
    special_ids,
    torch_dtype,
)
from .blocks import NativeDenoiser, RMSNorm, attend, rope_cos_sin, run_layers

log = logging.getLogger(__name__)

_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers some Qwen2 exports save; recomputed here


@dataclass(frozen=True)
class DreamConfig:
    """The config.json keys of a Dream checkpoint that the architecture needs (Qwen2 names)."""

    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    vocab_size: int = 152064
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1000000.0
    max_position_embeddings: int = 131072
    tie_word_embeddings: bool = False
    attention_bias: bool = True  # Qwen2 has biases on q/k/v (not on o_proj)

    @classmethod
    def from_dict(cls, cfg: dict) -> "DreamConfig":
        for key, value in cfg.items():
            if key in _REQUIRED and value not in _REQUIRED[key]:
                allowed = " or ".join(repr(v) for v in _REQUIRED[key])
                raise ModelLoadError(f"Dream config {key}={value!r} is not supported (only {allowed}): this "
                                     "adapter implements the Qwen2 layout of Dream-v0")
            if "expert" in key and value:
                raise ModelLoadError(f"Dream config {key}={value!r}: mixture-of-experts layouts are not "
                                     "supported by this adapter")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in known and v is not None})


class _Attention(nn.Module):
    def __init__(self, c: DreamConfig, **kw) -> None:
        super().__init__()
        head_dim = c.hidden_size // c.num_attention_heads
        kv = c.num_key_value_heads * head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.hidden_size, bias=c.attention_bias, **kw)
        self.k_proj = nn.Linear(c.hidden_size, kv, bias=c.attention_bias, **kw)
        self.v_proj = nn.Linear(c.hidden_size, kv, bias=c.attention_bias, **kw)
        self.o_proj = nn.Linear(c.hidden_size, c.hidden_size, bias=False, **kw)


class _MLP(nn.Module):
    def __init__(self, c: DreamConfig, **kw) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False, **kw)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False, **kw)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    """One Qwen2 decoder layer, run without a causal mask."""

    def __init__(self, c: DreamConfig, **kw) -> None:
        super().__init__()
        self.c = c
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, **kw)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, **kw)
        self.self_attn = _Attention(c, **kw)
        self.mlp = _MLP(c, **kw)

    def forward(self, x, rope, key_mask, past):
        a = self.self_attn
        att, kv = attend(self.input_layernorm(x), (a.q_proj, a.k_proj, a.v_proj, a.o_proj),
                         self.c.num_attention_heads, self.c.num_key_value_heads, rope, False, key_mask, past)
        x = x + att
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class _DreamBase(nn.Module):
    def __init__(self, c: DreamConfig, **kw) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, **kw)
        self.layers = nn.ModuleList(DreamLayer(c, **kw) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, **kw)


class DreamModel(nn.Module):
    """Dream with the published module tree: `model.{embed_tokens, layers, norm}` and `lm_head`."""

    def __init__(self, config: DreamConfig, device=None, dtype=None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.config = config
        self.vocab_size = config.vocab_size
        self.model = _DreamBase(config, **kw)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False, **kw)

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor | None,
        cache: KVCache | None = None, store: int = 0, suffix_from: int | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """(B, T) ids -> (B, T, V) unshifted logits (row i predicts position i+1) and the optional cache."""
        c = self.config
        h = self.model.embed_tokens(input_ids)  # (B, T, C)
        rope = rope_cos_sin(positions, c.hidden_size // c.num_attention_heads, c.rope_theta)
        h, new_cache = run_layers(self.model.layers, h, rope, key_mask, cache, store, suffix_from)
        h = self.model.norm(h)
        head = self.model.embed_tokens.weight if c.tie_word_embeddings else self.lm_head.weight
        return F.linear(h, head), new_cache


@loads_model
def load_dream(path: str | Path, device: str = "auto", dtype: str | None = None) -> NativeDenoiser:
    """A Dream checkpoint folder as published (config.json, model.safetensors or shards with an index,
    generation_config.json, tokenizer files) as a Denoiser; weights stream in the target dtype to the device."""
    path = Path(path)
    raw = read_config(path)
    if raw.get("model_type", "Dream").lower() != "dream":
        raise ModelLoadError(f"{path} is a {raw.get('model_type')!r} checkpoint (config model_type), not Dream")
    # Qwen2 has q/k/v biases, a Dream made from a LLaMA base may not: read it from the tensor names
    names = checkpoint_files(path)
    raw = dict(raw, attention_bias="model.layers.0.self_attn.q_proj.bias" in names)
    config = DreamConfig.from_dict(raw)
    dev, default_dtype = resolve_device(device)
    dtype = torch_dtype(dtype, default_dtype)
    with torch.device("meta"):
        model = DreamModel(config)
    load_weights(model, path, dev, dtype, ignore=_IGNORED_SUFFIXES, layout="Dream")
    tokenizer = find_tokenizer(path)
    ids = special_ids(tokenizer, raw, extra_stops=tuple(generation_eos(path)))
    log.info("loaded Dream from %s on %s (%s): %d layers, hidden %d", path, dev, dtype,
             config.num_hidden_layers, config.hidden_size)
    return NativeDenoiser(model, tokenizer, shift_logits=True, max_length=config.max_position_embeddings, **ids)


# config.json keys whose other values change the architecture: refused, naming the key
_REQUIRED: dict[str, tuple] = {
    "hidden_act": ("silu",),
    "rope_scaling": (None, {}),
    "use_sliding_window": (False,),
}
