"""Citation constraints applied while denoising: markers name given passages; sentences end with markers.

Markers ("[3]", "[1, 2]") are ordinary tokens, split however the tokenizer splits them. The rules are
checked on token *strings* around a position, with masked neighbours treated as unknown:

1. A marker can only name a passage that was given: any committed text that would contain a complete
   marker naming another number is refused (tokens that are such a marker on their own are banned outright).
2. With `require_citations`: a sentence-ending ".", "!" or "?" (followed by whitespace, a masked
   position or the end) may only be committed right after a complete marker ("... [2]."), and the answer
   may only end (EOS) after one. A "." followed by a committed non-space token ("3.5") is not a sentence end.

Because a canvas fills in any order, the sampler *defers* a proposed token that breaks a rule in its
current context (it may become legal once its neighbours are committed) and only *substitutes* the best
legal token when a position must be committed now. Parallel commits are checked left to right, each
against the canvas including the ones accepted before it. Tokens without brackets, digits or
(with require_citations) sentence punctuation are "neutral": they can never break a rule.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import torch

from pipeline.text import MARKER_RE  # the same pattern finalize_citations uses, so the two never drift

MARKER = MARKER_RE.pattern
_CITED_END = re.compile(MARKER + r"[\s.!?]*$")
_RUN = set("[]0123456789,.!? \t\n")  # characters a marker, or a marker and its punctuation, is made of
_MAX_CONTEXT = 32


class CitationConstraints:
    """Rules over token strings; one per (tokenizer, given passages, require_citations)."""

    def __init__(self, token_strings: Sequence[str], allowed: Iterable[int], *, require_citations: bool = False,
                 stop_ids: Iterable[int] = (), banned_ids: Iterable[int] = ()) -> None:
        self.strings = list(token_strings)
        self.allowed = frozenset(int(a) for a in allowed)
        self.require = require_citations and bool(self.allowed)  # no passages: nothing could be cited
        self.stop_ids = frozenset(int(s) for s in stop_ids)
        V = len(self.strings)
        checked = [i for i, s in enumerate(self.strings) if self._is_checked(s)]
        if self.require:
            checked += [i for i in self.stop_ids if i < V]
        self.checked_ids = torch.tensor(sorted(set(checked)), dtype=torch.long)
        self.neutral = torch.ones(V, dtype=torch.bool)
        self.neutral[self.checked_ids] = False
        self.static_ban = torch.zeros(V, dtype=torch.bool)  # (V,) never legal anywhere
        for i in banned_ids:
            if 0 <= i < V:
                self.static_ban[i] = True
        for i in self.checked_ids.tolist():
            if i not in self.stop_ids and self._bad_marker(self.strings[i]):
                self.static_ban[i] = True
        self._bans: dict[tuple[str, str], torch.Tensor] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer, vocab_size: int, allowed: Iterable[int], *, stop_ids: Iterable[int] = (),
                       require_citations: bool = False) -> "CitationConstraints":
        """Build from a tokenizer (for many requests, compute `token_strings` once and call the constructor)."""
        strings, banned = token_strings(tokenizer, vocab_size, stop_ids)
        return cls(strings, allowed, require_citations=require_citations, stop_ids=stop_ids, banned_ids=banned)

    # -- rules on strings -------------------------------------------------------------------------------
    def _is_checked(self, s: str) -> bool:
        if not s:
            return False
        if any(c in "[]" or c.isdigit() for c in s) or all(c in ", \t\n" for c in s):
            return True
        return self.require and any(c in ".!?" for c in s)

    def _bad_marker(self, s: str) -> bool:
        if "[" not in s or "]" not in s:
            return False
        return any(int(n) not in self.allowed for m in MARKER_RE.finditer(s) for n in m.group(1).split(","))

    def violates(self, left: str, token: int, right: str) -> bool:
        """Would `token` between context strings `left` and `right` break a rule? ('' = unknown/masked)."""
        if token in self.stop_ids:
            return self.require and not _CITED_END.search(left)
        s = left + self.strings[token] + right
        if self._bad_marker(s):
            return True
        if not self.require:
            return False
        for j, ch in enumerate(s):
            if ch in ".!?" and (j + 1 == len(s) or s[j + 1].isspace()) and not _CITED_END.search(s[:j]):
                return True
        return False

    def banned_for(self, left: str, right: str) -> torch.Tensor:
        """(K,) ids of the checked tokens that are illegal between `left` and `right` (cached per context)."""
        key = (left, right)
        if key not in self._bans:
            ids = [i for i in self.checked_ids.tolist() if self.violates(left, i, right)]
            self._bans[key] = torch.tensor(ids, dtype=torch.long)
        return self._bans[key]

    # -- contexts on the canvas -------------------------------------------------------------------------
    def context(self, row: list[int], mask_id: int, i: int) -> tuple[str, str]:
        """Normalised strings left and right of position i in a canvas row (stopping at masks)."""
        left, j = "", i - 1
        while j >= 0 and row[j] != mask_id and row[j] not in self.stop_ids and len(left) <= _MAX_CONTEXT:
            left = self.strings[row[j]] + left
            if any(c not in _RUN for c in left):
                break
            j -= 1
        right, j = "", i + 1
        while j < len(row) and row[j] != mask_id and row[j] not in self.stop_ids and len(right) <= _MAX_CONTEXT:
            right = right + self.strings[row[j]]
            if any(c not in _RUN for c in right):
                break
            j += 1
        return _tail(left), _head(right)

    def violations(self, x0: torch.Tensor, canvas: torch.Tensor, w0: int, mask_id: int,
                   candidates: torch.Tensor) -> torch.Tensor:
        """(B, W) bool: proposed x0 at candidate window positions that break a rule in the current canvas."""
        out = torch.zeros_like(candidates)
        nonneutral = candidates & ~self.neutral.to(x0.device)[x0]
        rows: dict[int, list[int]] = {}
        for b, w in nonneutral.nonzero().tolist():
            row = rows.setdefault(b, canvas[b].tolist())
            left, right = self.context(row, mask_id, w0 + w)
            out[b, w] = self.violates(left, int(x0[b, w]), right)
        return out

    def commit(self, x0: torch.Tensor, select: torch.Tensor, canvas: torch.Tensor, w0: int, mask_id: int,
               logits: torch.Tensor, must: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check selected commits left to right; defer violators, or substitute the best legal token
        where row b must commit now (`must[b]`). Returns the new (x0, select), both (B, W)."""
        x0, select = x0.clone(), select.clone()
        for b in range(x0.shape[0]):
            row = canvas[b].tolist()
            for w in select[b].nonzero().flatten().tolist():
                tok = int(x0[b, w])
                left, right = self.context(row, mask_id, w0 + w)
                if not self.neutral[tok] and self.violates(left, tok, right):
                    if not must[b]:
                        select[b, w] = False
                        continue
                    scores = logits[b, w].clone()
                    scores[self.banned_for(left, right).to(scores.device)] = float("-inf")
                    tok = int(scores.argmax())
                    x0[b, w] = tok
                row[w0 + w] = tok
        return x0, select


