"""The default generator: the bundled copy-aware diffusion model (generator/sculpt.py) and its samplers.

Decoding order and choice: each step fills the leftmost masked slot (the canvas of later slots stays
masked, so the model still sees the answer's room and reads the passages both ways). A slot's value is
chosen in two levels, among what the answer grammar allows: first the kind with the most total
probability (write a word / copy a passage token / cite a passage), then the most probable member.
The model's sentence selector (computed with the passages, once per request) takes two of these choices
with the decoder: at the first slot it decides answer or refuse (refuse when its "none of the sentences"
probability reaches `refuse_threshold`), and where a quote opens, the sentence is the one with the most
decoder copy probability times selector probability.

Fast sampler (exact span drafting): the passages are encoded once (exact: the encoder never sees the
answer). When the slot on the left copies passage token p, the next passage tokens p+1, p+2, ... are
drafted into the following slots, and one batched call scores every prefix: row r holds the first r drafts
and asks for slot r. The drafts the model itself would have chosen are accepted, plus the model's own
choice at the first disagreement. The answer is therefore identical to the naive sampler's, with many
slots per model call along a quoted span. Naive sampler: one slot per step, and the encoder rerun at every
step, as a masked-diffusion sampler without caching would.

Answer grammar (see `_choose`): an answer is either words (the refusal) or quoted sentence prefixes,
each followed by the citation of the passage it comes from; a position is never copied twice. This is
the repetition control, and it makes every citation consistent with the text it follows.

Rendering: runs of copies that follow each other in a passage become that passage's exact characters
(from the first token's start offset to the last one's end), so quotes are verbatim; a citation slot is
"[n]" with n the passage's number in the request; generated words go through the tokenizer's decoder
(uncased), and a generated refusal is replaced by the canonical `REFUSAL` sentence.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch

from pipeline.errors import ConfigError, ModelLoadError

from .base import last_of
from .citations import finalize_citations
from .prompt import REFUSAL
from .sculpt import SculptModel, featurize, load_checkpoint
from .types import MASK_GLYPH, DenoiseState, DiffusionConfig, GenerationRequest, GenerationResult, GenerationTrace

BUNDLED = Path(__file__).parent / "weights" / "sculpt"


def bundled_checkpoint() -> Path:
    if not (BUNDLED / "model.safetensors").is_file():
        raise ModelLoadError(f"the bundled checkpoint is missing from {BUNDLED}; reinstall sculptrag or pass "
                             "model_path= a folder written by `sculptrag train-generator`")
    return BUNDLED


class SculptGenerator:
    """Generator protocol over a sculpt checkpoint (the bundled one by default)."""

    def __init__(self, model_path: str | Path | None = None, sampler: Literal["fast", "naive"] = "fast",
                 draft_length: int = 16, max_steps: int | None = None, device: str = "cpu",
                 refuse_threshold: float = 0.7, more_threshold: float = 0.5, name: str = "sculpt") -> None:
        if sampler not in ("fast", "naive"):
            raise ConfigError(f"sampler must be 'fast' or 'naive', got {sampler!r}")
        if not 0.0 < refuse_threshold <= 1.0:
            raise ConfigError(f"refuse_threshold must be in (0, 1], got {refuse_threshold}")
        if not 0.0 <= more_threshold <= 1.0:
            raise ConfigError(f"more_threshold must be in [0, 1], got {more_threshold}")
        self.refuse_threshold = refuse_threshold
        self.more_threshold = more_threshold
        if draft_length < 1:
            raise ConfigError(f"draft_length must be >= 1, got {draft_length}")
        self.model_path = Path(model_path) if model_path else None
        self.sampler = sampler
        self.draft_length = draft_length
        self.max_steps = max_steps
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.name = name
        self._model: SculptModel | None = None
        self._tokenizer = None

    def warm_up(self) -> None:
        if self._model is None:
            model, tok = load_checkpoint(self.model_path or bundled_checkpoint())
            self._model, self._tokenizer = model.to(self.device), tok

    def with_options(self, **options) -> "SculptGenerator":
        """A generator with other sampling settings (sampler, draft_length, max_steps, refuse_threshold,
        more_threshold) sharing this one's loaded model. model_path and device cannot change this way."""
        fixed = {"model_path", "device"} & set(options)
        if fixed:
            raise ConfigError(f"{', '.join(sorted(fixed))} cannot change on a loaded generator; build a new one")
        settings = {"sampler": self.sampler, "draft_length": self.draft_length, "max_steps": self.max_steps,
                    "refuse_threshold": self.refuse_threshold, "more_threshold": self.more_threshold,
                    "name": self.name, **options}
        other = SculptGenerator(self.model_path, device=str(self.device), **settings)
        other._model, other._tokenizer = self._model, self._tokenizer
        return other

    # -- the Generator protocol ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        return last_of(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        return self._decode(request)

    def repair(self, request: GenerationRequest, answer: str, spans: Sequence[tuple[int, int]],
               lengths: Sequence[int] | None = None) -> GenerationResult:
        """Remask the quotes of `answer` (a GenerationResult.raw_text of this generator, markers numbered as
        the request's passages) that overlap the character spans, and denoise again: the other quotes stay
        as they are (text that is not a verbatim quote of the passage it cites, as an edited answer may hold,
        is dropped too), the remasked ones are filled anew with their source sentences banned (so the model must
        find other support or stop; with nothing credible left it refuses). `lengths` is accepted for the
        protocol and unused: a quote's length is the model's choice."""
        for a, b in spans:
            if not 0 <= a < b <= len(answer):
                raise ConfigError(f"span ({a}, {b}) is not inside the answer (length {len(answer)})")
        texts = {p.number: p.text for p in request.passages}
        pieces = [q for q in _quotes(answer) if q[0] in texts.get(q[1], "")]  # verbatim quotes only
        keep = [q for q in pieces if not any(a < q[3] and q[2] < b for a, b in spans)]
        drop = [q for q in pieces if q not in keep]
        return last_of(self._decode(request, keep=[(n, text) for text, n, _, _ in keep],
                                    ban=[(n, text) for text, n, _, _ in drop]))

    def _decode(self, request: GenerationRequest, keep: Sequence[tuple[int, str]] = (),
                ban: Sequence[tuple[int, str]] = ()) -> Iterator[DenoiseState | GenerationResult]:
        """The sampler. `keep`: (passage number, quote) pairs committed first, each followed by its citation;
        `ban`: (passage number, quote) pairs whose sentences may not be quoted (repair)."""
        start = time.perf_counter()
        self.warm_up()
        model, tok = self._model, self._tokenizer
        max_steps = self.max_steps
        if isinstance(request.config, DiffusionConfig):
            max_steps = request.config.steps
        passages = list(request.passages)[: model.cfg.max_passages]
        if not passages:
            yield self._finish(request, [], None, start, [], 0, 0)
            return
        batch = featurize(tok, model.cfg, [request.question], [[p.text for p in passages]]).to(self.device)
        V = model.vocab_size
        B, P, T = batch.shape
        M = P * T
        eos = tok.sep_token_id
        L = model.cfg.slots
        canvas = torch.full((L,), -1, dtype=torch.long, device=self.device)
        per_step: list[int] = []
        nfe = 0
        with torch.inference_mode():
            memory = model.encode(batch)
            nfe += 1
            select = memory.select[0].log_softmax(-1)
            refuse = bool(select[-1].exp() >= self.refuse_threshold)
            select_pos = select[memory.sent_index[0]]  # each position's sentence; "none" off sentences
            select_pos = select_pos.masked_fill(memory.sent_index[0] == select.numel() - 1, float("-inf"))
            starts = batch.starts[0]
            numbers = {p.number: i for i, p in enumerate(passages)}
            if ban:
                copied = [x - V for n, q in ban for x in self._slots(batch, numbers, n, q, V)[:-1]]
                banned = torch.isin(batch.sentence[0], batch.sentence[0, copied])  # their whole sentences
                starts = starts.masked_fill(banned, 0)
                select_pos = select_pos.masked_fill(banned, float("-inf"))
                best = select_pos.masked_fill(~starts.bool(), float("-inf")).max()
                refuse = refuse or float(best.exp()) < self.more_threshold
            filled = [x for n, q in keep for x in self._slots(batch, numbers, n, q, V)][: L - 1]
            if filled:
                canvas[: len(filled)] = torch.tensor(filled, dtype=torch.long, device=self.device)
            step = 0
            while (canvas == -1).any():
                step += 1
                if self.sampler == "naive" and step > 1:  # no cache: the passages are encoded again
                    memory = model.encode(batch)
                    nfe += 1
                slot = int((canvas == -1).nonzero()[0])
                drafts = [] if self.sampler == "naive" else _draft(canvas, slot, batch.sentence[0], V, M,
                                                                      self.draft_length)
                rows = canvas.repeat(len(drafts) + 1, 1)
                for r in range(1, len(drafts) + 1):  # row r: drafts 0..r-1 in place, slot + r still masked
                    rows[r, slot: slot + r] = torch.tensor(drafts[:r], device=self.device)
                only = slot + torch.arange(len(drafts) + 1, device=self.device)
                logp = model(rows, memory.expand(rows.shape[0]), only=only)[:, 0]
                nfe += 1
                choice = _choose(logp, rows, only, V, M, T, eos, batch.sentence[0], starts, select_pos, refuse,
                                 self.more_threshold)
                accepted = 0
                while accepted < len(drafts) and int(choice[accepted]) == drafts[accepted]:
                    accepted += 1
                changed = list(range(slot, slot + accepted + 1))
                canvas[slot: slot + accepted] = torch.tensor(drafts[:accepted], dtype=torch.long, device=self.device)
                canvas[slot + accepted] = choice[accepted]
                if int(choice[accepted]) == eos:
                    canvas[slot + accepted:] = eos
                per_step.append(len(changed))
                left = int((canvas == -1).sum())
                if left and (max_steps is None or step < max_steps):
                    yield DenoiseState(step=step, text=self._render(canvas, batch, passages, V, M, True),
                                       masked=left, changed=changed, done=False)
                elif left:  # out of steps: end the answer here
                    canvas[canvas == -1] = eos
                    break
        prompt_tokens = int(batch.attention.sum())
        yield self._finish(request, canvas.tolist(), batch, start, per_step, nfe, prompt_tokens, passages)

    @staticmethod
    def _slots(batch, numbers: dict[int, int], number: int, quote: str, V: int) -> list[int]:
        """The canvas slots of a verbatim quote from passage `number`: its copies, then its citation."""
        if number not in numbers:
            raise ConfigError(f"[{number}] names no passage of the request")
        p = numbers[number]
        B, P, T = batch.shape
        text = batch.texts[0][p]
        a = text.find(quote)
        if a < 0:
            raise ConfigError(f"{quote[:60]!r} is not a quote from passage [{number}]")
        b = a + len(quote)
        pos = [t for t, (s, e) in enumerate(batch.offsets[0][p]) if s >= a and e <= b and e > s]
        return [V + p * T + t for t in pos] + [V + P * T + p]

    # -- text ---------------------------------------------------------------------------------------------
    def _finish(self, request, slots, batch, start, per_step, nfe, prompt_tokens, passages=()) -> GenerationResult:
        if batch is None:
            raw = REFUSAL
            answer_tokens = 0
        else:
            model = self._model
            raw = self._render(torch.tensor(slots), batch, passages, model.vocab_size, batch.shape[1] * batch.shape[2])
            eos = self._tokenizer.sep_token_id
            answer_tokens = next((i for i, s in enumerate(slots) if s == eos), len(slots))
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        trace = GenerationTrace(generator=self.name, steps=len(per_step), nfe=nfe, tokens_per_step=per_step,
                                prompt_tokens=prompt_tokens, answer_tokens=answer_tokens, wall_time_s=wall,
                                tokens_per_s=answer_tokens / wall if wall > 0 else 0.0)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)

    def _render(self, slots: torch.Tensor, batch, passages, V: int, M: int, show_masks: bool = False) -> str:
        """Slots -> text: verbatim passage characters for copy runs, [n] for cites, decoded words, masks."""
        T = batch.shape[2]
        eos = self._tokenizer.sep_token_id
        parts: list[str] = []
        run: tuple[int, int, int] | None = None  # (passage, first token, last token)
        words: list[int] = []

        def flush() -> None:
            nonlocal run, words
            if run is not None:
                p, a, z = run
                parts.append(batch.texts[0][p][batch.offsets[0][p][a][0]: batch.offsets[0][p][z][1]])
                run = None
            if words:
                parts.append(self._tokenizer.decode(words))
                words = []

        for s in slots.tolist():
            if s == eos:
                break
            if s == -1:
                flush()
                if show_masks:
                    parts.append(MASK_GLYPH)
                continue
            if V <= s < V + M:
                p, t = divmod(s - V, T)
                if run is not None and run[0] == p and run[2] + 1 == t:
                    run = (p, run[1], t)
                else:
                    flush()
                    run = (p, t, t)
                continue
            if s >= V + M:
                flush()
                parts.append(f"[{passages[s - V - M].number}]")
                continue
            if run is not None:
                flush()
            words.append(s)
        flush()
        text = " ".join(x for x in parts if x)
        if _normal(text) == _normal(REFUSAL):
            return REFUSAL
        return re.sub(r"\s+", " ", text).strip()


