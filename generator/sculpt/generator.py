"""SculptGenerator: the Generator protocol over a sculpt checkpoint (the bundled one by default) and its samplers.

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

Answer grammar (grammar.py, `choose`): an answer is either words (the refusal) or quoted sentence prefixes,
each followed by the citation of the passage it comes from; a position is never copied twice.

Rendering (`render`): runs of copies that follow each other in a passage become that passage's exact
characters (from the first token's start offset to the last one's end), so quotes are verbatim; a citation
slot is "[n]" with n the passage's number in the request; generated words go through the tokenizer's
decoder (uncased), and a generated refusal is replaced by the canonical `REFUSAL` sentence.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

from ..base import last_of, sampling_config
from ..citations import finalize_citations
from ..prompt import REFUSAL
from ..types import MASK_GLYPH, DenoiseState, DiffusionConfig, GenerationRequest, GenerationResult, GenerationTrace
from .checkpoint import bundled_checkpoint, load_checkpoint
from .features import Batch, featurize
from .grammar import choose, draft_span
from .model import Memory, SculptModel
from .space import MASK, OutputSpace


class SculptSampling(BaseModel):
    """Sampling settings of a SculptGenerator (frozen, validated); they never change the loaded weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sampler: Literal["fast", "naive"] = Field(
        "fast", description="fast: a quoted span is drafted and verified in one model call; naive: one slot per "
                            "step, the encoder rerun each step (same answer, more model calls)")
    draft_length: int = Field(16, ge=1, description="copies drafted ahead per model call (fast sampler)")
    max_steps: int | None = Field(None, ge=1, description="end the answer after this many steps (None: until EOS); "
                                                          "a request's DiffusionConfig.steps overrides it")
    refuse_threshold: float = Field(0.7, gt=0.0, le=1.0, description="refuse when the selector's 'none of the "
                                                                     "sentences' probability reaches this")
    more_threshold: float = Field(0.5, ge=0.0, le=1.0, description="after a citation, quote another sentence only "
                                                                   "while one has selector probability >= this")


def _config_error(e: ValidationError) -> ConfigError:
    problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
                         for err in e.errors())
    return ConfigError(f"bad sculpt sampling option: {problems}; the options are "
                       f"{', '.join(SculptSampling.model_fields)}")


