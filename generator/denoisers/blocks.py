"""Shared pieces of the native bidirectional transformers (LLaDA, Dream) and the adapter that wraps them.

RMSNorm, rotary embeddings (rotate-half layout, as LLaMA/Qwen2), attention over an optional cached prefix
and suffix with a key padding mask, and `NativeDenoiser`, which turns a native model into a `Denoiser`.
On CUDA, a block's cached steps replay one captured CUDA graph (see `NativeDenoiser.cuda_graphs`).
Attention is never causal: every position sees every non-padding position. Positions come from the
attention mask, so a left-padded row gets exactly the positions it would get alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import KVCache, positions_from_mask

_SDPA_GQA = tuple(int(n) for n in torch.__version__.split(".")[:2]) >= (2, 5)  # enable_gqa came in torch 2.5


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device=None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)  # normalise in float32
        return self.weight * h.to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) positions -> cos, sin of shape (B, 1, T, head_dim) in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, D)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, fp32: bool) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys; `fp32` rotates in float32 (LLaDA) instead of x's dtype (Qwen2)."""
    xr = x.float() if fp32 else x
    cos, sin = (cos, sin) if fp32 else (cos.to(x.dtype), sin.to(x.dtype))
    x1, x2 = xr.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (xr * cos + rotated * sin).to(x.dtype)


