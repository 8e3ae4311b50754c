"""LLaDA (GSAI-ML/LLaDA-8B-Instruct layout) implemented natively: loads without trust_remote_code.

A LLaMA-style transformer run bidirectionally: RMSNorm, RoPE (rotate-half, float32), SwiGLU MLP
(`ff_out(silu(ff_proj(x)) * up_proj(x))`), separate q/k/v projections. Module and parameter names follow the
published checkpoint (`model.transformer.wte.weight`, `model.transformer.blocks.N.q_proj.weight`, ...,
`model.transformer.ln_f.weight`, `model.transformer.ff_out.weight`), so its safetensors load as they are.
Only the "llama" block with RMSNorm, SwiGLU and RoPE is supported (what every released LLaDA uses); a
config.json asking for anything else (another block type, ALiBi, q/k norms, a mixture-of-experts layout...)
is refused with an error that names the key. Keys that do not change the forward pass (dropout, init,
`auto_map`, `flash_attention`...) are ignored: no remote code is ever run.
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


@dataclass(frozen=True)
class LLaDAConfig:
    """The config.json keys of a LLaDA checkpoint that the architecture needs (published names)."""

    d_model: int = 4096
    n_heads: int = 32
    n_kv_heads: int | None = None
    multi_query_attention: bool | None = None
    n_layers: int = 32
    mlp_hidden_size: int | None = 12288
    mlp_ratio: int = 4
    vocab_size: int = 126464
    embedding_size: int | None = 126464
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    max_sequence_length: int = 4096
    weight_tying: bool = False
    include_bias: bool = False
    include_qkv_bias: bool = False
    input_emb_norm: bool = False
    scale_logits: bool = False
    rope_full_precision: bool = True

    @classmethod
    def from_dict(cls, cfg: dict) -> "LLaDAConfig":
        for key, value in cfg.items():
            if key in _REQUIRED and value not in _REQUIRED[key]:
                allowed = " or ".join(repr(v) for v in _REQUIRED[key])
                raise ModelLoadError(f"LLaDA config {key}={value!r} is not supported (only {allowed}): this "
                                     "adapter implements the LLaMA-block LLaDA of GSAI-ML/LLaDA-8B")
            if ("expert" in key or key.startswith("moe")) and value:
                raise ModelLoadError(f"LLaDA config {key}={value!r}: mixture-of-experts layouts (LLaDA-MoE) are "
                                     "not supported by this adapter")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in known})

    @property
    def kv_heads(self) -> int:
        return 1 if self.multi_query_attention else (self.n_kv_heads or self.n_heads)

    @property
    def hidden(self) -> int:
        return self.mlp_hidden_size or self.mlp_ratio * self.d_model

    @property
    def padded_vocab(self) -> int:
        return self.embedding_size or self.vocab_size


class LLaDABlock(nn.Module):
    """One bidirectional LLaMA block with LLaDA's parameter names."""

    def __init__(self, c: LLaDAConfig, device=None, dtype=None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        head_dim = c.d_model // c.n_heads
        qkv_bias = c.include_bias or c.include_qkv_bias
        self.c = c
        self.attn_norm = RMSNorm(c.d_model, c.rms_norm_eps, **kw)
        self.ff_norm = RMSNorm(c.d_model, c.rms_norm_eps, **kw)
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=qkv_bias, **kw)
        self.k_proj = nn.Linear(c.d_model, c.kv_heads * head_dim, bias=qkv_bias, **kw)
        self.v_proj = nn.Linear(c.d_model, c.kv_heads * head_dim, bias=qkv_bias, **kw)
        self.attn_out = nn.Linear(c.d_model, c.d_model, bias=c.include_bias, **kw)
        self.ff_proj = nn.Linear(c.d_model, c.hidden, bias=c.include_bias, **kw)
        self.up_proj = nn.Linear(c.d_model, c.hidden, bias=c.include_bias, **kw)
        self.ff_out = nn.Linear(c.hidden, c.d_model, bias=c.include_bias, **kw)

    def forward(self, x, rope, key_mask, past):
        proj = (self.q_proj, self.k_proj, self.v_proj, self.attn_out)
        att, kv = attend(self.attn_norm(x), proj, self.c.n_heads, self.c.kv_heads, rope,
                         self.c.rope_full_precision, key_mask, past)
        x = x + att
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h)), kv


