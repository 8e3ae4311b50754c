"""The bundled model's inference in numpy: what a CPU answer runs, without importing torch.

`import torch` alone costs a cold `sculptrag ask` ~1.3 s of its ~4 s (docs/benchmarks.md, "Cold start"),
and a CPU answer needs none of what torch adds over numpy: inference is six BERT layers over the passages
once per request, then two small decoder layers per denoising step. This module is the same computation as
model.py's `SculptModel.encode` / `forward_many` and bert.py's encoder, on the same weights read straight
from the safetensors files (memory-mapped; the checkpoint's bf16 widened to fp32), and
`tests/generator/test_sculpt_runtime.py` holds it to the torch model (log-probabilities within 1e-4, the same
answers). torch remains the trainer's and the GPU's runtime (SculptGenerator's `runtime` option).

Where numpy is slower than torch on a CPU it is made less so: the encoder works on the real tokens of each
passage only (no padding rows through the linears, attention per passage), GELU reads the normal CDF from
a table (scipy's erf was the slowest step), the decoder's rows of one request read its memory in one
product (not a loop over repeated rows) and attend only to the memory's real positions.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import ModelLoadError

from .config import SculptConfig
from .features import Batch, split_sentence_id
from .space import OutputSpace

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "BF16": np.uint16}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a float32 (or int64) numpy array: fp32 ones are read-only views of
    the memory-mapped file (no copy), bf16 and fp16 ones are widened to fp32."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    except (OSError, ValueError, struct.error) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise ModelLoadError(f"{path}: tensor {name} has dtype {meta['dtype']}, which this reader does not take")
        a, b = meta["data_offsets"]
        raw = data[a:b].view(_DTYPES[meta["dtype"]]).reshape(meta["shape"])
        if meta["dtype"] == "BF16":  # bf16 is the top half of an fp32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        elif meta["dtype"] == "F16":
            raw = raw.astype(np.float32)
        out[name] = raw
    return out


# GELU as torch computes it, x * Phi(x) with Phi the normal CDF (erf-based), read from a table: Phi on a grid
# of step 1/512 over [-8, 8] with linear interpolation is within 5e-7 of the exact value (|x| > 8: Phi is 0 or
# 1 to float32 precision). scipy's erf took 44 ms for one layer's feed-forward of 8 passages, the table 9
# (torch's fused kernel: 1).
_PHI_RANGE, _PHI_STEPS = 8.0, 512


def _phi_table() -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(-_PHI_RANGE, _PHI_RANGE + 2.0 / _PHI_STEPS, 1.0 / _PHI_STEPS)
    phi = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2)) for v in grid]))
    return phi[:-1].astype(np.float32), np.diff(phi).astype(np.float32)


_PHI, _PHI_SLOPE = _phi_table()
_GELU_ROWS = 128  # rows per block: a block's scratch stays in cache (twice as fast as whole arrays)


def gelu(x: np.ndarray) -> np.ndarray:
    """torch's exact GELU, x/2 (1 + erf(x / sqrt 2)), within 5e-7 |x|."""
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty(flat.shape, dtype=np.float32)
    rows = min(_GELU_ROWS, flat.shape[0])
    pos, tmp = np.empty((rows, flat.shape[1]), np.float32), np.empty((rows, flat.shape[1]), np.float32)
    index = np.empty((rows, flat.shape[1]), np.intp)
    top, steps = np.float32(_PHI_RANGE), np.float32(_PHI_STEPS)
    for a in range(0, flat.shape[0], rows):
        xb, o = flat[a: a + rows], out[a: a + rows]
        p, i, t = pos[: len(xb)], index[: len(xb)], tmp[: len(xb)]
        np.clip(xb, -top, top - 1 / steps, out=p)
        p += top
        p *= steps
        i[...] = p  # the grid point at or below (p >= 0: truncation)
        p -= i  # the fraction of a step past it
        np.take(_PHI_SLOPE, i, out=o)
        o *= p
        np.take(_PHI, i, out=t)
        o += t
        o *= xb
    return out.reshape(x.shape)


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, -1, keepdims=True)
    return centered / np.sqrt(var + np.float32(eps)) * w + b


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


