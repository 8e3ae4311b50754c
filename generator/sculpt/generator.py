"""SculptGenerator: the Generator protocol over a sculpt checkpoint (the bundled one by default) and its samplers.

Decoding order and choice: each step fills the leftmost masked slot (the canvas of later slots stays
masked, so the model still sees the answer's room and reads the passages both ways). A slot's value is
chosen in two levels, among what the answer grammar allows: first the kind with the most total
probability (write a word / copy a passage token / cite a passage), then the most probable member.

What to quote, and whether to answer at all, is decided once per request from each passage sentence's
relevance to the question (relevance.py: the pretrained embedder's similarity, lexical cover, the asked
answer type, a small share of the model's learned selector), the "relevance" selector:
- answer or refuse: one rule, answer when the best sentence's relevance reaches `answer_threshold` (chosen
  on corpora the model never trained on; docs/benchmarks.md; a sentence without the kind of value asked
  for, a number or a default, counts less there: relevance.decision_score; a question of several sentences
  reads half the learned selector's share there, `told_share`) and every name the question asks about is named
  by some passage (`names`, relevance.unnamed), else the refusal;
- which sentence a quote opens on: the most relevant unused one (for a question of several sentences, a user's
  situation and then what they ask, by relevance without the learned selector's share: the selector trained on
  questions of one sentence, and ranks such a question's sentences worse than the zero-shot parts alone do;
  `told_rank`); where in it: the sentence start, or a later clause start (after , ; : or a dash; never inside
  a table row) when all before it only restates the question ("In 2019, the company moved ..." for "Where did
  the company move in 2019?"), so the quote begins where the answer does; where it stops (cites): the
  decoder's choice;
- another quote after a citation: while an unused sentence is within `more_margin` of the best and reaches
  `quote_floor` (0.5; the answer threshold where that is lower), up to `max_quotes`, each cited to its own
  passage, and only on a sentence that says something the answer does not say yet (at least `novelty` of its
  content words new to the answer and the question); for a question that asks several things ("Does it retry?
  If not, how do I turn retries on?", relevance.sub_questions), the best sentence for each thing that the
  first quote does not answer comes next, where it reaches `quote_floor` both for that thing and for the whole
  question (`each_part`, relevance.each_part_quoted);
- a quote of a reference entry's sentence that does not name the entry (a setting's "Default: 259200 (3 days,
  in seconds)" under the section title "PASSWORD_RESET_TIMEOUT") opens with the entry's name, copied from the
  passage's title line, and a written colon: "PASSWORD_RESET_TIMEOUT: 259200 (3 days, in seconds) [1]"
  (`leads`, relevance.entry_leads);
- a quote of a lead-in ("You can do that by adding the following to your my.cnf:") is followed by the line below
  it ("[mysqld]"), cited to the same passage, and the two count as one quote (`follow`, relevance.list_leads).
The "learned" selector keeps the previous behaviour for comparison: the model's selector decides answer or
refuse (refuse when its "none of the sentences" probability reaches `refuse_threshold`), quotes open on
sentence starts, on the sentence with the most decoder copy probability times selector probability.

Fast sampler (exact span drafting): the passages are encoded once (exact: the encoder never sees the
answer). When the slot on the left copies passage token p, the next passage tokens p+1, p+2, ... are
drafted into the following slots, and one batched call scores every prefix: row r holds the first r drafts
and asks for slot r. The drafts the model itself would have chosen are accepted, plus the model's own
choice at the first disagreement. A slot whose value the grammar and the request's selection fix whatever
the decoder says (grammar.forced: opening the next quote on the chosen sentence, a word's next WordPiece, the
citation at a stop, the end after the last quote) is committed without a call, and needs no row among the
drafts. The answer is therefore identical to the naive sampler's, with many slots per model call along a
quoted span and no call spent on a slot the decoder cannot change. Naive sampler: one slot per step, and
the encoder rerun at every step, as a masked-diffusion sampler without caching would.

Parallel sampler (the default; Fast-dLLM's confidence-aware parallel decoding over the same drafts): the
drafts go into one canvas row, not a row each, and every asked slot of it is read from that one call. A draft
is accepted when it is the grammar's choice there and the model gives it at least `accept` probability
(with the drafts after it in place, which the fast sampler's rows do not have); the slot after the last draft
sees a masked right side, as in the fast sampler, so its choice is the fast sampler's. At the first draft it
doubts, the step commits the drafts before it and the next step is the fast sampler's, so a doubted slot is
decided exactly. A call then costs one row instead of up to draft_length + 1: on 233 evaluation questions
(rgb, business_docs, manuals) the answers were the fast sampler's bar one, with 7 canvas rows an answer
instead of 36, in 0.75 s instead of 0.93 s (median; benchmarks/sculpt_samplers.py, docs/benchmarks.md).

Answer grammar (grammar.py, `choose`): an answer is either words (the refusal) or quotes (a sentence or a
clause onward, up to where the decoder cites), each followed by the citation of the passage it comes from;
a sentence is quoted once. Sentences end at line breaks too, so a title or a table row never runs into
the next line.

Batches (`generate_batch`): each request runs as it would alone (`_Decoding`, one step at a time, its
passages encoded alone), and each step the canvas rows of every request still writing share decoder calls
(`SculptModel.forward_many`), so every answer, trace and streamed state is the lone request's.

Rendering (`render`): runs of copies that follow each other in a passage become that passage's exact
characters (from the first token's start offset to the last one's end), so quotes are verbatim; a citation
slot is "[n]" with n the passage's number in the request; generated words go through the tokenizer's
decoder (uncased), and a generated refusal is replaced by the canonical `REFUSAL` sentence.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.device import device_name
from pipeline.errors import ConfigError

from ..base import generator_plugin, last_of, sampling_config
from ..citations import finalize_citations
from pipeline.text import REFUSAL
from pipeline.types import MASK_GLYPH, DenoiseState, DiffusionConfig, GenerationRequest, GenerationResult, GenerationTrace
from .checkpoint import bundled_checkpoint, checkpoint_meta, load_tokenizer
from . import relevance
from .features import Batch, cell_gaps, clause_starts, featurize, joinable_starts, passage_windows, word_joins
from .grammar import Selection, choose, draft_span, forced, tokens_to_end
from .runtime import Memory, SculptNumpy, load_runtime, log_softmax
from .space import MASK, OutputSpace


# the relevance answer rule's threshold for a checkpoint whose meta.json names none ("answer_threshold" there:
# chosen with that checkpoint, on corpora it never trained on; docs/benchmarks.md)
ANSWER_THRESHOLD = 0.5
# what a further quote must reach (the threshold it was chosen with, before a checkpoint carried a higher one)
QUOTE_FLOOR = 0.5
MORE_MARGIN = 0.5
MAX_QUOTES = 2
# canvas rows per model call in generate_batch: the decoder is compute-bound on a CPU, and past a few dozen
# rows a call only grows its working set (measured: ~11 ms a row from 17 rows on, 17.5 ms for a lone row)
BATCH_ROWS = 48


class SculptSampling(BaseModel):
    """Sampling settings of a SculptGenerator (frozen, validated); they never change the loaded weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sampler: Literal["parallel", "fast", "naive"] = Field(
        "parallel", description="fast: a quoted span is drafted and verified in one model call, a canvas row per "
                            "draft; parallel: the same drafts in one row, each accepted when the model gives it "
                            "`accept` probability (Fast-dLLM's threshold; the slot after the drafts, and any "
                            "draft it doubts, is decided as the fast sampler does); naive: one slot per step, the "
                            "encoder rerun each step (the fast sampler's answer, more model calls)")
    draft_length: int = Field(16, ge=1, description="copies drafted ahead per model call (fast and parallel)")
    accept: float = Field(0.9, gt=0.0, le=1.0, description="parallel: a draft is accepted from the one-row call "
                                                           "when the model gives it at least this probability")
    max_steps: int | None = Field(None, ge=1, description="end the answer after this many steps (None: until EOS); "
                                                          "a request's DiffusionConfig.steps overrides it")
    selector: Literal["relevance", "learned"] = Field(
        "relevance", description="what picks sentences and decides answer-or-refuse: relevance (zero-shot "
                                 "similarity, lexical cover, answer type, a little of the learned selector; "
                                 "relevance.py) or learned (the model's own sentence selector alone)")
    answer_threshold: float | None = Field(
        None, description="relevance: answer when the best sentence's relevance reaches this, else refuse; None: "
                          "the checkpoint's own (its meta.json's answer_threshold, chosen with it: the learned "
                          "share in the relevance moves with the weights), else ANSWER_THRESHOLD")
    more_margin: float = Field(MORE_MARGIN, ge=0.0, description="relevance: after a citation, quote another "
                               "sentence only while one is within this of the best (and reaches quote_floor)")
    quote_floor: float = Field(QUOTE_FLOOR, description="relevance: a further quote, or the quote for another "
                               "thing the question asks, needs at least this relevance (or answer_threshold, where "
                               "that is lower): the floor those quotes were chosen with, kept where a checkpoint's "
                               "answer threshold is higher (the threshold decides whether to answer, not how much)")
    max_quotes: int = Field(MAX_QUOTES, ge=1, description="relevance: quotes in an answer at most")
    novelty: float = Field(relevance.NOVELTY, ge=0.0, le=1.0, description="relevance: a further quote only on a "
                           "sentence at least this share of whose content words are new to the answer (0: any)")
    clauses: bool = Field(True, description="a quote may open at a clause inside a sentence (after , ; : or a "
                                            "dash; never inside a table row) when all before it restates the "
                                            "question, and a table row's quote ends at the column the question "
                                            "names")
    columns: bool = Field(True, description="relevance: when the best sentence is a table row that names the column "
                          "the question asks for, no further quote is a row that names it less well (another piece "
                          "of a long row under the same label; relevance.off_column_rows)")
    follow: bool = Field(True, description="relevance: a quote of a lead-in (a line ending with a colon) is followed "
                         "by the line below it, and the two count as one quote (relevance.list_leads)")
    names: bool = Field(True, description="relevance: refuse when the question names something (a capitalised "
                        "word: a company, a product, a grade; or the year it asks about) that no passage names, in "
                        "its text, title, section, file name or document (relevance.unnamed)")
    connectors: bool = Field(True, description="relevance: a quote that stops inside its sentence is joined to "
                                               "the next by a written word (\"and\", or \"while\" when the "
                                               "question compares), where the next quote reads on after it")
    each_part: bool = Field(True, description="relevance: for a question that asks several things (\"Does it "
                            "retry? If not, how do I turn retries on?\"), the best sentence for each that reaches "
                            "quote_floor is quoted next after the best overall (relevance.sub_questions, "
                            "each_part_quoted)")
    told_rank: bool = Field(True, description="relevance: for a question of several sentences (a user's situation, "
                            "then what they ask), sentences are ranked without the learned selector's share: it "
                            "trained on questions of one sentence; answer-or-refuse still reads it, at told_share")
    told_share: float = Field(0.5, ge=0.0, le=1.0, description="relevance: the share of the learned selector's "
                              "part that the answer-or-refuse decision reads for a question of several sentences "
                              "(1: the whole, as for a question of one sentence; 0: none): the selector trained on "
                              "questions of one sentence and separates a told question's answerable and "
                              "unanswerable requests less well (docs/benchmarks.md, \"Fiftieth round\")")
    leads: bool = Field(True, description="relevance: a quote of a reference entry's sentence that does not name "
                                          "the entry opens with the entry's name, the section title it is under "
                                          "(\"PASSWORD_RESET_TIMEOUT: 259200 (3 days, in seconds) [1]\"; "
                                          "relevance.entry_leads)")
    refuse_threshold: float = Field(0.7, gt=0.0, le=1.0, description="learned: refuse when the selector's 'none "
                                                                     "of the sentences' probability reaches this")
    more_threshold: float = Field(0.5, ge=0.0, le=1.0, description="learned: after a citation, quote another "
                                  "sentence only while one has selector probability >= this")