class RowConstraints:
    """One CitationConstraints per canvas row, for a batch of requests with different passages: the same
    interface as CitationConstraints, with `static_ban` and `neutral` (B, V) and every check made by the
    row's own rules, so a row is judged exactly as it would be alone."""

    def __init__(self, rows: Sequence[CitationConstraints]) -> None:
        if not rows:
            raise ValueError("RowConstraints needs one CitationConstraints per row, got none")
        self.rows = list(rows)
        self.static_ban = torch.stack([r.static_ban for r in self.rows])  # (B, V)
        self.neutral = torch.stack([r.neutral for r in self.rows])  # (B, V)

    def violations(self, x0: torch.Tensor, canvas: torch.Tensor, w0: int, mask_id: int,
                   candidates: torch.Tensor) -> torch.Tensor:
        """(B, W) bool: CitationConstraints.violations, row by row."""
        return torch.cat([r.violations(x0[b:b + 1], canvas[b:b + 1], w0, mask_id, candidates[b:b + 1])
                          for b, r in enumerate(self.rows)])

    def commit(self, x0: torch.Tensor, select: torch.Tensor, canvas: torch.Tensor, w0: int, mask_id: int,
               logits: torch.Tensor, must: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CitationConstraints.commit, row by row -> the new (x0, select), both (B, W)."""
        parts = [r.commit(x0[b:b + 1], select[b:b + 1], canvas[b:b + 1], w0, mask_id, logits[b:b + 1], must[b:b + 1])
                 for b, r in enumerate(self.rows)]
        return torch.cat([x for x, _ in parts]), torch.cat([s for _, s in parts])


def token_strings(tokenizer, vocab_size: int, stop_ids: Iterable[int] = ()) -> tuple[list[str], set[int]]:
    """The text of every token id (special and out-of-tokenizer ids as ""), and the ids never to generate
    (special ids other than the stop ids, ids past the tokenizer)."""
    n = min(len(tokenizer), vocab_size)
    strings = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items() if t.special}
    strings = [("" if i in special else s) for i, s in enumerate(strings)] + [""] * (vocab_size - n)
    return strings, (special - set(stop_ids)) | set(range(n, vocab_size))


def _tail(left: str) -> str:
    """The trailing marker-ish run of `left`, prefixed with 'x' when other text precedes it."""
    k = len(left)
    while k > 0 and left[k - 1] in _RUN:
        k -= 1
    return ("x" if k > 0 else "") + left[k:]


def _head(right: str) -> str:
    """The leading marker-ish run of `right`, followed by 'x' when other text follows it."""
    k = 0
    while k < len(right) and right[k] in _RUN:
        k += 1
    return right[:k] + ("x" if k < len(right) else "")