_ATTEND_ROWS = 256  # queries per block of attention scores: the block stays in cache


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Scaled dot-product attention, (..., H, Lq, Dh) queries to (..., H, Lk, Dh) keys and values; `allowed`
    (..., 1, 1, Lk) bool, the keys that may be attended to. Per head and block of queries: the scores, their
    exponentials past the row maximum, then one product with the values and a column of ones gives the
    weighted sum and its normaliser together (no separate sum and division over the scores)."""
    *lead, H, Lq, Dh = q.shape
    q = (q * np.float32(1 / math.sqrt(Dh))).reshape(-1, Lq, Dh)
    k = np.broadcast_to(k, (*lead, H, *k.shape[-2:])).reshape(-1, k.shape[-2], Dh)
    v = np.broadcast_to(v, (*lead, H, *v.shape[-2:])).reshape(-1, v.shape[-2], Dh)
    v1 = np.concatenate([v, np.ones((*v.shape[:2], 1), dtype=np.float32)], -1)
    if allowed is not None:
        allowed = np.broadcast_to(allowed, (*lead, H, 1, k.shape[-2])).reshape(-1, k.shape[-2])
    out = np.empty(q.shape, dtype=np.float32)
    for h in range(q.shape[0]):
        kt = k[h].T
        for a in range(0, Lq, _ATTEND_ROWS):
            s = q[h, a: a + _ATTEND_ROWS] @ kt
            if allowed is not None:
                np.copyto(s, np.float32(-np.inf), where=~allowed[h])
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            o = s @ v1[h]
            np.divide(o[:, :Dh], o[:, Dh:], out=out[h, a: a + _ATTEND_ROWS])
    return out.reshape(*lead, H, Lq, Dh)


class _Linear:
    __slots__ = ("wt", "b")

    def __init__(self, w: np.ndarray, b: np.ndarray | None) -> None:
        self.wt = w.T  # (in, out): a transposed view, which BLAS reads as it is
        self.b = b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = _matmul_2d(x, self.wt)
        if self.b is not None:
            y += self.b
        return y


def _matmul_2d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (..., n) @ w (n, m) as one 2-D product (numpy runs a 3-D @ 2-D one as a product per leading index:
    2x slower for the vocabulary head)."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])


def _one_request(*arrays: np.ndarray) -> bool:
    """Whether arrays of B > 1 rows are one request's memory repeated (Memory.expand: a 0 stride)."""
    return arrays[0].shape[0] > 1 and all(a.strides[0] == 0 for a in arrays)


