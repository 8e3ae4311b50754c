"""Featurizing: B (question, passages) requests -> one padded Batch of encoder inputs and per-token features.

Invariants the rest of the package relies on:
- a request holds P passages of T tokens each ("[CLS] question [SEP] passage [SEP]", padded); a passage
  token's copy position is p * T + t, so positions run over P*T in passage order;
- every passage token carries the id of its sentence, `sentence_id(p, k)` (k-th sentence of passage p), which
  is unique in the row and the same for all tokens of one sentence; positions outside passages hold -1;
- offsets and texts keep each token's characters in its passage, so copies render verbatim.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch

from ..extractive import SENT_RE, STOP as EXTRACTIVE_STOP, WORD_RE

if TYPE_CHECKING:
    from .model import SculptConfig

STOP = EXTRACTIVE_STOP | {"not"}  # question words that never count as a match (the checkpoint was trained with these)
N_BUCKETS = 8  # question-coverage buckets of a sentence (the checkpoint was trained with 8)
SENTENCE_STRIDE = 10_000  # sentence id = passage * SENTENCE_STRIDE + the sentence's index in its passage


def sentence_id(passage, index):
    """The row-unique id of sentence `index` of passage `passage` (ints or tensors)."""
    return passage * SENTENCE_STRIDE + index


def split_sentence_id(sid):
    """(passage, index in the passage) of a sentence id (ints or tensors; meaningless for -1)."""
    return sid // SENTENCE_STRIDE, sid % SENTENCE_STRIDE


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
        sentences = [(pi, a, b) for pi, t in enumerate(texts) for a, b in sentence_spans(t)]
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
            sentence[b, p, start: start + len(ids)] = sentence_id(p, torch.tensor(sn, dtype=torch.long))
            starts[b, p, start: start + len(ids)] = torch.tensor(st, dtype=torch.long)
            passage_ok[b, p] = True
            offsets[b].append([(-1, -1)] * start + offs + [(-1, -1)] * (T - start - len(ids)))
    return Batch(input_ids, attention, copyable.view(B, P * T), match.view(B, P * T), bucket.view(B, P * T),
                 sentence.view(B, P * T), starts.view(B, P * T), passage_ok, offsets, [list(r[2]) for r in rows])


def sentence_spans(text: str) -> list[tuple[int, int]]:
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
