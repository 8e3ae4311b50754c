"""The output space: what one answer slot can hold, as one integer id per choice.

Ids run [vocabulary words | copy positions | passage citations]:
- word w (a tokenizer id, EOS included):    0 <= id < vocab
- COPY of copy position q (= p * T + t):   vocab + q
- CITE of passage p (0-based in the request): vocab + positions + p
and MASK (-1) marks a slot not filled yet. The model's log-probabilities are laid out in this order along
their last axis, so `OutputSpace.vocab_slice / copy_slice / cite_slice` cut them into the three kinds.
Every method works on ints and on tensors alike (plain comparisons and arithmetic, no Python loops).
"""

from __future__ import annotations

from dataclasses import dataclass

MASK = -1  # a slot that is still masked (canvas value)


@dataclass(frozen=True)
class OutputSpace:
    vocab: int  # V: the tokenizer's vocabulary
    positions: int  # M = P * T: copy positions (passage tokens, padding included)
    passages: int  # P: passages of the request (citations)

    @classmethod
    def of(cls, vocab: int, batch_shape: tuple[int, int, int]) -> "OutputSpace":
        """The space of a featurized request: `batch_shape` is Batch.shape, (B, P, T)."""
        _, P, T = batch_shape
        return cls(vocab, P * T, P)

    @property
    def size(self) -> int:
        return self.vocab + self.positions + self.passages

    @property
    def passage_length(self) -> int:
        """T: copy positions per passage."""
        return self.positions // self.passages

    # -- ids of each kind -----------------------------------------------------------------------------------
    def copy(self, pos):
        """The id that copies copy position `pos`."""
        return self.vocab + pos

    def cite(self, passage):
        """The id that cites passage `passage` (0-based)."""
        return self.vocab + self.positions + passage

    def is_vocab(self, x):
        return (x >= 0) & (x < self.vocab)

    def is_copy(self, x):
        return (x >= self.vocab) & (x < self.vocab + self.positions)

    def is_cite(self, x):
        return x >= self.vocab + self.positions

    def position_of(self, x):
        """The copy position of a COPY id."""
        return x - self.vocab

    def passage_of(self, x):
        """The passage of a CITE id."""
        return x - self.vocab - self.positions

    # -- copy positions <-> (passage, token) -----------------------------------------------------------------
    def position(self, passage, token):
        """The copy position of token `token` of passage `passage`."""
        return passage * self.passage_length + token

    def locate(self, pos) -> tuple:
        """(passage, token) of a copy position."""
        return pos // self.passage_length, pos % self.passage_length

    # -- slices of the last axis of the model's output ------------------------------------------------------
    @property
    def vocab_slice(self) -> slice:
        return slice(0, self.vocab)

    @property
    def copy_slice(self) -> slice:
        return slice(self.vocab, self.vocab + self.positions)

    @property
    def cite_slice(self) -> slice:
        return slice(self.vocab + self.positions, self.size)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """(vocab, copy, cite): the three kinds, in output order."""
        return self.vocab_slice, self.copy_slice, self.cite_slice
