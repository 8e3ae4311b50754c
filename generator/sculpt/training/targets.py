"""Training targets: gold answers as output-space slots, and the sentence selector's loss.

A gold answer is the evidence copied token by token (COPY ids), a CITE of its passage after every sentence
piece, then EOS to the end of the canvas; an unanswerable example's answer is the refusal, in words.
"""

from __future__ import annotations

from typing import Sequence

import torch

from pipeline.text import REFUSAL, sentence_cuts

from ..features import Batch
from ..model import Memory, SculptConfig
from ..space import OutputSpace


def refusal_ids(tokenizer) -> list[int]:
    return tokenizer(REFUSAL, add_special_tokens=False)["input_ids"]


def answer_targets(tokenizer, cfg: SculptConfig, vocab_size: int, batch: Batch,
                   segments: Sequence[Sequence[tuple[int, int, int]]]) -> torch.Tensor:
    """(B, slots) output-space targets: copies of the evidence tokens, then CITE p, ..., EOS fill.

    `segments[b]` = [(passage, char_start, char_end)]; an empty list is the refusal.
    """
    B = batch.shape[0]
    space = OutputSpace.of(vocab_size, batch.shape)
    eos = tokenizer.sep_token_id
    out = torch.full((B, cfg.slots), eos, dtype=torch.long)
    for b, segs in enumerate(segments):
        seq: list[int] = []
        if not segs:
            seq = list(refusal_ids(tokenizer))
        for p, s, e in _by_sentence(segs, batch.texts[b]):
            offs = batch.offsets[b][p]
            pos = [space.position(p, t) for t, (a, z) in enumerate(offs) if a >= 0 and a >= s and z <= e and z > a]
            if not pos:
                continue
            if len(seq) + len(pos) + 1 > cfg.slots - 1:
                break
            seq.extend(space.copy(q) for q in pos)
            seq.append(space.cite(p))
        out[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def _by_sentence(segments: Sequence[tuple[int, int, int]], texts: Sequence[str]) -> list[tuple[int, int, int]]:
    """Evidence pieces cut at sentence ends, so the answer cites after every sentence."""
    out = []
    for p, s, e in segments:
        cut = s
        for m in sentence_cuts(texts[p], s, e):
            out.append((p, cut, m.start()))
            cut = m.end()
        out.append((p, cut, e))
    return [(p, s, e) for p, s, e in out if e > s]


def selector_loss(memory: Memory, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """-log of the selector mass on the gold sentences (those the answer copies from), or on "none" for a
    refusal; mean over the batch. The gold answer fixes the targets, so no extra labels are needed."""
    return selector_nll(memory.select, selector_gold(memory, targets, vocab_size)).mean()


def selector_gold(memory: Memory, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, S + 1): the selector columns of the sentences each gold answer copies from, or "none" (the last)."""
    B, S1 = memory.select.shape
    space = OutputSpace(vocab_size, memory.sent_index.shape[1], memory.passage_ok.shape[1])
    is_copy = space.is_copy(targets)
    cols = memory.sent_index.gather(1, torch.where(is_copy, space.position_of(targets), 0))
    cols = torch.where(is_copy, cols, S1 - 1)  # non-copies point at "none"; only refusals have nothing else
    gold = torch.zeros(B, S1, dtype=torch.bool, device=targets.device).scatter_(1, cols, True)
    gold[:, -1] = ~is_copy.any(1)
    return gold


def selector_nll(select: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Per row, -log of the softmax mass of `select` (logits, the last column "none") on `gold`."""
    return -(select.log_softmax(-1).masked_fill(~gold, float("-inf")).logsumexp(-1))
