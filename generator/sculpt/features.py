"""Featurizing: B (question, passages) requests -> one padded Batch of encoder inputs and per-token features.

Invariants the rest of the package relies on:
- a request holds P passages of T tokens each ("[CLS] question [SEP] passage [SEP]", padded); a passage
  token's copy position is p * T + t, so positions run over P*T in passage order;
- every passage token carries the id of its sentence, `sentence_id(p, k)` (k-th sentence of passage p), which
  is unique in the row and the same for all tokens of one sentence; positions outside passages hold -1;
- offsets and texts keep each token's characters in its passage, so copies render verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pipeline.text import SCULPT_STOPWORDS as STOP, SENTENCE_RE, idf_cover, sentence_cuts, words as _words

if TYPE_CHECKING:
    from pipeline.types import Passage

    from .model import SculptConfig

N_BUCKETS = 8  # question-coverage buckets of a sentence (the checkpoint was trained with 8)
INNER_CAPITAL_RE = re.compile(r"(?<=[\w,;] )[A-Z][\w&-]*")  # a capitalised word inside a sentence
SENTENCE_STRIDE = 10_000  # sentence id = passage * SENTENCE_STRIDE + the sentence's index in its passage


def sentence_id(passage, index):
    """The row-unique id of sentence `index` of passage `passage` (ints or arrays)."""
    return passage * SENTENCE_STRIDE + index


def split_sentence_id(sid):
    """(passage, index in the passage) of a sentence id (ints or arrays; meaningless for -1)."""
    return sid // SENTENCE_STRIDE, sid % SENTENCE_STRIDE


@dataclass
class Batch:
    """Arrays for B requests of up to P passages of T tokens; copy position = p * T + t. numpy arrays as
    `featurize` makes them (what the numpy runtime and the sampler read); `to(device)` gives torch tensors
    (what the torch model and the trainer read)."""

    input_ids: np.ndarray  # (B, P, T) int64
    attention: np.ndarray  # (B, P, T) bool
    copyable: np.ndarray  # (B, P*T) bool: a passage token
    match: np.ndarray  # (B, P*T) int64: 1 when the token's word is in the question
    bucket: np.ndarray  # (B, P*T) int64: question coverage of the token's sentence
    sentence: np.ndarray  # (B, P*T) int64: sentence id of the token (unique in the row), -1 off passages
    starts: np.ndarray  # (B, P*T) int64: 1 on the first token of a sentence
    passage_ok: np.ndarray  # (B, P) bool: a real passage
    offsets: list[list[list[tuple[int, int]]]] = field(default_factory=list)  # [b][p][t] chars in passage text
    texts: list[list[str]] = field(default_factory=list)  # [b][p]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]

    def to(self, device) -> "Batch":
        """The batch as torch tensors on `device` (the offsets and texts shared)."""
        import torch

        def t(a):
            return (torch.from_numpy(a) if isinstance(a, np.ndarray) else a).to(device)

        return Batch(t(self.input_ids), t(self.attention), t(self.copyable), t(self.match), t(self.bucket),
                     t(self.sentence), t(self.starts), t(self.passage_ok), self.offsets, self.texts)


def passage_windows(tokenizer, passages: Sequence["Passage"], max_tokens: int, max_passages: int) -> list["Passage"]:
    """The passages as the model reads them: a passage longer than `max_tokens` (the model reads no more of
    one) is cut at line or sentence ends into windows that fit. Its first window stays in its place and the
    others follow the passages, while fewer than `max_passages` are read; a window keeps its passage's
    number, so a quote from it cites the passage, and its text is a piece of the passage's, so quotes stay
    verbatim. Without this, the last rows of a long table or the end of a long paragraph were never seen."""
    passages = list(passages)[:max_passages]
    if not passages:
        return []
    enc = tokenizer([p.text for p in passages], add_special_tokens=False, return_offsets_mapping=True,
                    verbose=False)
    firsts, rest = [], []
    for p, offs in zip(passages, enc["offset_mapping"]):
        pieces = _windows(p.text, [tuple(o) for o in offs], max_tokens)
        firsts.append(p if len(pieces) == 1 else p.model_copy(update={"text": pieces[0]}))
        rest += [p.model_copy(update={"text": t}) for t in pieces[1:]]
    return firsts + rest[: max_passages - len(firsts)]


def _windows(text: str, offsets: list[tuple[int, int]], max_tokens: int) -> list[str]:
    """`text` cut into pieces of at most `max_tokens` tokens (by the offsets of its tokens), each cut at the
    last line end in the window's second half, else the last sentence end there, else the same in its first
    half, else before the first token that does not fit; pieces are stripped and never empty. (A piece that
    starts inside a sentence offers that fragment as a sentence to quote.)"""
    pieces, start, i = [], 0, 0
    while i < len(offsets):
        if len(offsets) - i <= max_tokens:
            end = len(text)
        else:
            first, limit, half = offsets[i][0], offsets[i + max_tokens][0], offsets[i + max_tokens // 2][0]
            end = limit
            for a in (half, first):  # the second half, then the first
                cut = text.rfind("\n", a, limit) - a
                if cut <= 0:
                    cut = max((m.end() for m in SENTENCE_RE.finditer(text, a, limit)), default=-1) - a
                if cut > 0:
                    end = a + cut
                    break
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        start = end
        while i < len(offsets) and offsets[i][0] < end:
            i += 1
    return pieces or [text]


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
        covers = dict(zip(sentences, idf_cover(q_words, [set(_words(texts[pi][a:b])) for pi, a, b in sentences])))
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False) if texts else \
            {"input_ids": [], "offset_mapping": []}
        seqs = []
        for pi, text in enumerate(texts):
            ids = enc["input_ids"][pi][: config.max_passage_tokens]
            offs = [tuple(o) for o in enc["offset_mapping"][pi][: config.max_passage_tokens]]
            spans = [(a, b) for j, a, b in sentences if j == pi]
            cover = [covers[pi, a, b] for a, b in spans]
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
    input_ids = np.full((B, P, T), pad_id, dtype=np.int64)
    attention = np.zeros((B, P, T), dtype=bool)
    copyable = np.zeros((B, P, T), dtype=bool)
    match = np.zeros((B, P, T), dtype=np.int64)
    bucket = np.zeros((B, P, T), dtype=np.int64)
    sentence = np.full((B, P, T), -1, dtype=np.int64)
    starts = np.zeros((B, P, T), dtype=np.int64)
    passage_ok = np.zeros((B, P), dtype=bool)
    offsets: list[list[list[tuple[int, int]]]] = []
    for b, (q_ids, seqs, texts) in enumerate(rows):
        offsets.append([])
        for p in range(P):
            if p >= len(seqs):
                input_ids[b, p, :2] = [cls_id, sep_id]
                attention[b, p, :2] = True
                offsets[b].append([])
                continue
            ids, offs, m, bk, sn, st = seqs[p]
            head = [cls_id, *q_ids, sep_id]
            seq = head + ids + [sep_id]
            input_ids[b, p, : len(seq)] = seq
            attention[b, p, : len(seq)] = True
            start = len(head)
            copyable[b, p, start: start + len(ids)] = True
            match[b, p, start: start + len(ids)] = m
            bucket[b, p, start: start + len(ids)] = bk
            sentence[b, p, start: start + len(ids)] = sentence_id(p, np.array(sn, dtype=np.int64))
            starts[b, p, start: start + len(ids)] = st
            passage_ok[b, p] = True
            offsets[b].append([(-1, -1)] * start + offs + [(-1, -1)] * (T - start - len(ids)))
    return Batch(input_ids, attention, copyable.reshape(B, P * T), match.reshape(B, P * T),
                 bucket.reshape(B, P * T), sentence.reshape(B, P * T), starts.reshape(B, P * T), passage_ok, offsets,
                 [list(r[2]) for r in rows])


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence: each line is cut into sentences, and a line break always ends one, so
    a title, a list item or a table row (chunks keep their elements on lines of their own) is never glued
    to the sentence after it. The whitespace between sentences belongs to none."""
    out = []
    for line in LINE_RE.finditer(text):
        a, z = line.span(1)
        start = a
        for m in sentence_cuts(text, a, z):
            out.append((start, m.start()))
            start = m.end()
        out.append((start, z))
    return out or [(0, len(text))]