class _LLaDATransformer(nn.Module):
    def __init__(self, c: LLaDAConfig, device=None, dtype=None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        parts = {
            "wte": nn.Embedding(c.padded_vocab, c.d_model, **kw),
            "blocks": nn.ModuleList(LLaDABlock(c, **kw) for _ in range(c.n_layers)),
            "ln_f": RMSNorm(c.d_model, c.rms_norm_eps, **kw),
        }
        if not c.weight_tying:
            parts["ff_out"] = nn.Linear(c.d_model, c.padded_vocab, bias=c.include_bias, **kw)
        self.transformer = nn.ModuleDict(parts)


class LLaDAModelLM(nn.Module):
    """LLaDA with the published module tree: `model.transformer.{wte, blocks, ln_f, ff_out}`."""

    def __init__(self, config: LLaDAConfig, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.padded_vocab
        self.model = _LLaDATransformer(config, device=device, dtype=dtype)

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor | None,
        cache: KVCache | None = None, store: int = 0, suffix_from: int | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """(B, T) ids at (B, T) positions -> (B, T, V) logits and, if asked, the cache of the first `store`
        positions (and of the positions from `suffix_from` on)."""
        c, t = self.config, self.model.transformer
        h = t.wte(input_ids)  # (B, T, C)
        if c.input_emb_norm:
            h = h * c.d_model**0.5
        rope = rope_cos_sin(positions, c.d_model // c.n_heads, c.rope_theta)
        h, new_cache = run_layers(t.blocks, h, rope, key_mask, cache, store, suffix_from)
        h = t.ln_f(h)
        logits = F.linear(h, t.wte.weight) if c.weight_tying else t.ff_out(h)  # (B, T, V)
        if c.scale_logits:
            logits = logits * (1 / c.d_model**0.5)
        return logits, new_cache


@loads_model
def load_llada(path: str | Path, device: str = "auto", dtype: str | None = None) -> NativeDenoiser:
    """A LLaDA checkpoint folder as published (config.json, model.safetensors or shards with an index,
    generation_config.json, tokenizer files) as a Denoiser; weights stream in the target dtype to the device."""
    path = Path(path)
    raw = read_config(path)
    if raw.get("model_type", "llada").lower() != "llada":
        raise ModelLoadError(f"{path} is a {raw.get('model_type')!r} checkpoint (config model_type), not LLaDA")
    config = LLaDAConfig.from_dict(raw)
    dev, default_dtype = resolve_device(device)
    dtype = torch_dtype(dtype, default_dtype)
    with torch.device("meta"):
        model = LLaDAModelLM(config)
    load_weights(model, path, dev, dtype, layout="LLaDA")
    tokenizer = find_tokenizer(path)
    ids = special_ids(tokenizer, raw, extra_stops=tuple(generation_eos(path)))
    log.info("loaded LLaDA from %s on %s (%s): %d layers, d_model %d", path, dev, dtype, config.n_layers,
             config.d_model)
    return NativeDenoiser(model, tokenizer, shift_logits=False, max_length=config.max_sequence_length, **ids)


# config.json keys whose other values change the architecture: refused, naming the key
_REQUIRED: dict[str, tuple] = {
    "block_type": ("llama",),
    "layer_norm_type": ("rms",),
    "activation_type": ("silu",),
    "rope": (True,),
    "alibi": (False,),
    "attention_layer_norm": (False,),
    "layer_norm_with_affine": (True,),
    "bias_for_layer_norm": (None, False),
    "clip_qkv": (None,),
    "block_group_size": (1,),
}
