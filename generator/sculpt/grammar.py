"""The answer grammar: which output-space ids a slot may hold, and the sampler's choice among them.

An answer is either words (the refusal) or quoted sentence prefixes, each followed by the citation of the
passage it comes from; a position is never copied twice. This is the repetition control, and it makes every
citation consistent with the text it follows. `choose` commits a slot's value under the grammar;
`draft_span` proposes the copies that would continue a quote (the fast sampler verifies them in one call).
Pure functions over numpy arrays of one request: `sentence` and `starts` are its (M,) rows of the Batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .space import MASK, OutputSpace


@dataclass(frozen=True)
class Selection:
    """The sentence-level decisions of a request, made once before decoding (generator._selector).

    refuse: the answer is the refusal (first slot: words only), else it opens on a quote (copies only);
    score: (M,) each position's sentence score (relevance, or the learned selector's log-probability), -inf
        off sentences and on banned ones;
    starts: (M,) bool, where a quote may open (sentence starts, and clause starts when enabled);
    more_cut: after a citation, another quote only while an unused sentence scores at least this;
    max_quotes: and while the answer has fewer quotes than this (None: no limit);
    decoder_weight: opening a quote, the sentence is the one with the best score + decoder_weight x log of
        the decoder's copy probability over the sentence;
    start_score: (M,) then the start within it with the best start_score (relevance.clause_choice); without
        it, the sentence's first allowed start;
    joins: (M,) bool, the token continues the word before it (features.word_joins): a quote never stops
        inside a word;
    connector: the id of the word written between a quote that stops inside its sentence and the next
        quote, when that one opens where a joining word reads on (`joinable`): "... 150 employees [1] and
        300 in 2023 [2]" (None: quotes follow each other unjoined);
    joinable: (M,) bool, the quote starts a connector may precede (features.joinable_starts);
    stops: (M,) bool, where a quote that reaches the position ends, cited there (relevance.cell_stops: the
        value a table row's column holds when the question asks for that column; None: the decoder decides);
    cell_gaps: (M,) long, at a table cell's last token the length of the row's next cell (features.cell_gaps):
        a quote that reaches a cell end and cannot fit the next cell and its citation on the canvas ends there;
    terms, sentence_terms: (M,) each position's content term id (-1 none) and each sentence's set of them,
        the question's left out (relevance.position_terms): a further quote opens only on a sentence that
        brings at least `novelty` of its terms new to the answer (`redundant`); None: no such test;
    lead: (M,) the sentence id of the line that names the reference entry each position's sentence belongs to,
        -1 none (relevance.entry_leads): a quote that opens on such a sentence opens with the name instead, then
        `colon` (written, not copied), then the sentence: "PASSWORD_RESET_TIMEOUT: 259200 (3 days, in seconds)
        [1]"; the name is quoted once, and only where the name, the colon and the sentence fit. None: never;
    follow: (M,) at each position of a lead-in ("... add the following to your my.cnf:"), the position where the
        line below it starts, -1 elsewhere (relevance.list_leads): a quote of a lead-in is followed by that line,
        cited to the same passage, wherever it fits and says something new, and the two count as one quote under
        `max_quotes` (a lead-in alone promises what it does not say: "You can do that by adding the following to
        your my.cnf: [1]"). None: never."""

    refuse: bool
    score: np.ndarray
    starts: np.ndarray
    more_cut: float
    max_quotes: int | None = None
    decoder_weight: float = 1.0
    start_score: np.ndarray | None = None
    joins: np.ndarray | None = None
    connector: int | None = None
    joinable: np.ndarray | None = None
    stops: np.ndarray | None = None
    cell_gaps: np.ndarray | None = None
    terms: np.ndarray | None = None
    sentence_terms: dict[int, frozenset[int]] | None = None
    novelty: float = 0.0
    lead: np.ndarray | None = None
    colon: int | None = None
    follow: np.ndarray | None = None


def draft_span(canvas: np.ndarray, slot: int, sentence: np.ndarray, space: OutputSpace, length: int) -> list[int]:
    """Copy ids that would continue the span the slot on the left copies: p+1, p+2, ... (same sentence,
    not yet used, over the masked slots that follow, leaving room for the verdict slot)."""
    if slot == 0 or not space.is_copy(int(canvas[slot - 1])):
        return []
    p = space.position_of(int(canvas[slot - 1]))
    used = set(canvas[space.is_copy(canvas)].tolist())
    out: list[int] = []
    for d in range(1, length + 1):
        q = p + d
        if slot + d >= canvas.size or int(canvas[slot + d - 1]) != MASK:  # room for the verdict slot too
            break
        if q >= space.positions or int(sentence[q]) != int(sentence[p]) or space.copy(q) in used:
            break
        out.append(space.copy(q))
    return out


def choose(logp: np.ndarray, rows: np.ndarray, only: np.ndarray, space: OutputSpace, eos: int,
           sentence: np.ndarray, selection: Selection, left: np.ndarray | None = None) -> np.ndarray:
    """The committed value of slot only[r] in each row, under the answer grammar, by kind then member.

    `logp` (n, space.size): the model's log-probabilities for slot only[r] of canvas rows[r] (n, L).

    Grammar (what a slot may hold given the slot on its left):
    - the first slot, or after a citation: a copy of a quote start (a sentence's first token, or a clause's)
      in a sentence not quoted before, EOS (not first), or a word (first slot only: the refusal is written
      in words);
    - after a copy of p inside a sentence: p+1 (continue) or the citation of p's passage (stop here; not
      inside a word); at a stop (`Selection.stops`), or at a table cell's end when the row's next cell
      would not fit the canvas, the citation only;
    - after a copy of a sentence's last token: the citation of its passage;
    - after a citation, when another quote follows, the quote before stopped inside its sentence and the
      next one opens on a joinable start: the connector word (written, not copied), then that quote;
    - after a word: a word or EOS (the refusal), or after a connector the quote it announces;
    - a quote that would open on a sentence of a reference entry that does not name the entry opens on the
      entry's name instead (`Selection.lead`), which is followed by the colon (written), then by a quote of one
      of that entry's sentences: "NAME: sentence [n]", one citation for both.
    So an answer is either words (the refusal) or quoted sentence pieces, each cited with the passage it
    comes from, joined by at most one written word each: citations are consistent with the text by
    construction, and nothing is ever repeated.
    The kind (word / copy / cite) is the one the model gives the most total probability among the kinds the
    grammar allows here (copy probability is spread over many positions; a plain argmax would favour the one
    fixed refusal sentence over an answer the model is sure of in total), then the most probable member the
    grammar allows.

    The Selection takes the sentence-level choices: the first slot is words only when `refuse`, copies only
    otherwise; after a citation the answer goes on only while an unused sentence scores >= `more_cut` (and
    under `max_quotes`), else EOS; a quote opens on the best sentence (`_best_sentence_start`).
    (Why the selection decides when to stop: the decoder is trained on randomly masked canvases, where a
    fully written prefix before a fully masked rest is rare, so its EOS probability right after a citation
    is badly calibrated under left-to-right filling; measured in docs/benchmarks.md.)"""
    n, K = logp.shape
    copies = space.slices[1]
    left = tokens_to_end(sentence) if left is None else left  # (a run passes its own, computed once)
    allowed = np.stack([allowed_values(rows[r], int(only[r]), logp[r, copies], space, eos, sentence, selection,
                                       left, K) for r in range(n)])
    kinds = words, copies, _ = space.slices
    kind_ok = np.stack([allowed[:, kind].any(-1) for kind in kinds], -1)
    totals = np.where(kind_ok, np.stack([_logsumexp(logp[:, kind]) for kind in kinds], -1), -np.inf)
    raw = logp
    logp = np.where(allowed, logp, -np.inf)
    out = np.empty(n, dtype=np.int64)
    for r, k in enumerate(totals.argmax(-1).tolist()):
        kind = kinds[k]
        out[r] = kind.start + int(logp[r, kind].argmax())
        if kind == copies and allowed[r, copies].sum() > 1:  # opening a quote: pick the sentence, then its start
            out[r] = space.copy(_best_sentence_start(raw[r, copies], allowed[r, copies], sentence, selection.score,
                                                     selection.decoder_weight, selection.start_score))
    return out


def allowed_values(row: np.ndarray, i: int, copy_logp: np.ndarray, space: OutputSpace, eos: int,
                   sentence: np.ndarray, selection: Selection, left: np.ndarray, size: int) -> np.ndarray:
    """(size,) bool: the values the grammar allows at slot i of canvas `row` (see `choose`). `copy_logp`: the
    decoder's copy log-probabilities at the slot, read only to pick the next quote's sentence when
    `selection.decoder_weight` is not 0 (whether a connector precedes it); `left`: `tokens_to_end(sentence)`."""
    words, copies, _ = space.slices
    L = row.size
    allowed = np.zeros(size, dtype=bool)
    prev = int(row[i - 1]) if i > 0 else None
    connected = prev not in (None, MASK, eos) and not space.is_copy(prev) and not space.is_cite(prev) \
        and bool(space.is_copy(row[:i]).any())  # a connector was just written: its quote follows
    if prev is None or space.is_cite(prev) or connected:
        used = space.position_of(row[space.is_copy(row)])
        allowed[copies] = selection.starts & ~np.isin(sentence, sentence[used])  # a sentence is quoted once
        if prev is not None:  # a further quote opens only if its sentence fits whole, with its citation,
            allowed[copies] &= left + 1 <= L - i  # and says something the answer does not say yet
            if selection.sentence_terms is not None and bool(allowed[copies].any()):
                allowed[copies] &= ~redundant(row, space, sentence, selection, allowed[copies])
        if prev is None:
            allowed[words] = selection.refuse
            allowed[eos] = False
            if selection.refuse:
                allowed[copies] = False
        elif not connected:  # after a citation: another quote, or the end
            item = _follows(row, i, space, selection)
            if item >= 0 and bool(allowed[copies][item]):  # a lead-in's line below it
                allowed[copies] = False
                allowed[space.copy(item)] = True
                return allowed
            allowed[eos] = True
            best = np.where(allowed[copies], selection.score, -np.inf).max()
            quotes = _quotes(row, space, selection)
            room = selection.max_quotes is None or quotes < selection.max_quotes
            if bool(allowed[copies].any()) and float(best) >= selection.more_cut and room:
                allowed[eos] = False  # another quote
                if _joins_next(row, i, copy_logp, allowed[copies], space, sentence, selection, left):
                    allowed[copies] = False
                    allowed[selection.connector] = True
            else:
                allowed[copies] = False
        if selection.lead is not None and bool(allowed[copies].any()):
            if connected and prev == selection.colon:  # after "NAME:", a sentence of that entry
                named = int(sentence[space.position_of(int(row[i - 2]))])
                allowed[copies] = _led_starts(named, used, L - i, sentence, selection, left)
            else:
                allowed[copies] = _with_lead(allowed[copies], used, i, L, sentence, selection, left)
    elif space.is_copy(prev):
        p = space.position_of(prev)
        goes_on = p + 1 < space.positions and int(sentence[p + 1]) == int(sentence[p]) >= 0 \
            and not (selection.stops is not None and bool(selection.stops[p])) \
            and not (selection.cell_gaps is not None and int(selection.cell_gaps[p]) > L - 2 - i)
        if goes_on:
            allowed[space.copy(p + 1)] = True
        if i == L - 1:  # the canvas's last slot: the quote is cited here, whatever is left of it
            allowed[copies] = False
        if not goes_on and _names_entry(row, i, p, L, sentence, selection, left, space):
            allowed[selection.colon] = True  # the entry's name, then what it is
        elif i == L - 1 or not (goes_on and selection.joins is not None and bool(selection.joins[p + 1])):
            allowed[space.cite(space.locate(p)[0])] = True  # stop here (not inside a word)
    else:
        allowed[words] = True
    return allowed


def _follows(row: np.ndarray, i: int, space: OutputSpace, selection: Selection) -> int:
    """The position where the line below the lead-in quoted just before slot i's citation starts, or -1."""
    if selection.follow is None or i < 2 or not space.is_copy(int(row[i - 2])):
        return -1
    return int(selection.follow[space.position_of(int(row[i - 2]))])


def _quotes(row: np.ndarray, space: OutputSpace, selection: Selection) -> int:
    """The quotes in `row` as `max_quotes` counts them: a lead-in followed by the line below it counts once."""
    cites = np.flatnonzero(space.is_cite(row)).tolist()
    if selection.follow is None:
        return len(cites)
    return len(cites) - sum(c + 1 < row.size and space.is_copy(int(row[c + 1]))
                            and _follows(row, c + 1, space, selection) == space.position_of(int(row[c + 1]))
                            for c in cites)


def forced(row: np.ndarray, i: int, space: OutputSpace, eos: int, sentence: np.ndarray,
           selection: Selection, left: np.ndarray | None = None) -> int | None:
    """The value `choose` commits at slot i of `row` whatever the decoder says, or None when the decoder
    decides. Forced: a slot the grammar allows one value (the citation at a sentence's end, the end of the
    answer after its last quote), and, when openings do not weigh the decoder (`decoder_weight` 0, the
    relevance selector), opening the next quote (the first slot of an answer, the slot after a citation or
    after a connector). The fast sampler commits these without a model call."""
    if selection.decoder_weight and selection.connector is not None:
        return None  # whether a connector is written would read the decoder's copy probabilities
    left = tokens_to_end(sentence) if left is None else left
    copy_logp = np.zeros(space.positions, dtype=np.float32)
    allowed = allowed_values(row, i, copy_logp, space, eos, sentence, selection, left, space.size)
    present = [kind for kind in space.slices if bool(allowed[kind].any())]
    if len(present) != 1:
        return None
    kind = present[0]
    members = np.flatnonzero(allowed[kind])
    if len(members) == 1:
        return kind.start + int(members[0])
    if kind == space.slices[1] and not selection.decoder_weight:
        return space.copy(_best_sentence_start(copy_logp, allowed[kind], sentence, selection.score, 0.0,
                                               selection.start_score))
    return None


def _with_lead(ok_start: np.ndarray, used: np.ndarray, i: int, L: int, sentence: np.ndarray, selection: Selection,
               left: np.ndarray) -> np.ndarray:
    """The openings `ok_start` (M,), or only the first token of the entry's name where the quote would open on a
    sentence of a reference entry that does not name it, the name is not quoted yet, and the name, the colon,
    the sentence and its citation fit on the canvas."""
    best = _best_sentence_start(np.zeros(ok_start.size, dtype=np.float32), ok_start, sentence, selection.score, 0.0,
                                selection.start_score)
    named = int(selection.lead[best])
    if named < 0 or bool(np.isin(named, sentence[used])):
        return ok_start
    first = int(np.flatnonzero(sentence == named)[0])
    if int(left[first]) + 1 + int(left[best]) + 1 > L - i:
        return ok_start
    out = np.zeros_like(ok_start)
    out[first] = True
    return out


def _names_entry(row: np.ndarray, i: int, p: int, L: int, sentence: np.ndarray, selection: Selection,
                 left: np.ndarray, space: OutputSpace) -> bool:
    """Slot i follows the last token (p) of an entry's name that a quote opened on: the colon comes next, where one
    of the entry's sentences, not quoted yet, still fits after it with its citation."""
    if selection.lead is None or selection.colon is None or i >= L - 2:
        return False
    named = int(sentence[p])
    if not bool((selection.lead == named).any()):
        return False
    used = space.position_of(row[: i][space.is_copy(row[: i])])
    return bool(_led_starts(named, used, L - i - 1, sentence, selection, left).any())


def _led_starts(named: int, used: np.ndarray, room: int, sentence: np.ndarray, selection: Selection,
                left: np.ndarray) -> np.ndarray:
    """(M,) the quote starts in the sentences that entry name `named` leads, not quoted yet (`used`: the copied
    positions), whose rest and citation fit in `room` slots."""
    return selection.starts & (selection.lead == named) & ~np.isin(sentence, sentence[used]) & (left + 1 <= room)


def tokens_to_end(sentence: np.ndarray) -> np.ndarray:
    """(M,) how many tokens from each position to the end of its sentence, itself included (0 off sentences)."""
    idx = np.arange(sentence.size)
    ids, inverse = np.unique(sentence, return_inverse=True)
    last = np.full(len(ids), -1, dtype=np.int64)
    np.maximum.at(last, inverse, idx)
    return np.where(sentence >= 0, last[inverse] - idx + 1, 0)


def _joins_next(row: np.ndarray, i: int, copy_logp: np.ndarray, ok_start: np.ndarray, space: OutputSpace,
                sentence: np.ndarray, selection: Selection, left: np.ndarray) -> bool:
    """Whether slot i (after a citation, before another quote) takes the connector: the quote before the
    citation stopped inside its sentence, and the quote that will open next reads on after a joining word
    and still fits whole after it (`left`: tokens to each position's sentence end)."""
    if selection.connector is None or selection.joinable is None or i < 2 or not space.is_copy(int(row[i - 2])):
        return False
    last = space.position_of(int(row[i - 2]))
    if not (last + 1 < space.positions and int(sentence[last + 1]) == int(sentence[last])):
        return False  # it ran to its sentence's end: the next quote starts a sentence of its own
    nxt = _best_sentence_start(copy_logp, ok_start, sentence, selection.score, selection.decoder_weight,
                               selection.start_score)
    return bool(selection.joinable[nxt]) and int(left[nxt]) + 2 <= row.size - i


def redundant(row: np.ndarray, space: OutputSpace, sentence: np.ndarray, selection: Selection,
              candidates: np.ndarray) -> np.ndarray:
    """(M,) bool: the positions of the candidate sentences (those holding a True of `candidates`) whose
    content terms are mostly in the answer already: under `selection.novelty` of them are new to the quotes
    of `row` (and to the question). Maximal marginal relevance, with words for the similarity."""
    quoted = set(selection.terms[space.position_of(row[space.is_copy(row)])].tolist())
    repeat = [k for k in np.unique(sentence[candidates]).tolist()
              if len((own := selection.sentence_terms.get(k, frozenset())) - quoted) < selection.novelty * max(len(own), 1)]
    return np.isin(sentence, np.array(repeat, dtype=sentence.dtype))


def _best_sentence_start(copy_logp: np.ndarray, ok_start: np.ndarray, sentence: np.ndarray,
                         score: np.ndarray, decoder_weight: float = 1.0,
                         start_score: np.ndarray | None = None) -> int:
    """The quote start to open: first the sentence with the best score + decoder_weight x log of the copy
    probability the decoder puts on the whole sentence, then, among that sentence's allowed starts, the one
    with the best `start_score` where it has one (where the part that answers begins), else the first."""
    sid = np.where(sentence >= 0, sentence, 0)
    ids, inverse = np.unique(sid, return_inverse=True)
    if decoder_weight:
        mass = np.bincount(inverse, weights=np.exp(copy_logp) * (sentence >= 0), minlength=len(ids))
        total = score + decoder_weight * np.log(np.maximum(mass[inverse], 1e-30)).astype(np.float32)
    else:
        total = score
    best = int(np.where(ok_start, total, -np.inf).argmax())
    here = ok_start & (sentence == sentence[best])
    if start_score is not None and bool(np.isfinite(start_score[here]).any()):
        return int(np.where(here, start_score, -np.inf).argmax())
    return int(np.flatnonzero(here)[0])  # the sentence's first allowed start


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis (-inf for a row of -inf)."""
    top = x.max(-1)
    safe = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - safe[..., None]).sum(-1)) + safe