LINE_RE = re.compile(r"[^\S\n]*(\S(?:[^\n]*\S)?)")  # a line's text, its surrounding blanks left out
CLAUSE_END_RE = re.compile(r"[,;:\u2013\u2014]\s+$")  # what a clause inside a sentence starts after
CONJUNCTIONS = frozenset("and or but nor so yet then while whereas".split())  # a clause opens after them


def clause_starts(batch: Batch) -> np.ndarray:
    """(M,) bool for the first request of `batch`: passage tokens that open a clause inside a sentence (a
    word after a comma, semicolon, colon or dash followed by a space; after a conjunction that follows one:
    "..., and 200 laptops" opens at "200"). A quote may start there as well as at the sentence's first
    token, so an answer can quote the part that answers. Never inside a table row ("a | b | c"): a value
    quoted without its row's label says nothing."""
    B, P, T = batch.shape
    out = np.zeros(P * T, dtype=bool)
    for p, text in enumerate(batch.texts[0]):
        prev_end, opens_next = None, False
        for t, (a, e) in enumerate(batch.offsets[0][p]):
            if a < 0 or e <= a:
                continue
            gap = text[max(0, prev_end - 2): a] if prev_end is not None else ""
            after_break = bool(CLAUSE_END_RE.search(gap)) and not (gap[0].isdigit() and text[a].isdigit())  # "23, 2023"
            if (after_break or opens_next) and text[a].isalnum() and not _in_table_row(text, a):
                opens_next = bool(after_break) and text[a:e].lower() in CONJUNCTIONS and _word_end(text, a) == e
                out[p * T + t] = not opens_next
            else:
                opens_next = False
            prev_end = e
    return out & (batch.sentence[0] >= 0)