def _config_error(e: ValidationError) -> ConfigError:
    problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
                         for err in e.errors())
    return ConfigError(f"bad sculpt sampling option: {problems}; the options are "
                       f"{', '.join(SculptSampling.model_fields)}")


class SculptGenerator:
    """Generator protocol over a sculpt checkpoint (the bundled one by default).

    `config` (or its fields as keyword options, laid over it) sets the sampling; `model_path`, `device` and
    `runtime` choose the weights, where they run and with what: "numpy" (runtime.py; CPU only, and no torch
    import: the CPU default) or "torch" (model.py; a GPU's, and the trainer's); "auto" is numpy on the CPU,
    torch on CUDA. The two give the same answers (tests/generator/test_sculpt_runtime.py)."""

    def __init__(self, model_path: str | Path | None = None, config: SculptSampling | None = None,
                 device: str = "cpu", name: str = "sculpt", runtime: str = "auto", **options) -> None:
        config = config or SculptSampling()
        try:
            self.config = SculptSampling(**{**config.model_dump(), **options}) if options else config
        except ValidationError as e:
            raise _config_error(e) from e
        self.model_path = Path(model_path) if model_path else None
        self.device = device_name(device)  # (no torch import where the answer is the CPU)
        if runtime not in ("auto", "numpy", "torch"):
            raise ConfigError(f"runtime must be 'auto', 'numpy' or 'torch', got {runtime!r}")
        if runtime == "numpy" and self.device != "cpu":
            raise ConfigError(f"the numpy runtime runs on the CPU only, not on {self.device}; use runtime='torch'")
        self.runtime = runtime if runtime != "auto" else ("numpy" if self.device == "cpu" else "torch")
        self.name = name
        self._model: SculptNumpy | _TorchRuntime | None = None
        self._tokenizer = None
        self._threshold = ANSWER_THRESHOLD  # the checkpoint's own answer threshold, read when it loads

    def warm_up(self) -> None:
        if self._model is None:
            folder = self.model_path or bundled_checkpoint()
            self._threshold = float(checkpoint_meta(folder).get("answer_threshold", ANSWER_THRESHOLD))
            if self.runtime == "numpy":
                model = load_runtime(folder)
                self._model, self._tokenizer = model, load_tokenizer(model.cfg.base_model)
            else:
                from .checkpoint import load_checkpoint

                model, tok = load_checkpoint(folder)
                self._model, self._tokenizer = _TorchRuntime(model.to(self.device), self.device), tok

    @property
    def answer_threshold(self) -> float:
        """The relevance rule's threshold: the sampling setting's, else the loaded checkpoint's own."""
        chosen = self.config.answer_threshold
        return self._threshold if chosen is None else chosen

    def with_options(self, **options) -> "SculptGenerator":
        """A generator with other sampling settings (`config=SculptSampling(...)` or its fields as keywords;
        `name=` renames it) sharing this one's loaded model. model_path, device and runtime cannot change this way."""
        name = options.pop("name", self.name)
        try:
            config = sampling_config(self.config, options, {"model_path", "device", "runtime"})
        except ValidationError as e:
            raise _config_error(e) from e
        other = SculptGenerator(self.model_path, config=config, device=self.device, name=name, runtime=self.runtime)
        other._model, other._tokenizer, other._threshold = self._model, self._tokenizer, self._threshold
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

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_state: Callable[[int, DenoiseState], None] | None = None) -> list[GenerationResult]:
        """Results for `requests`, decoded together: each step scores the rows of the requests still writing
        in shared model calls (SculptModel.forward_many, up to BATCH_ROWS canvas rows a call); each request's
        passages are encoded alone, as `generate` encodes them, and a finished request simply drops out. Each
        result is the one `generate` gives; `on_state(i, state)` gets request i's states as `stream` yields them."""
        self.warm_up()
        runs = [_Decoding(self, r) for r in requests]
        while live := [(i, run) for i, run in enumerate(runs) if not run.done]:
            steps = [(i, run, *run.rows()) for i, run in live]
            for call in _pack(steps, BATCH_ROWS):
                logps = self._model.forward_many([rows for _, _, rows, _ in call],
                                                 [run.memory.expand(rows.shape[0]) for _, run, rows, _ in call],
                                                 [only for _, _, _, only in call])
                for (i, run, _, _), logp in zip(call, logps):
                    state = run.advance(logp)
                    if on_state is not None:
                        on_state(i, state)
        return [run.result() for run in runs]

    def _decode(self, request: GenerationRequest, keep: Sequence[tuple[int, str]] = (),
                ban: Sequence[tuple[int, str]] = ()) -> Iterator[DenoiseState | GenerationResult]:
        """The sampler over one request (see _Decoding for `keep` and `ban`): a DenoiseState per model call, the
        last one with done=True (as the LLaDA and Dream generators stream), then the GenerationResult."""
        self.warm_up()
        run = _Decoding(self, request, keep, ban)
        while not run.done:
            rows, only = run.rows()
            yield run.advance(self._model.forward_many([rows], [run.memory.expand(rows.shape[0])], [only])[0])
        yield run.result()

    def _selector(self, memory: Memory, batch: Batch, space: OutputSpace, numbers: dict[int, list[int]], question: str,
                  ban: Sequence[tuple[int, str]], titles: frozenset[str] = frozenset(),
                  sections: Sequence[str] | None = None, unnamed: Sequence[str] = ()) -> Selection:
        """What decides the request's sentences (see Selection). A banned quote's whole sentence is closed, and
        with no credible sentence left the answer is the refusal. `titles`: the passages' section titles (as
        `relevance.title_key` gives them); `sections`: each featurized passage's section title, in order;
        `unnamed`: the names the question asks about that no passage names (`relevance.unnamed`)."""
        cfg = self.config
        starts = batch.starts[0].astype(bool)
        if cfg.clauses and cfg.selector == "relevance":  # a clause start is chosen by its relevance
            starts = starts | clause_starts(batch)
        select, start_score = memory.select[0], None
        off = memory.sent_index[0] == select.size - 1  # positions outside any sentence
        if cfg.selector == "learned":
            logp = log_softmax(select)
            refuse = bool(np.exp(logp[-1]) >= cfg.refuse_threshold)
            score = np.where(off, -np.inf, logp[memory.sent_index[0]])
            cut, decoder_weight, max_quotes = math.log(max(cfg.more_threshold, 1e-30)), 1.0, None
        else:
            learned = relevance.LEARNED_WEIGHT * np.where(off, 0.0, select[memory.sent_index[0]])
            seen: dict[str, np.ndarray] = {}  # the request's sentence vectors, for each thing its question asks
            # a question that tells a situation first: decided on told_share of the learned share, ranked without it
            told = len(relevance.question_sentences(question)) > 1
            shares = (cfg.told_share * learned, None if cfg.told_rank else learned) if told else (learned,)
            score, *bare = relevance.sentence_relevances(self._model.embed_hidden, self._tokenizer, batch, question,
                                                         titles, shares, sections, seen)
            threshold = self.answer_threshold
            refuse = (relevance.decision_score(batch, question, score) < threshold  # (no sentence gives what is
                      or bool(unnamed))  # asked, or the passages are about something else)
            score = bare[0] if bare else score
            if cfg.columns:  # no further quote of a table row that names the asked column less well
                score = relevance.off_column_rows(batch, question, score)
            top = float(score.max())
            floor = min(threshold, cfg.quote_floor)  # what a further quote must reach, whatever the decision's
            cut, decoder_weight, max_quotes = max(floor, top - cfg.more_margin), 0.0, cfg.max_quotes
            asks = relevance.sub_questions(question) if cfg.each_part and not refuse else []
            if asks:  # a question that asks several things: the next quote answers the next thing asked
                answers = [relevance.sentence_relevance(self._model.embed_hidden, self._tokenizer, batch, ask, titles,
                                                        None, sections, seen) for ask in asks]  # (the learned
                score = relevance.each_part_quoted(score, batch.sentence[0], answers,  # selector read the whole
                                                   floor)  # question: it has no share here)
            if cfg.clauses:  # a clause start that would drop what the question does not already say is none:
                start_score = relevance.clause_choice(batch, question, starts)  # not even where its sentence
                starts = starts & np.isfinite(start_score)  # does not fit whole after an earlier quote
        if ban:
            copied = [space.position_of(x) for n, q in ban for x in _quote_slots(batch, space, numbers, n, q)[:-1]]
            banned = np.isin(batch.sentence[0], batch.sentence[0, copied])  # their whole sentences
            starts = starts & ~banned
            score = np.where(banned, -np.inf, score)
            refuse = refuse or float(np.where(starts, score, -np.inf).max()) < cut
        connector = joinable = stops = gaps = None
        if cfg.connectors and cfg.selector == "relevance":
            connector = self._tokenizer.convert_tokens_to_ids(connector_word(question))
            joinable = joinable_starts(batch)
        if cfg.clauses and cfg.selector == "relevance":  # a table row's quote ends at the value asked for,
            stops, gaps = relevance.cell_stops(batch, question), cell_gaps(batch)  # or at a cell that fits
        lead = colon = None
        if cfg.leads and cfg.selector == "relevance" and sections is not None:  # an entry's sentence under its name
            lead, colon = relevance.entry_leads(batch, sections), self._tokenizer.convert_tokens_to_ids(":")
        terms = sentence_terms = None
        if cfg.selector == "relevance" and cfg.novelty > 0:  # a further quote must say something new
            terms, sentence_terms = relevance.position_terms(batch, question)
        follow = relevance.list_leads(batch, code_ends=relevance.answer_type(question) != "code") \
            if cfg.follow and cfg.selector == "relevance" else None
        return Selection(refuse, score, starts, cut, max_quotes, decoder_weight, start_score, word_joins(batch),
                         connector, joinable, stops, gaps, terms, sentence_terms, cfg.novelty, lead, colon, follow)

    def _finish(self, request, slots, batch, start, per_step, nfe, prompt_tokens, passages=()) -> GenerationResult:
        if batch is None:
            raw = REFUSAL
            answer_tokens = 0
        else:
            space = OutputSpace.of(self._model.vocab_size, batch.shape)
            raw = render(np.array(slots), batch, passages, space, self._tokenizer)
            eos = self._tokenizer.sep_token_id
            answer_tokens = next((i for i, s in enumerate(slots) if s == eos), len(slots))
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        trace = GenerationTrace(generator=self.name, steps=len(per_step), nfe=nfe, tokens_per_step=per_step,
                                prompt_tokens=prompt_tokens, answer_tokens=answer_tokens, wall_time_s=wall,
                                tokens_per_s=answer_tokens / wall if wall > 0 else 0.0)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)