def attend(
    x: torch.Tensor,
    proj: tuple[nn.Linear, nn.Linear, nn.Linear, nn.Linear],
    n_heads: int,
    n_kv_heads: int,
    rope: tuple[torch.Tensor, torch.Tensor],
    rope_fp32: bool,
    key_mask: torch.Tensor | None,
    past: tuple[torch.Tensor, torch.Tensor, int] | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Bidirectional multi-head attention of (B, T, C) normed x over [prefix keys | own keys | suffix keys].

    `past` is (k buffer, v buffer, start): a cache's (B, H_kv, L, D) buffers of this layer, whose positions
    [start, start + T) this call's keys and values overwrite in place (the cached prefix before them and
    suffix after them are read as they are). Returns the (B, T, C) output (after the output projection) and
    this layer's full (k, v), each (B, H_kv, L, D), so a caller can keep them as a cache.
    """
    q_proj, k_proj, v_proj, o_proj = proj
    B, T, _ = x.shape
    q = q_proj(x).view(B, T, n_heads, -1).transpose(1, 2)  # (B, H, T, D)
    k = k_proj(x).view(B, T, n_kv_heads, -1).transpose(1, 2)  # (B, Hkv, T, D)
    v = v_proj(x).view(B, T, n_kv_heads, -1).transpose(1, 2)
    cos, sin = rope
    q, k = apply_rope(q, cos, sin, rope_fp32), apply_rope(k, cos, sin, rope_fp32)
    if past is not None:
        k_buf, v_buf, start = past
        k_buf[:, :, start:start + T] = k
        v_buf[:, :, start:start + T] = v
        k, v = k_buf, v_buf
    kv = (k, v)
    gqa = {}
    if n_kv_heads != n_heads:  # grouped-query attention: each kv head serves n_heads/n_kv_heads query heads
        if _SDPA_GQA:  # without copying the keys and values per query head (the whole cache, every step)
            gqa = {"enable_gqa": True}
        else:
            k = k.repeat_interleave(n_heads // n_kv_heads, dim=1)
            v = v.repeat_interleave(n_heads // n_kv_heads, dim=1)
    mask = None if key_mask is None else key_mask[:, None, None, :].to(torch.bool)  # (B, 1, 1, S)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False, **gqa)  # (B, H, T, D)
    return o_proj(out.transpose(1, 2).reshape(B, T, -1)), kv


class NativeDenoiser:
    """A `Denoiser` over a native model whose forward is
    `model(ids, positions, key_mask, cache, store, suffix_from) -> (logits, KVCache | None)`."""

    supports_cache = True
    exact_left_padding = True  # positions come from the attention mask (positions_from_mask)

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        mask_id: int,
        eos_id: int,
        pad_id: int,
        stop_ids: tuple[int, ...] = (),
        special_ids: tuple[int, ...] = (),
        shift_logits: bool = False,
        max_length: int | None = None,
        cuda_graphs: bool | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mask_id, self.eos_id, self.pad_id = mask_id, eos_id, pad_id
        self.stop_ids = tuple(stop_ids) or (eos_id,)
        self.special_ids = tuple(special_ids)
        self.shift_logits = shift_logits
        self.max_length = max_length
        self.vocab_size = model.vocab_size
        self.device = next(model.parameters()).device
        # cached steps as CUDA graphs: on by default on CUDA, where at batch 1 queuing an 8B model's kernels
        # takes longer than running them (benchmarks/gpu_step_profile.py); never on CPU
        self.cuda_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self._graph: _StepGraph | None = None

    @torch.no_grad()
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        P, S = (cache.length, cache.suffix_length) if cache is not None else (0, 0)
        B, T = input_ids.shape
        positions = positions_from_mask(attention_mask, B, P + T + S, input_ids.device)[:, P:P + T]  # (B, T)
        key_mask = _key_mask(attention_mask)
        if cache is not None and self.cuda_graphs and input_ids.is_cuda:
            return self._graphed_step(input_ids, positions, key_mask, cache)
        logits, _ = self.model(input_ids, positions, key_mask, cache)
        return logits.float()

    def _graphed_step(self, ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor | None,
                      cache: KVCache) -> torch.Tensor:
        """A cached step through a CUDA graph: captured at the block's first cached step (which runs eagerly),
        replayed by the block's other steps with their ids, positions and key mask copied into the graph's
        input tensors. Every step of a block has the same shapes and writes into the same cache buffers (the
        graph reads and writes them where they are), so one capture serves the block; a new cache (the next
        block, a refresh) or new shapes capture again. The logits are the eager step's, bit for bit on the
        same kernels (the GPU lane compares the generated ids). One generation at a time uses a denoiser (the
        pipeline holds a lock per loaded model), so the one graph slot is never shared between two."""
        g = self._graph
        if g is None or not g.serves(ids, key_mask, cache):
            self._graph = None  # release the previous block's graph (its memory pool) before capturing anew
            g = _StepGraph(self.model, ids, positions, key_mask, cache)
            self._graph = g
            first, g.first_logits = g.first_logits, None  # (B, T, V) float32: not kept past this step
            return first
        return g.replay(ids, positions, key_mask)

    @torch.no_grad()
    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache_len: int,
        suffix_start: int | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        self._graph = None  # a new cache is coming: the old one's graph is of no further use
        B, L = input_ids.shape
        positions = positions_from_mask(attention_mask, B, L, input_ids.device)
        logits, cache = self.model(input_ids, positions, _key_mask(attention_mask), None, cache_len, suffix_start)
        return logits.float(), cache


class _StepGraph:
    """One block's cached step, captured as a CUDA graph over static input tensors and the cache's buffers."""

    @torch.no_grad()  # (inference only, whoever builds it: the cache's buffers are written in place)
    def __init__(self, model: nn.Module, ids: torch.Tensor, positions: torch.Tensor,
                 key_mask: torch.Tensor | None, cache: KVCache) -> None:
        self.cache = cache  # held, so that `serves` compares this very cache (an id could be reused)
        self.ids, self.positions = ids.clone(), positions.clone()
        self.key_mask = None if key_mask is None else key_mask.clone()
        stream = torch.cuda.Stream()  # warm up (and compute this step) on a side stream, as capture asks
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.first_logits = model(self.ids, self.positions, self.key_mask, cache)[0].float()
        torch.cuda.current_stream().wait_stream(stream)
        self.first_logits.record_stream(torch.cuda.current_stream())  # (used there: not freed before it is done)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # records only: the cache's block is rewritten by every replay
            self.logits = model(self.ids, self.positions, self.key_mask, cache)[0].float()

    def serves(self, ids: torch.Tensor, key_mask: torch.Tensor | None, cache: KVCache) -> bool:
        return (cache is self.cache and ids.shape == self.ids.shape
                and (key_mask is None) == (self.key_mask is None)
                and (key_mask is None or key_mask.shape == self.key_mask.shape))

    def replay(self, ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        self.ids.copy_(ids)
        self.positions.copy_(positions)
        if key_mask is not None:
            self.key_mask.copy_(key_mask)
        self.graph.replay()
        return self.logits.clone()  # the next replay overwrites the graph's output


def _key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """None when nothing is padded, so unpadded runs take the mask-free attention path."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()


def run_layers(
    layers, h: torch.Tensor, rope, key_mask: torch.Tensor | None, cache: KVCache | None, store: int,
    suffix_from: int | None = None,
) -> tuple[torch.Tensor, KVCache | None]:
    """Run `layer(h, rope, key_mask, past) -> (h, (k, v))` per layer. With `store` (and `suffix_from`), return
    the layers' k, v as a cache whose first `store` positions (and those from `suffix_from` on: a dual cache)
    later steps reuse; a step given `cache` writes its own positions into the cache's buffers."""
    new = None
    if store or suffix_from is not None:
        new = KVCache(length=store, suffix_length=0 if suffix_from is None else h.shape[1] - suffix_from)
    for i, layer in enumerate(layers):
        past = None if cache is None else (cache.keys[i], cache.values[i], cache.length)
        h, (k, v) = layer(h, rope, key_mask, past)
        if new is not None:
            new.keys.append(k)
            new.values.append(v)
    return h, new