def word_joins(batch: Batch) -> np.ndarray:
    """(M,) bool for the first request of `batch`: the token continues the word of the token before it (a
    WordPiece "##" piece, or "2023" after "202"; or a letter or digit right after a point, comma, apostrophe
    or hyphen that itself follows one: "N.A.", "6.2", "1,000", "don't"), so a quote may not stop between the
    two."""
    B, P, T = batch.shape
    out = np.zeros(P * T, dtype=bool)
    for p, text in enumerate(batch.texts[0]):
        offsets = batch.offsets[0][p]
        for t in range(1, len(offsets)):
            (a0, e0), (a1, e1) = offsets[t - 1], offsets[t]
            if a0 >= 0 and a1 >= 0 and e0 == a1 and e1 > a1 and text[a1].isalnum() and (
                    text[a1 - 1].isalnum() or (text[a1 - 1] in ".,'’-" and a1 >= 2 and text[a1 - 2].isalnum())):
                out[p * T + t] = True
    return out


def _in_table_row(text: str, a: int) -> bool:
    """Whether character `a` is on a line that is a table row (its cells joined by " | ")."""
    return " | " in text[text.rfind("\n", 0, a) + 1: (text.find("\n", a) + 1 or len(text) + 1) - 1]


def joinable_starts(batch: Batch) -> np.ndarray:
    """(M,) bool for the first request of `batch`: tokens a written joining word ("and", "while") may precede
    so that the text reads on: a word in lower case, a number or symbol, or a capitalised word that the
    passages also capitalise inside a sentence (a name: "... and Medvedev won"); not a capitalised word
    that only opens sentences ("... and The company")."""
    B, P, T = batch.shape
    names = {m.group() for text in batch.texts[0] for m in INNER_CAPITAL_RE.finditer(text)}
    out = np.zeros(P * T, dtype=bool)
    for p, text in enumerate(batch.texts[0]):
        for t, (a, e) in enumerate(batch.offsets[0][p]):
            if a < 0 or e <= a:
                continue
            word = text[a:_word_end(text, a)] or text[a:e]
            out[p * T + t] = not word[0].isupper() or (word in names and word.lower() not in STOP)
    return out & (batch.sentence[0] >= 0)


def cell_gaps(batch: Batch) -> np.ndarray:
    """(M,) long for the first request of `batch`: at the last token of a table cell that the row goes on
    after ("... | Sales: 8589 | ..."), how many tokens the next cell takes, up to and including its last one;
    0 elsewhere. A quote of a row that cannot fit its next cell on the canvas stops at the cell it is at,
    not inside the next one (grammar.choose)."""
    B, P, T = batch.shape
    out = np.zeros(P * T, dtype=np.int64)
    for p, text in enumerate(batch.texts[0]):
        ends = [t for t, (a, e) in enumerate(batch.offsets[0][p])
                if 0 <= a < e and _in_table_row(text, a) and (text.startswith(" | ", e) or _row_end(text, e))]
        for t, nxt in zip(ends, ends[1:]):
            if text.startswith(" | ", batch.offsets[0][p][t][1]) and int(batch.sentence[0, p * T + t]) == int(
                    batch.sentence[0, p * T + nxt]):
                out[p * T + t] = nxt - t
    return out


def _row_end(text: str, e: int) -> bool:
    return e == len(text) or text[e] == "\n"


def _word_end(text: str, a: int) -> int:
    b = a
    while b < len(text) and text[b].isalnum():
        b += 1
    return b


def _word_at(text: str, s: int, e: int) -> str:
    """The whole lowercase word around the token at [s, e) (WordPiece pieces map to their word)."""
    a, b = s, e
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    return text[a:b].lower()