class SculptGenerator:
    """Generator protocol over a sculpt checkpoint (the bundled one by default).

    `config` (or its fields as keyword options, laid over it) sets the sampling; `model_path` and `device`
    choose the weights and where they run."""

    def __init__(self, model_path: str | Path | None = None, config: SculptSampling | None = None,
                 device: str = "cpu", name: str = "sculpt", **options) -> None:
        config = config or SculptSampling()
        try:
            self.config = SculptSampling(**{**config.model_dump(), **options}) if options else config
        except ValidationError as e:
            raise _config_error(e) from e
        self.model_path = Path(model_path) if model_path else None
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
        """A generator with other sampling settings (`config=SculptSampling(...)` or its fields as keywords;
        `name=` renames it) sharing this one's loaded model. model_path and device cannot change this way."""
        name = options.pop("name", self.name)
        try:
            config = sampling_config(self.config, options, {"model_path", "device"})
        except ValidationError as e:
            raise _config_error(e) from e
        other = SculptGenerator(self.model_path, config=config, device=str(self.device), name=name)
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
        model, tok, cfg = self._model, self._tokenizer, self.config
        max_steps = request.config.steps if isinstance(request.config, DiffusionConfig) else cfg.max_steps
        passages = list(request.passages)[: model.cfg.max_passages]
        if not passages:
            yield self._finish(request, [], None, start, [], 0, 0)
            return
        batch = featurize(tok, model.cfg, [request.question], [[p.text for p in passages]]).to(self.device)
        space = OutputSpace.of(model.vocab_size, batch.shape)
        eos = tok.sep_token_id
        L = model.cfg.slots
        canvas = torch.full((L,), MASK, dtype=torch.long, device=self.device)
        per_step: list[int] = []
        nfe = 0
        with torch.inference_mode():
            memory = model.encode(batch)
            nfe += 1
            numbers = {p.number: i for i, p in enumerate(passages)}
            refuse, select_pos, starts = self._selector(memory, batch, space, numbers, ban)
            filled = [x for n, q in keep for x in _quote_slots(batch, space, numbers, n, q)][: L - 1]
            if filled:
                canvas[: len(filled)] = torch.tensor(filled, dtype=torch.long, device=self.device)
            step = 0
            while (canvas == MASK).any():
                step += 1
                if cfg.sampler == "naive" and step > 1:  # no cache: the passages are encoded again
                    memory = model.encode(batch)
                    nfe += 1
                slot = int((canvas == MASK).nonzero()[0])
                drafts = [] if cfg.sampler == "naive" else draft_span(canvas, slot, batch.sentence[0], space,
                                                                      cfg.draft_length)
                rows = canvas.repeat(len(drafts) + 1, 1)
                for r in range(1, len(drafts) + 1):  # row r: drafts 0..r-1 in place, slot + r still masked
                    rows[r, slot: slot + r] = torch.tensor(drafts[:r], device=self.device)
                only = slot + torch.arange(len(drafts) + 1, device=self.device)
                logp = model(rows, memory.expand(rows.shape[0]), only=only)[:, 0]
                nfe += 1
                choice = choose(logp, rows, only, space, eos, batch.sentence[0], starts, select_pos, refuse,
                                cfg.more_threshold)
                accepted = 0
                while accepted < len(drafts) and int(choice[accepted]) == drafts[accepted]:
                    accepted += 1
                changed = list(range(slot, slot + accepted + 1))
                canvas[slot: slot + accepted] = torch.tensor(drafts[:accepted], dtype=torch.long, device=self.device)
                canvas[slot + accepted] = choice[accepted]
                if int(choice[accepted]) == eos:
                    canvas[slot + accepted:] = eos
                per_step.append(len(changed))
                left = int((canvas == MASK).sum())
                if left and (max_steps is None or step < max_steps):
                    text = render(canvas, batch, passages, space, tok, show_masks=True)
                    yield DenoiseState(step=step, text=text, masked=left, changed=changed, done=False)
                elif left:  # out of steps: end the answer here
                    canvas[canvas == MASK] = eos
                    break
        prompt_tokens = int(batch.attention.sum())
        yield self._finish(request, canvas.tolist(), batch, start, per_step, nfe, prompt_tokens, passages)

    def _selector(self, memory: Memory, batch: Batch, space: OutputSpace, numbers: dict[int, int],
                  ban: Sequence[tuple[int, str]]) -> tuple[bool, torch.Tensor, torch.Tensor]:
        """What the sentence selector decides for the request: (refuse, select_pos (M,) log-probability of each
        position's sentence, starts (M,) the sentence starts a quote may open on). A banned quote's whole
        sentence is closed, and with no credible sentence left the answer is the refusal."""
        select = memory.select[0].log_softmax(-1)
        refuse = bool(select[-1].exp() >= self.config.refuse_threshold)
        select_pos = select[memory.sent_index[0]]  # each position's sentence; "none" off sentences
        select_pos = select_pos.masked_fill(memory.sent_index[0] == select.numel() - 1, float("-inf"))
        starts = batch.starts[0]
        if ban:
            copied = [space.position_of(x) for n, q in ban for x in _quote_slots(batch, space, numbers, n, q)[:-1]]
            banned = torch.isin(batch.sentence[0], batch.sentence[0, copied])  # their whole sentences
            starts = starts.masked_fill(banned, 0)
            select_pos = select_pos.masked_fill(banned, float("-inf"))
            best = select_pos.masked_fill(~starts.bool(), float("-inf")).max()
            refuse = refuse or float(best.exp()) < self.config.more_threshold
        return refuse, select_pos, starts

    def _finish(self, request, slots, batch, start, per_step, nfe, prompt_tokens, passages=()) -> GenerationResult:
        if batch is None:
            raw = REFUSAL
            answer_tokens = 0
        else:
            space = OutputSpace.of(self._model.vocab_size, batch.shape)
            raw = render(torch.tensor(slots), batch, passages, space, self._tokenizer)
            eos = self._tokenizer.sep_token_id
            answer_tokens = next((i for i, s in enumerate(slots) if s == eos), len(slots))
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        trace = GenerationTrace(generator=self.name, steps=len(per_step), nfe=nfe, tokens_per_step=per_step,
                                prompt_tokens=prompt_tokens, answer_tokens=answer_tokens, wall_time_s=wall,
                                tokens_per_s=answer_tokens / wall if wall > 0 else 0.0)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)


def _quote_slots(batch: Batch, space: OutputSpace, numbers: dict[int, int], number: int, quote: str) -> list[int]:
    """The canvas slots of a verbatim quote from passage `number`: its copies, then its citation."""
    if number not in numbers:
        raise ConfigError(f"[{number}] names no passage of the request")
    p = numbers[number]
    text = batch.texts[0][p]
    a = text.find(quote)
    if a < 0:
        raise ConfigError(f"{quote[:60]!r} is not a quote from passage [{number}]")
    b = a + len(quote)
    pos = [t for t, (s, e) in enumerate(batch.offsets[0][p]) if s >= a and e <= b and e > s]
    return [space.copy(space.position(p, t)) for t in pos] + [space.cite(p)]


def render(slots: torch.Tensor, batch: Batch, passages, space: OutputSpace, tokenizer, show_masks: bool = False) -> str:
    """Slots -> text: verbatim passage characters for copy runs, [n] for cites, decoded words, masks."""
    eos = tokenizer.sep_token_id
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
            parts.append(tokenizer.decode(words))
            words = []

    for s in slots.tolist():
        if s == eos:
            break
        if s == MASK:
            flush()
            if show_masks:
                parts.append(MASK_GLYPH)
            continue
        if space.is_copy(s):
            p, t = space.locate(space.position_of(s))
            if run is not None and run[0] == p and run[2] + 1 == t:
                run = (p, run[1], t)
            else:
                flush()
                run = (p, t, t)
            continue
        if space.is_cite(s):
            flush()
            parts.append(f"[{passages[space.passage_of(s)].number}]")
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


def build_sculpt(**options) -> SculptGenerator:
    """Factory for the "sculpt" entry point (options: model_path, device, name, config, and the SculptSampling
    fields sampler, draft_length, max_steps, refuse_threshold, more_threshold)."""
    return SculptGenerator(**options)