class _Weights:
    """Named weights of a module tree, read as the torch module names them ("layers.0.qkv.weight")."""

    def __init__(self, state: dict[str, np.ndarray], source: str) -> None:
        self.state, self.source, self.used = state, source, set()

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.state:
            raise ModelLoadError(f"{self.source}: no weight {name!r}")
        self.used.add(name)
        return np.asarray(self.state[name], dtype=np.float32)

    def linear(self, name: str, bias: bool = True) -> _Linear:
        return _Linear(self(f"{name}.weight"), self(f"{name}.bias") if bias else None)

    def norm(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self(f"{name}.weight"), self(f"{name}.bias")


class BertNumpy:
    """MiniLM's BERT encoder (bert.BertEncoder's computation) over real tokens only."""

    def __init__(self, w: _Weights, prefix: str, layers: Sequence[str], heads: int, eps: float) -> None:
        self.word = w(f"{prefix}embeddings.word_embeddings.weight")
        self.position = w(f"{prefix}embeddings.position_embeddings.weight")
        self.token_type = w(f"{prefix}embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = w.norm(f"{prefix}embeddings.LayerNorm")
        self.heads, self.eps = heads, eps
        self.layers = []
        for name in layers:
            qkv = [w(f"{name}.attention.self.{n}.weight") for n in ("query", "key", "value")]
            qkv_b = [w(f"{name}.attention.self.{n}.bias") for n in ("query", "key", "value")]
            self.layers.append((_Linear(np.concatenate(qkv), np.concatenate(qkv_b)),
                                w.linear(f"{name}.attention.output.dense"), w.norm(f"{name}.attention.output.LayerNorm"),
                                w.linear(f"{name}.intermediate.dense"), w.linear(f"{name}.output.dense"),
                                w.norm(f"{name}.output.LayerNorm")))

    def __call__(self, ids: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """(n, T) token ids with each row's real length -> (n, T, d) last hidden states (0 past a row's length:
        the rows are not padded inside, so a padded position has no state)."""
        n, T = ids.shape
        d = self.word.shape[1]
        rows = [(r, int(k)) for r, k in enumerate(lengths) if k > 0]
        x = np.concatenate([self.word[ids[r, :k]] + self.position[:k] for r, k in rows]) + self.token_type
        x = layer_norm(x, *self.emb_ln, self.eps)
        starts = np.cumsum([0] + [k for _, k in rows])
        H = self.heads
        for qkv, out, ln1, inner, out2, ln2 in self.layers:
            proj = qkv(x)  # (N, 3d)
            ctx = np.empty_like(x)
            for (r, k), a in zip(rows, starts):
                q, kk, v = proj[a: a + k].reshape(k, 3, H, d // H).transpose(1, 2, 0, 3)  # (H, k, Dh) each
                ctx[a: a + k] = _attend(q, kk, v).transpose(1, 0, 2).reshape(k, d)
            x = layer_norm(out(ctx) + x, *ln1, self.eps)
            x = layer_norm(out2(gelu(inner(x))) + x, *ln2, self.eps)
        hidden = np.zeros((n, T, d), dtype=np.float32)
        for (r, k), a in zip(rows, starts):
            hidden[r, :k] = x[a: a + k]
        return hidden


@dataclass
class Memory:
    """The encoded passages of a batch: what every denoising step reads (computed once per request). Arrays of
    either runtime: numpy here, torch tensors in model.py's SculptModel.encode."""

    states: object  # (B, M, d), M = P*T
    summary: object  # (B, P, d)
    mem_mask: object  # (B, M) bool: attendable
    copyable: object  # (B, M) bool
    passage_ok: object  # (B, P) bool
    tokens: object  # (B, M) token id at each position
    sentence: object  # (B, M) sentence id at each position (-1 off passages)
    kv: list
    copy_keys: object  # (B, M, d)
    cite_keys: object  # (B, P, d)
    select: object  # (B, S + 1) sentence-selector logits; column S is "none" (see SculptModel.select)
    sent_index: object  # (B, M) selector column of each position's sentence (S off passages)
    copy_inputs: object  # (B, M, d) copy_in of each position's state: what a slot copying it adds
    cite_inputs: object  # (B, P, d) cite_in of each passage summary: a slot citing it

    def expand(self, n: int) -> "Memory":
        """The memory of a single request repeated n times (views, no copies) to score n canvases at once."""
        def e(t):
            return t.expand(n, *t.shape[1:]) if hasattr(t, "expand") else np.broadcast_to(t, (n, *t.shape[1:]))

        return Memory(e(self.states), e(self.summary), e(self.mem_mask), e(self.copyable), e(self.passage_ok),
                      e(self.tokens), e(self.sentence), [(e(k), e(v)) for k, v in self.kv], e(self.copy_keys),
                      e(self.cite_keys), e(self.select), e(self.sent_index), e(self.copy_inputs), e(self.cite_inputs))


class SculptNumpy:
    """SculptModel's inference (`encode`, `forward_many`, `space`) and the pristine sentence embedder
    (`embed_hidden`), in numpy, from a checkpoint folder and the base model package."""

    def __init__(self, cfg: SculptConfig, base: dict[str, np.ndarray], ours: dict[str, np.ndarray],
                 source: str, base_config: dict) -> None:
        self.cfg = cfg
        base = {k.removeprefix("bert."): v for k, v in base.items()}
        state = {f"encoder.{k}": v for k, v in base.items()}
        state.update(ours)  # the fine-tuned upper layers replace the pretrained ones
        w = _Weights(state, source)
        n_layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("encoder.encoder.layer."))
        heads, eps = base_config["num_attention_heads"], base_config.get("layer_norm_eps", 1e-12)
        self.encoder = BertNumpy(w, "encoder.", [f"encoder.encoder.layer.{i}" for i in range(n_layers)], heads, eps)
        # the pretrained sentence embedder (relevance.py): the base package's weights, all of them; the layers
        # the checkpoint does not replace are the encoder's own (as checkpoint.pristine_encoder shares them)
        self.pristine = BertNumpy(_Weights(base, source), "", [f"encoder.layer.{i}" for i in range(n_layers)],
                                  heads, eps)
        for i in range(n_layers):
            if not any(k.startswith(f"encoder.encoder.layer.{i}.") for k in ours):
                self.pristine.layers[i] = self.encoder.layers[i]
        self.word_emb = self.encoder.word
        self.vocab_size = self.word_emb.shape[0]
        self.match_emb, self.bucket_emb = w("match_emb.weight"), w("bucket_emb.weight")
        self.start_emb, self.passage_emb = w("start_emb.weight"), w("passage_emb.weight")
        self.mem_ln, self.in_ln, self.out_ln = w.norm("mem_ln"), w.norm("in_ln"), w.norm("out_ln")
        self.mask_emb, self.slot_emb = w("mask_emb"), w("slot_emb.weight")
        self.copy_in, self.cite_in = w.linear("copy_in"), w.linear("cite_in")
        self.vocab_proj, self.vocab_bias = w.linear("vocab_proj"), w("vocab_bias")
        self.vocab_t = self.word_emb.T
        self.copy_q, self.copy_k = w.linear("copy_q"), w.linear("copy_k")
        self.cite_q, self.cite_k = w.linear("cite_q"), w.linear("cite_k")
        self.select_mlp = (w.linear("select_mlp.0"), w.linear("select_mlp.2"))
        self.none_mlp = (w.linear("none_mlp.0"), w.linear("none_mlp.2"))
        self.continue_bonus = w("continue_bonus")
        self.layers = [_DecoderLayer(w, f"layers.{i}", cfg.heads) for i in range(cfg.decoder_layers)]
        unused = sorted(k for k in ours if k not in w.used)
        if unused:
            raise ModelLoadError(f"{source}: weights this model does not use: {unused[:5]}")

    def space(self, memory: Memory) -> OutputSpace:
        return OutputSpace(self.vocab_size, memory.states.shape[1], memory.summary.shape[1])

    def embed_hidden(self, ids: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """The pristine encoder's last hidden states, (n, T, d), for relevance.embed."""
        return self.pristine(ids, lengths)

    def encode(self, batch: Batch) -> Memory:
        B, P, T = batch.shape
        lengths = batch.attention.reshape(B * P, T).sum(-1)
        out = self.encoder(batch.input_ids.reshape(B * P, T), lengths).reshape(B, P, T, -1)
        ident = self.passage_emb[:P][None, :, None, :]
        states = (out + ident).reshape(B, P * T, -1) + self.match_emb[batch.match] + self.bucket_emb[batch.bucket] \
            + self.start_emb[batch.starts]
        states = layer_norm(states, *self.mem_ln, 1e-5)
        summary = layer_norm(out[:, :, 0] + ident[:, :, 0], *self.mem_ln, 1e-5)
        mem_mask = batch.attention.reshape(B, P * T)
        kv = [layer.memory_kv(states) for layer in self.layers]
        select, sent_index = self._select(states, summary, batch.sentence, batch.passage_ok)
        return Memory(states, summary, mem_mask, batch.copyable, batch.passage_ok, batch.input_ids.reshape(B, P * T),
                      batch.sentence, kv, self.copy_k(states), self.cite_k(summary), select, sent_index,
                      self.copy_in(states), self.cite_in(summary))

    def _select(self, states: np.ndarray, summary: np.ndarray, sentence: np.ndarray, passage_ok: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """SculptModel.select: sentence-selector logits (B, S + 1) and each position's column."""
        B, M, d = states.shape
        valid = sentence >= 0
        passage, k = split_sentence_id(sentence)
        k = np.where(valid, k, 0)
        K = int(k.max()) + 1 if valid.any() else 1
        S = passage_ok.shape[1] * K
        index = np.where(valid, passage * K + k, S)
        sums = np.zeros((B, S + 1, d), dtype=np.float32)
        counts = np.zeros((B, S + 1), dtype=np.float32)
        for b in range(B):
            np.add.at(sums[b], index[b], states[b])
            counts[b] = np.bincount(index[b], weights=valid[b], minlength=S + 1)
        means = sums[:, :S] / np.maximum(counts[:, :S, None], 1)
        h, o = self.select_mlp
        logits = np.where(counts[:, :S] == 0, np.float32(-np.inf), o(gelu(h(means)))[..., 0])
        best = np.where(passage_ok[..., None], summary, np.float32(-1e4)).max(1)
        h, o = self.none_mlp
        none = o(gelu(h(best)))
        return np.concatenate([logits, none], 1), index

    def forward_many(self, canvases: Sequence[np.ndarray], memories: Sequence[Memory],
                     only: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """SculptModel.forward_many: canvases[i] (B_i, L) against memories[i] -> [(B_i, L or S_i, space_i.size)]
        log-probabilities (`only[i]`: (B_i,) or (B_i, S_i) slots)."""
        sizes = [c.shape[0] for c in canvases]
        x = np.concatenate([self._embed(c, m) for c, m in zip(canvases, memories)])
        x = layer_norm(x + self.slot_emb[: x.shape[1]], *self.in_ln, 1e-5)
        widths = slots = None
        if only is not None:
            only = [o[:, None] if o.ndim == 1 else o for o in only]
            widths, wide = [o.shape[1] for o in only], max(o.shape[1] for o in only)
            only = [np.concatenate([o, np.repeat(o[:, -1:], wide - o.shape[1], 1)], 1) for o in only]
            slots = np.concatenate(only)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, [m.kv[i] for m in memories], [m.mem_mask for m in memories], sizes,
                      slots if i == last else None)
        h = layer_norm(x, *self.out_ln, 1e-5)
        vocab = _matmul_2d(self.vocab_proj(h), self.vocab_t) + self.vocab_bias
        bounds = np.cumsum([0] + sizes)
        out = [self._heads(c, m, h[a:b], vocab[a:b], None if only is None else only[j])
               for j, (c, m, a, b) in enumerate(zip(canvases, memories, bounds[:-1], bounds[1:]))]
        return out if widths is None else [o[:, :w] for o, w in zip(out, widths)]

    def _embed(self, canvas: np.ndarray, memory: Memory) -> np.ndarray:
        B, L = canvas.shape
        space = self.space(memory)
        is_vocab, is_copy, is_cite = space.is_vocab(canvas), space.is_copy(canvas), space.is_cite(canvas)
        rows = np.arange(B)[:, None]
        x = np.broadcast_to(self.mask_emb, (B, L, self.mask_emb.shape[0]))
        x = np.where(is_vocab[..., None], self.word_emb[np.where(is_vocab, canvas, 0)], x)
        copy_pos = np.where(is_copy, space.position_of(canvas), 0)
        copied = self.word_emb[memory.tokens[rows, copy_pos]] + memory.copy_inputs[rows, copy_pos]
        x = np.where(is_copy[..., None], copied, x)
        cited = memory.cite_inputs[rows, np.where(is_cite, space.passage_of(canvas), 0)]
        return np.where(is_cite[..., None], cited, x)

    def _heads(self, canvas: np.ndarray, memory: Memory, h: np.ndarray, vocab: np.ndarray,
               only: np.ndarray | None) -> np.ndarray:
        space = self.space(memory)
        scale = np.float32(1 / math.sqrt(h.shape[-1]))

        def scores(q: np.ndarray, keys: np.ndarray) -> np.ndarray:  # (B, L, d) x (B, N, d) -> (B, L, N)
            if _one_request(keys):  # one request's keys: one 2-D product for all rows
                return _matmul_2d(q, keys[0].T)
            return q @ np.swapaxes(keys, 1, 2)

        copy = scores(self.copy_q(h), memory.copy_keys) * scale
        copy += self._continuation(canvas, memory.sentence, space, only)
        copy = np.where(memory.copyable[:, None, :], copy, np.float32(-np.inf))
        cite = scores(self.cite_q(h), memory.cite_keys) * scale
        cite = np.where(memory.passage_ok[:, None, :], cite, np.float32(-np.inf))
        return log_softmax(np.concatenate([vocab, copy, cite], -1))

    def _continuation(self, canvas: np.ndarray, sentence: np.ndarray, space: OutputSpace,
                      only: np.ndarray | None) -> np.ndarray:
        """SculptModel._continuation: (B, L or S, M) bonus for continuing a copied span inside a sentence."""
        B, L = canvas.shape
        M = space.positions
        pos = np.where(space.is_copy(canvas), space.position_of(canvas), -1)
        left = np.concatenate([np.full((B, 1), -1), pos[:, :-1]], 1)
        right = np.concatenate([pos[:, 1:], np.full((B, 1), -1)], 1)
        rows = np.arange(B)[:, None]
        if only is not None:
            left, right = left[rows, only], right[rows, only]
        sent = np.broadcast_to(sentence, (B, M))

        def same_sentence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            sa, sb = sent[rows, np.clip(a, 0, M - 1)], sent[rows, np.clip(b, 0, M - 1)]
            return (sa == sb) & (sa >= 0)

        ok_l = (left >= 0) & (left + 1 < M) & same_sentence(left, left + 1)
        ok_r = (right >= 1) & same_sentence(right, right - 1)
        bonus = np.zeros((*left.shape, M + 1), dtype=np.float32)
        r, s = np.indices(left.shape)
        np.add.at(bonus, (r, s, np.where(ok_l, left + 1, M)), self.continue_bonus[0])
        np.add.at(bonus, (r, s, np.where(ok_r, right - 1, M)), self.continue_bonus[1])
        return bonus[..., :M]


class _DecoderLayer:
    """model.DecoderLayer: pre-LN self-attention over slots, cross-attention to memory, feed-forward."""

    def __init__(self, w: _Weights, name: str, heads: int) -> None:
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = w.norm(f"{name}.ln1"), w.norm(f"{name}.ln2"), w.norm(f"{name}.ln3")
        self.qkv, self.o1 = w.linear(f"{name}.qkv"), w.linear(f"{name}.o1")
        self.q2, self.kv2, self.o2 = w.linear(f"{name}.q2"), w.linear(f"{name}.kv2"), w.linear(f"{name}.o2")
        self.ff = (w.linear(f"{name}.ff.0"), w.linear(f"{name}.ff.2"))

    def _split(self, x: np.ndarray) -> np.ndarray:
        B, L, D = x.shape
        return x.reshape(B, L, self.heads, D // self.heads).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(x: np.ndarray) -> np.ndarray:
        B, H, L, Dh = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, L, H * Dh)

    def memory_kv(self, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k, v = np.split(self.kv2(memory), 2, -1)
        return self._split(k), self._split(v)

    def __call__(self, x: np.ndarray, mem_kv, mem_mask, sizes: Sequence[int], only: np.ndarray | None = None):
        q, k, v = np.split(self.qkv(layer_norm(x, *self.ln1, 1e-5)), 3, -1)
        if only is not None:
            rows = np.arange(x.shape[0])[:, None]
            q, x = q[rows, only], x[rows, only]
        x = x + self.o1(self._merge(_attend(self._split(q), self._split(k), self._split(v))))
        q = self._split(self.q2(layer_norm(x, *self.ln2, 1e-5)))
        bounds = np.cumsum([0, *sizes])
        a = np.concatenate([_cross(q[s:e], mk, mv, mm) for s, e, (mk, mv), mm in
                            zip(bounds[:-1], bounds[1:], mem_kv, mem_mask)])
        x = x + self.o2(self._merge(a))
        h, o = self.ff
        return x + o(gelu(h(layer_norm(x, *self.ln3, 1e-5))))


def _cross(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cross-attention of (B, H, S, Dh) queries to a memory's (B, H, M, Dh) keys and values, `mask` (B, M) the
    positions that may be attended to. B rows of one request's memory (Memory.expand) are read as one row
    of B * S queries: one product per head instead of a loop over stride-0 rows."""
    B, H, S, Dh = q.shape
    if B == 1 or _one_request(k, v, mask):  # (and only the positions that may be attended to)
        keep = np.flatnonzero(mask[0])
        out = _attend(q.transpose(1, 0, 2, 3).reshape(1, H, B * S, Dh), k[:1, :, keep], v[:1, :, keep])
        return out.reshape(H, B, S, Dh).transpose(1, 0, 2, 3)
    return _attend(q, k, v, mask[:, None, None, :])


def load_runtime(folder: Path) -> SculptNumpy:
    """The numpy model of a checkpoint folder (config.json, model.safetensors) on the base model package."""
    from pipeline.embedding import resolve_model_path

    from .checkpoint import checkpoint_config

    folder = Path(folder)
    cfg = checkpoint_config(folder)
    base_dir = resolve_model_path(cfg.base_model)
    base = read_safetensors(base_dir / "model.safetensors")
    base.pop("embeddings.position_ids", None)
    base = {k: v for k, v in base.items() if not k.removeprefix("bert.").startswith(("pooler.", "cls."))}
    base_config = json.loads((base_dir / "config.json").read_text())
    if base_config.get("model_type", "bert") != "bert" or base_config.get("hidden_act", "gelu") != "gelu":
        raise ModelLoadError(f"{base_dir}: not a BERT encoder with GELU (model_type {base_config.get('model_type')!r})")
    return SculptNumpy(cfg, base, read_safetensors(folder / "model.safetensors"), str(folder), base_config)