class _TorchRuntime:
    """A torch SculptModel behind the numpy runtime's interface (what _Decoding and the selector call): numpy
    canvases in, numpy log-probabilities out; the memory's tensors stay on the model's device, bar the two the
    selector reads on the CPU (its logits and columns)."""

    def __init__(self, model, device: str) -> None:
        self.model, self.device = model, device
        self.cfg, self.vocab_size = model.cfg, model.vocab_size

    def space(self, memory: Memory) -> OutputSpace:
        return self.model.space(memory)

    def encode(self, batch: Batch) -> Memory:
        import dataclasses

        import torch

        with torch.inference_mode():
            memory = self.model.encode(batch.to(self.device))
        return dataclasses.replace(memory, select=memory.select.float().cpu().numpy(),
                                   sent_index=memory.sent_index.cpu().numpy())

    def forward_many(self, canvases, memories, only=None) -> list[np.ndarray]:
        import torch

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

        with torch.inference_mode():
            out = self.model.forward_many([t(c) for c in canvases], memories,
                                          None if only is None else [t(o) for o in only])
        return [o.float().cpu().numpy() for o in out]

    def embed_hidden(self, ids: np.ndarray, lengths) -> np.ndarray:
        import torch

        mask = torch.arange(ids.shape[1])[None] < torch.tensor(list(lengths))[:, None]
        with torch.inference_mode():
            hidden = self.model.pristine(input_ids=torch.from_numpy(ids).to(self.device),
                                         attention_mask=mask.long().to(self.device)).last_hidden_state
        return hidden.float().cpu().numpy()