def _quotes(answer: str) -> list[tuple[str, int, int, int]]:
    """(quote, passage number, start, end) for each "quote [n]" piece of a raw answer (end includes the marker)."""
    return [(m.group(1), int(m.group(2)), m.start(1), m.end())
            for m in re.finditer(r"\s*(.*?)\s*\[(\d+)\]", answer, re.S) if m.group(1)]


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _draft(canvas: torch.Tensor, slot: int, sentence: torch.Tensor, V: int, M: int, length: int) -> list[int]:
    """Copy positions that would continue the span the slot on the left copies: p+1, p+2, ... (same
    sentence, not yet used, over the masked slots that follow, leaving room for the verdict slot)."""
    if slot == 0 or not V <= int(canvas[slot - 1]) < V + M:
        return []
    p = int(canvas[slot - 1]) - V
    used = set(canvas[(canvas >= V) & (canvas < V + M)].tolist())
    out: list[int] = []
    for d in range(1, length + 1):
        q = p + d
        if slot + d >= canvas.numel() or int(canvas[slot + d - 1]) != -1:  # room for the verdict slot too
            break
        if q >= M or int(sentence[q]) != int(sentence[p]) or V + q in used:
            break
        out.append(V + q)
    return out


def _choose(logp: torch.Tensor, rows: torch.Tensor, only: torch.Tensor, V: int, M: int, T: int, eos: int,
            sentence: torch.Tensor, starts: torch.Tensor, select_pos: torch.Tensor | None = None,
            refuse: bool | None = None, more_threshold: float = 0.5) -> torch.Tensor:
    """The committed value of slot only[r] in each row, under the answer grammar, by kind then member.

    Grammar (what a slot may hold given the slot on its left):
    - the first slot, or after a citation: a copy of a sentence's first token (not copied before), EOS
      (not first), or a word (first slot only: the refusal is written in words);
    - after a copy of p inside a sentence: p+1 (continue) or the citation of p's passage (stop here);
    - after a copy of a sentence's last token: the citation of its passage;
    - after a word: a word or EOS.
    So an answer is either words (the refusal) or quoted sentence prefixes, each cited with the passage it
    comes from: citations are consistent with the text by construction, and nothing is ever repeated.
    The kind (word / copy / cite) is the one the model gives the most total probability among the kinds the
    grammar allows here (copy probability is spread over many positions; a plain argmax would favour the one
    fixed refusal sentence over an answer the model is sure of in total), then the most probable member the
    grammar allows.

    With the selector (`select_pos`: (M,) log-probability of each position's sentence; `refuse`: its
    answer-or-refuse decision), the first slot is words only when `refuse`, copies only otherwise; after a
    citation the answer goes on only while an unused sentence has selector probability >= `more_threshold`
    (else EOS); and a quote opens on the sentence with the most decoder copy mass times selector probability.
    (Why the selector decides when to stop: the decoder is trained on randomly masked canvases, where a
    fully written prefix before a fully masked rest is rare, so its EOS probability right after a citation
    is badly calibrated under left-to-right filling; measured in docs/benchmarks.md.)"""
    n, K = logp.shape
    allowed = torch.zeros(n, K, dtype=torch.bool, device=logp.device)
    for r in range(n):
        row, i = rows[r], int(only[r])
        prev = int(row[i - 1]) if i > 0 else None
        if prev is None or prev >= V + M:
            ok = starts.bool().clone()
            used = row[(row >= V) & (row < V + M)] - V
            ok[used] = False
            allowed[r, V: V + M] = ok
            if prev is None:
                allowed[r, :V] = True if refuse is None else refuse  # the selector decides answer or refuse
                allowed[r, eos] = False
                if refuse:
                    allowed[r, V: V + M] = False
            else:
                allowed[r, eos] = True
                if select_pos is not None:  # another sentence only if the selector rates one highly enough
                    best = select_pos.masked_fill(~allowed[r, V: V + M], float("-inf")).max()
                    if float(best.exp()) >= more_threshold:
                        allowed[r, eos] = False
                    else:
                        allowed[r, V: V + M] = False
        elif prev >= V:
            p = prev - V
            if p + 1 < M and int(sentence[p + 1]) == int(sentence[p]) >= 0:
                allowed[r, V + p + 1] = True
            allowed[r, V + M + p // T] = True
        else:
            allowed[r, :V] = True
    bounds = ((0, V), (V, V + M), (V + M, K))
    kind_ok = torch.stack([allowed[:, lo:hi].any(-1) for lo, hi in bounds], -1)
    kinds = torch.stack([logp[:, lo:hi].logsumexp(-1) for lo, hi in bounds], -1).masked_fill(~kind_ok, float("-inf"))
    raw = logp
    logp = logp.masked_fill(~allowed, float("-inf"))
    out = torch.empty(n, dtype=torch.long, device=logp.device)
    for r, k in enumerate(kinds.argmax(-1).tolist()):
        lo, hi = bounds[k]
        out[r] = lo + int(logp[r, lo:hi].argmax())
        if k == 1 and allowed[r, V: V + M].sum() > 1:  # opening a quote: pick the sentence, then its start
            out[r] = V + _best_sentence_start(raw[r, V: V + M], allowed[r, V: V + M], sentence, select_pos)
    return out


def _best_sentence_start(copy_logp: torch.Tensor, ok_start: torch.Tensor, sentence: torch.Tensor,
                         select_pos: torch.Tensor | None = None) -> int:
    """The allowed sentence start whose sentence holds the most copy probability in total (times the
    selector's probability of that sentence, when given)."""
    sid = torch.where(sentence >= 0, sentence, 0)
    ids, inverse = torch.unique(sid, return_inverse=True)
    mass = torch.zeros(len(ids), dtype=copy_logp.dtype).scatter_add(0, inverse, copy_logp.exp() * (sentence >= 0))
    score = mass[inverse].clamp(min=1e-30).log()
    if select_pos is not None:
        score = score + select_pos
    per_pos = torch.where(ok_start, score, torch.full_like(copy_logp, float("-inf")))
    return int(per_pos.argmax())


def build_sculpt(**options) -> SculptGenerator:
    """Factory for the "sculpt" entry point (options: model_path, sampler, draft_length, max_steps, device,
    refuse_threshold, more_threshold)."""
    return SculptGenerator(**options)