class _Decoding:
    """One request's run of the sampler, a step at a time: `rows()` gives the canvas rows the step scores,
    `advance(logp)` commits the model's verdict on them. `_decode` drives one run; `generate_batch` drives
    several and scores all their rows in one model call per step, each run unchanged by the others.

    `keep`: (passage number, quote) pairs committed first, each followed by its citation; `ban`: (passage
    number, quote) pairs whose sentences may not be quoted (repair)."""

    def __init__(self, gen: SculptGenerator, request: GenerationRequest, keep: Sequence[tuple[int, str]] = (),
                 ban: Sequence[tuple[int, str]] = ()) -> None:
        self.gen, self.request, self.start = gen, request, time.perf_counter()
        model, tok = gen._model, gen._tokenizer
        cfg = request.config
        self.max_steps = cfg.steps if isinstance(cfg, DiffusionConfig) else gen.config.max_steps
        self.passages = passage_windows(tok, request.passages, model.cfg.max_passage_tokens, model.cfg.max_passages)
        self.per_step: list[int] = []
        self.nfe = self.step = 0
        self._exact = False  # parallel sampler: the next step is the fast sampler's (a draft was doubted)
        self.batch: Batch | None = None
        self.done = not self.passages  # no passages: the refusal, without a model call
        if self.done:
            return
        self.batch = featurize(tok, model.cfg, [request.question], [[p.text for p in self.passages]])
        self.space = OutputSpace.of(model.vocab_size, self.batch.shape)
        self.eos = tok.sep_token_id
        L = model.cfg.slots
        self.canvas = np.full(L, MASK, dtype=np.int64)
        self.memory = model.encode(self.batch)
        self.nfe += 1
        numbers: dict[int, list[int]] = {}  # a passage's number -> its windows' places
        for i, p in enumerate(self.passages):
            numbers.setdefault(p.number, []).append(i)
        titles = frozenset(relevance.title_key(p.section) for p in self.passages if p.section.strip())
        unnamed = relevance.unnamed(request.question, [f"{p.text}\n{p.title}\n{p.section}\n{p.context}"
                                                       for p in self.passages]) if gen.config.names else ()
        self.selection = gen._selector(self.memory, self.batch, self.space, numbers, request.question, ban, titles,
                                       [relevance.entry_section(p.section, p.context) for p in self.passages],
                                       unnamed)
        filled = [x for n, q in keep for x in _quote_slots(self.batch, self.space, numbers, n, q)][: L - 1]
        if filled:
            self.canvas[: len(filled)] = filled
        self._left = tokens_to_end(self.batch.sentence[0])
        self._pending = self._commit_forced()  # counted with the first step's tokens
        self.done = not bool((self.canvas == MASK).any())
        if self.done:  # all committed without a model call (a repair that keeps every slot)
            self.per_step.append(self._pending)

    def _commit_forced(self) -> int:
        """Fast sampler: commit the slots from the leftmost masked one on whose value the grammar and the
        selection fix whatever the decoder says (grammar.forced: opening a quote on the chosen sentence, a
        citation at a sentence's end, the end after the last quote), without a model call; how many. The
        answer is the one the step-by-step choice gives. The naive sampler scores every slot."""
        if self.gen.config.sampler == "naive":
            return 0
        sentence, n = self.batch.sentence[0], 0
        while bool((self.canvas == MASK).any()):
            slot = int(np.flatnonzero(self.canvas == MASK)[0])
            value = forced(self.canvas, slot, self.space, self.eos, sentence, self.selection, self._left)
            if value is None:
                break
            self.canvas[slot] = value
            n += 1
            if value == self.eos:
                self.canvas[slot:] = self.eos
        return n

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The next step's canvas rows (n, L) and the slot each asks for (n,): row r holds the first r drafts of
        the span being quoted (fast sampler) and asks for the slot after them."""
        self.step += 1
        if self.gen.config.sampler == "naive" and self.step > 1:  # no cache: the passages are encoded again
            self.memory = self.gen._model.encode(self.batch)
            self.nfe += 1
        slot = int(np.flatnonzero(self.canvas == MASK)[0])
        drafts = [] if self.gen.config.sampler == "naive" else draft_span(self.canvas, slot, self.batch.sentence[0],
                                                                          self.space, self.gen.config.draft_length)
        rows = np.tile(self.canvas, (len(drafts) + 1, 1))
        for r in range(1, len(drafts) + 1):  # row r: drafts 0..r-1 in place, slot + r still masked
            rows[r, slot: slot + r] = drafts[:r]
        # a row whose slot the grammar fixes (a word's next piece, the citation at a stop) needs no model call;
        # where that value is not the draft, the drafts after it are moot
        need, known = [0], {}
        for r in range(1, len(drafts) + 1):
            value = forced(rows[r], slot + r, self.space, self.eos, self.batch.sentence[0], self.selection,
                           self._left)
            if value is None:
                need.append(r)
                continue
            known[r] = value
            if r < len(drafts) and value != drafts[r]:
                drafts, rows = drafts[:r], rows[: r + 1]
                break
        self._slot, self._drafts, self._known = slot, drafts, known
        self._rows = self._grammar_rows = rows[need]
        self._only = slot + np.array(need, dtype=np.int64)
        self._need = need
        self._one_row = self.gen.config.sampler == "parallel" and bool(drafts) and not self._exact
        self._exact = False
        if self._one_row:  # every draft in place, one row: the slots asked are read from it together
            self._rows, self._only = rows[len(drafts)][None], self._only[None]
        return self._rows, self._only

    def advance(self, logp: np.ndarray) -> DenoiseState:
        """Commit the step from `logp`, the log-probabilities of the asked slots ((n, space.size) or the model's
        (n, S, space.size)): the drafts the model itself chooses, and its own choice at the first disagreement
        (parallel sampler, one row: the drafts it gives `accept` probability, up to the first it doubts; its
        choice after them, where every slot to the right is masked as in the fast sampler's rows, or else none
        and the next step is the fast sampler's). Returns the canvas after the step (done=True once the answer
        is finished: `done`)."""
        self.nfe += 1
        slot, drafts, canvas = self._slot, self._drafts, self.canvas
        logp = logp[0] if self._one_row else (logp[:, 0] if logp.ndim == 3 else logp)  # (len(need), space)
        chosen = choose(logp, self._grammar_rows, self._only.flatten(), self.space, self.eos, self.batch.sentence[0],
                        self.selection, self._left).tolist()
        choice = [self._known.get(r) for r in range(len(drafts) + 1)]  # the fixed slots, and the decoder's:
        sure = [True] * (len(drafts) + 1)
        for j, (r, value) in enumerate(zip(self._need, chosen)):
            choice[r] = value
            if self._one_row and r < len(drafts):  # a draft read with the drafts after it in place
                sure[r] = float(np.exp(logp[j, drafts[r]])) >= self.gen.config.accept
        accepted = 0
        while accepted < len(drafts) and int(choice[accepted]) == drafts[accepted] and sure[accepted]:
            accepted += 1
        canvas[slot: slot + accepted] = drafts[:accepted]
        decided = accepted == len(drafts) or not self._one_row  # else: the fast sampler decides that slot next
        if decided:
            canvas[slot + accepted] = choice[accepted]
            if int(choice[accepted]) == self.eos:
                canvas[slot + accepted:] = self.eos
        else:
            self._exact = True
        ended = decided and int(choice[accepted]) == self.eos
        pending, self._pending = self._pending, 0  # slots committed before this step's call, and after it
        after = self._commit_forced() if not ended else 0
        self.per_step.append(pending + accepted + decided + after)
        left = int((canvas == MASK).sum())
        if left and self.max_steps is not None and self.step >= self.max_steps:  # out of steps: end the answer here
            canvas[canvas == MASK] = self.eos
            left = 0
        self.done = not left
        text = render(canvas, self.batch, self.passages, self.space, self.gen._tokenizer, show_masks=True)
        changed = list(range(slot - pending, slot + accepted + decided + after))
        return DenoiseState(step=self.step, text=text, masked=left, changed=changed, done=self.done)

    def result(self) -> GenerationResult:
        if self.batch is None:
            return self.gen._finish(self.request, [], None, self.start, [], 0, 0)
        return self.gen._finish(self.request, self.canvas.tolist(), self.batch, self.start, self.per_step, self.nfe,
                                int(self.batch.attention.sum()), self.passages)

def _pack(steps: list, limit: int) -> list[list]:
    """Consecutive groups of (index, run, rows, only) steps with at most `limit` rows in all (or one step)."""
    calls: list[list] = [[]]
    for step in steps:
        if calls[-1] and sum(s[2].shape[0] for s in calls[-1]) + step[2].shape[0] > limit:
            calls.append([])
        calls[-1].append(step)
    return calls


COMPARISON_RE = re.compile(r"\b(compare[sd]?|comparison|differ(s|ence|ences)?|versus|vs|whereas|while|"
                           r"contrast|than|both)\b", re.I)
CONNECTORS = ("and", "while")


def connector_word(question: str) -> str:
    """The word that joins two quotes of an answer: "while" when the question compares, else "and"."""
    return "while" if COMPARISON_RE.search(question) else "and"


def _quote_slots(batch: Batch, space: OutputSpace, numbers: dict[int, list[int]], number: int, quote: str) -> list[int]:
    """The canvas slots of a verbatim quote from passage `number` (from whichever of its windows holds it):
    its copies, then its citation."""
    if number not in numbers:
        raise ConfigError(f"[{number}] names no passage of the request")
    p = next((p for p in numbers[number] if quote in batch.texts[0][p]), None)
    if p is None:
        raise ConfigError(f"{quote[:60]!r} is not a quote from passage [{number}]")
    a = batch.texts[0][p].find(quote)
    b = a + len(quote)
    pos = [t for t, (s, e) in enumerate(batch.offsets[0][p]) if s >= a and e <= b and e > s]
    return [space.copy(space.position(p, t)) for t in pos] + [space.cite(p)]


def render(slots: np.ndarray, batch: Batch, passages, space: OutputSpace, tokenizer, show_masks: bool = False) -> str:
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
            said = tokenizer.decode(words)
            if said == ":" and parts:  # after an entry's name (grammar: Selection.lead)
                parts[-1] += said
            else:
                parts.append(said)
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
    out = []
    for m in re.finditer(r"\s*(.*?)\s*\[(\d+)\]", answer, re.S):
        quote, start = m.group(1), m.start(1)
        joined = re.match(rf"(?:{'|'.join(CONNECTORS)})\s+", quote) if out else None  # a written connector
        if joined:
            quote, start = quote[joined.end():], start + joined.end()
        if quote:
            out.append((quote, int(m.group(2)), start, m.end()))
    return out


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


class SculptOptions(SculptSampling):
    """The options of "sculpt": SculptSampling's fields and which checkpoint to load where."""

    model_path: str | None = Field(None, description="a sculpt checkpoint folder (default: the bundled one)",
                                   json_schema_extra={"load": True})
    device: Literal["auto", "cpu", "cuda"] = Field("cpu", description="where the model runs (auto: CUDA when "
                                                   "there is one)", json_schema_extra={"load": True})
    runtime: Literal["auto", "numpy", "torch"] = Field(
        "auto", description="what runs the model: numpy (CPU only; no torch import, the fastest cold start) or "
                            "torch (a GPU's); auto: numpy on the CPU, torch on CUDA. Same answers",
        json_schema_extra={"load": True})


@generator_plugin(options=SculptOptions, diffusion=True)
def build_sculpt(**options) -> SculptGenerator:
    """Factory for the "sculpt" entry point (options: model_path, device, runtime, name, config, and the
    SculptSampling fields sampler, draft_length, max_steps, refuse_threshold, more_threshold)."""
    return SculptGenerator(**options)
