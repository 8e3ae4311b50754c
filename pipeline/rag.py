"""RagPipeline: question -> retrieval (access-controlled) -> numbered passages -> generator -> Answer.

One object per process, built at the edge from one Settings; `ask` and `stream` are safe to call from
many threads (each generator is loaded once, under a lock, and runs one request at a time). `ask_batch`
answers several questions with one generation call (a diffusion generator denoises them together, see
generator.base.generate_many): retrieval per question with that question's groups, then validation and
repair per answer exactly as `stream` does them, so each Answer is the one `ask` gives for it alone.

Validation: every answer is checked by the validation stage (validation.validate: citations, support of each
sentence by the passages it cites, prompt injection in the passages) unless settings.validation.enabled is
off; a `validator` argument replaces it. On "fail", the failing sentences are repaired and validated again,
up to settings.validation.repair_rounds times: a generator with `repair` (the diffusion ones) remasks just
those sentences and denoises them again (the remote "openai" one re-asks, naming them); any other generator
answers again without the passages that only failing sentences cite. `Answer.validation` holds the last
report and what each repair round did, and an answer that still fails says so in its status.

Passages are data, never instructions: the generator sees them with citation markers written "(n)"
(pipeline.types.Passage), and the answer text that leaves this module, in an Answer or in a streamed
DenoiseState, has its HTML and Markdown images/links made inert (validation.markup.neutralize_markup), so
markup copied from a document reaches neither the CLI, nor the app's Markdown, nor a service's JSON. The
validator judges that same text.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from generator.base import Generator, Repairs, WithOptions, generate_many, generator_spec, get_generator
from pipeline.text import MARKER_RUN_RE, find_markers
from pipeline.types import DenoiseState, GenerationRequest, GenerationResult
from validation.markup import neutralize_markup, neutralize_markup_map

from .config import Settings
from .errors import ConfigError
from .retrieve import Retriever
from .store import Store
from .types import Answer, Hit, RepairRound, SearchFilters, SourceCitation, ValidationReport

Validator = Callable[[Answer], ValidationReport]  # a dict of the same fields is read as one


class BatchItem(BaseModel):
    """One question of `RagPipeline.ask_batch`, with its own caller's groups (None: settings.default_groups),
    k and filters, as `ask` takes them."""

    model_config = ConfigDict(frozen=True)

    question: str
    groups: tuple[str, ...] | None = None
    k: int | None = Field(None, ge=1)
    filters: SearchFilters | dict[str, Any] | None = None


class RagPipeline:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        retriever: Retriever | None = None,
        validator: Validator | None = None,
        generator_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.store = store or Store(self.settings)
        self.retriever = retriever or Retriever(self.store, settings=self.settings)
        self.validator = validator
        if validator is None and self.settings.validation.enabled:
            self.validator = default_validator(self.settings, _SharedEmbedder(self.retriever))
        given = generator_options or {}  # the caller's, over the settings' (per option, per generator)
        self.generator_options = {name: {**self.settings.generator_options.get(name, {}), **given.get(name, {})}
                                  for name in {*self.settings.generator_options, *given}}
        self._generators: dict[tuple[str, str, str], Generator] = {}  # (name, load options, sampling options)
        self._gen_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def generator(self, name: str | None = None, options: Mapping[str, Any] | None = None) -> tuple[Generator, threading.Lock]:
        """The warmed-up generator registered as `name` (default: settings.generator), loaded once.

        `options` are laid over the pipeline's generator_options for that name; an option the plugin does not
        declare is a ConfigError naming those it does. Those its spec marks as load options (they choose the
        weights or the server: model_path, device...) pick which loaded model is used; the rest are sampling
        settings (e.g. `{"max_steps": 32}` for sculpt, `config=DiffusionConfig(...)`): a generator with
        `with_options` makes that variant from the loaded model, sharing its weights and its lock; any other
        is built and loaded once per distinct set. Variants are kept (one per setting a user tried).
        """
        name = name or self.settings.generator
        options = {**self.generator_options.get(name, {}), **(options or {})}
        spec = generator_spec(name)  # what the plugin declares: its options, which of them choose the weights
        spec.check(options, name)
        load, sampling = spec.split(options)
        base_key = (name, _options_key(load), "")
        key = (name, _options_key(load), _options_key(sampling) if sampling else "")
        with self._lock:
            if base_key not in self._generators:  # the model, with its default sampling settings
                base = get_generator(name, settings=self.settings, **load)
                base.warm_up()
                self._generators[base_key], self._gen_locks[base_key] = base, threading.Lock()
            if key not in self._generators:
                base = self._generators[base_key]
                if isinstance(base, WithOptions):
                    self._generators[key] = base.with_options(**sampling)
                    self._gen_locks[key] = self._gen_locks[base_key]  # same weights, same lock
                else:
                    gen = get_generator(name, settings=self.settings, **options)
                    gen.warm_up()
                    self._generators[key], self._gen_locks[key] = gen, threading.Lock()
            return self._generators[key], self._gen_locks[key]

    def retrieve(self, question: str, groups: str | Sequence[str], k: int | None = None, filters=None) -> list[Hit]:
        return self.retriever.search(question, groups=groups, k=k, filters=filters)

    def ask(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
            k: int | None = None, filters=None, options: Mapping[str, Any] | None = None,
            repair_rounds: int | None = None, hits: Sequence[Hit] | None = None) -> Answer:
        """The final Answer of `stream` (same arguments)."""
        answer = None
        for item in self.stream(question, groups=groups, generator=generator, k=k, filters=filters,
                                options=options, repair_rounds=repair_rounds, hits=hits):
            answer = item
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
               k: int | None = None, filters=None, options: Mapping[str, Any] | None = None,
               repair_rounds: int | None = None, hits: Sequence[Hit] | None = None) -> Iterator[DenoiseState | Answer]:
        """Yield the generator's DenoiseStates as the answer forms, then the final Answer.

        `options`: the generator's sampling settings for this call (see `generator`); `repair_rounds`
        replaces settings.validation.repair_rounds for this call (0: validate, never repair).
        `hits`: answer over exactly these passages, in this order, instead of retrieving (`groups`, `k` and
        `filters` are then unused); generation, validation, repair and citations are unchanged. Retrieval is
        where access control happens, so the caller is responsible for passing only hits it retrieved for
        the same caller's groups (the evaluation harness uses this to fix a question's passage set)."""
        _check_question(question)
        groups = self.settings.default_groups if groups is None else groups
        t0 = time.perf_counter()
        hits = self.retrieve(question, groups, k, filters) if hits is None else list(hits)
        t_retrieve = time.perf_counter() - t0
        gen, lock = self.generator(generator, options)
        request = _request(question, hits)
        t1 = time.perf_counter()
        result: GenerationResult | None = None
        with lock:
            for item in gen.stream(request):
                if isinstance(item, GenerationResult):
                    result = item
                else:
                    yield item.model_copy(update={"text": neutralize_markup(item.text)})
        if result is None:
            raise ConfigError(f"generator {gen.name!r} ended its stream without a result")
        timings = {"retrieve_s": t_retrieve, "generate_s": time.perf_counter() - t1}
        yield self._checked_answer(gen, lock, request, result, hits, timings, t0, repair_rounds)

    def ask_batch(self, items: Sequence[BatchItem], *, generator: str | None = None,
                  options: Mapping[str, Any] | None = None,
                  on_state: Callable[[int, DenoiseState], None] | None = None,
                  repair_rounds: int | None = None) -> list[Answer]:
        """Answers to several questions, generated together: each item's passages are retrieved with its own
        groups, k and filters; one `generate_many` call under the generator's lock writes every answer (a
        diffusion generator denoises them as one batch, any other one after another); then each answer is
        validated and repaired as `stream` does it. Answer i is the one `ask` gives for items[i] alone (its
        timings aside: `generate_s` is the shared call's). `on_state(i, state)` receives item i's
        DenoiseStates, markup made inert as in `stream`."""
        for item in items:
            _check_question(item.question)
        t0 = time.perf_counter()
        found: list[tuple[list[Hit], float]] = []
        for item in items:  # access control is per item: each search uses only that item's groups
            t = time.perf_counter()
            groups = self.settings.default_groups if item.groups is None else item.groups
            found.append((self.retrieve(item.question, groups, item.k, item.filters), time.perf_counter() - t))
        gen, lock = self.generator(generator, options)
        requests = [_request(item.question, hits) for item, (hits, _) in zip(items, found)]
        def relay(i: int, state: DenoiseState) -> None:
            on_state(i, state.model_copy(update={"text": neutralize_markup(state.text)}))
        t1 = time.perf_counter()
        with lock:
            results = generate_many(gen, requests, relay if on_state is not None else None)
        t_generate = time.perf_counter() - t1
        return [self._checked_answer(gen, lock, request, result, hits, {"retrieve_s": t_retrieve,
                                                                        "generate_s": t_generate}, t0, repair_rounds)
                for request, result, (hits, t_retrieve) in zip(requests, results, found)]

    def _checked_answer(self, gen: Generator, lock: threading.Lock, request: GenerationRequest,
                        result: GenerationResult, hits: Sequence[Hit], timings: dict[str, float], t0: float,
                        repair_rounds: int | None) -> Answer:
        """The Answer for a generated `result`: validated, and repaired while it fails (up to the rounds
        allowed), with `timings` completed (validate_s, repair_s, total_s since `t0`)."""
        question = request.question
        report = None
        if self.validator is not None:
            t2 = time.perf_counter()

            def judge(r: GenerationResult) -> ValidationReport:
                report = self.validator(self._answer(question, r, hits, gen.name))
                return report if isinstance(report, ValidationReport) else ValidationReport.model_validate(report)

            rounds_allowed = self.settings.validation.repair_rounds if repair_rounds is None else repair_rounds
            if rounds_allowed < 0:
                raise ConfigError(f"repair_rounds must be >= 0, got {rounds_allowed}")
            result, report, rounds = validate_and_repair(gen, request, result, judge, rounds_allowed, lock)
            if rounds:
                report = report.model_copy(update={"repair": rounds})
                timings["repair_s"] = sum(r.seconds for r in rounds)
            timings["validate_s"] = time.perf_counter() - t2 - timings.get("repair_s", 0.0)
        answer = self._answer(question, result, hits, gen.name)
        answer.timings = timings
        if report is not None:
            answer.validation = report
        answer.timings["total_s"] = time.perf_counter() - t0
        return answer

    @staticmethod
    def _answer(question: str, result: GenerationResult, hits: Sequence[Hit], generator: str) -> Answer:
        return Answer(question=question, text=neutralize_markup(result.text), citations=resolve_citations(result, hits),
                      passages=list(hits), generator=generator, trace=result.trace, timings={})


def _check_question(question: str) -> None:
    if not question or not question.strip():
        raise ConfigError("the question is empty")


def _request(question: str, hits: Sequence[Hit]) -> GenerationRequest:
    """The generator's request: the question and the hits as passages [1]..[k]."""
    return GenerationRequest(question=question, passages=tuple(h.to_passage(i + 1) for i, h in enumerate(hits)))


def validate_and_repair(gen: Generator, request: GenerationRequest, result: GenerationResult,
                        judge: Callable[[GenerationResult], ValidationReport], rounds: int,
                        lock: threading.Lock | None = None) -> tuple[GenerationResult, ValidationReport, list[RepairRound]]:
    """Judge `result`; while it fails, repair it (up to `rounds` times) and judge again.

    A generator with `repair` remasks the failing spans and denoises them again (or does what its
    `repair_how` says); any other answers again without the passages that only failing sentences cite.
    Returns the last result, its report and a record of each round (how, verdict before and after, the
    failing text, seconds)."""
    report = judge(result)
    done: list[RepairRound] = []
    while report.status == "fail" and len(done) < rounds:
        t = time.perf_counter()
        shown, index = neutralize_markup_map(result.text)  # the report's offsets index the shown text
        spans = [tuple(s) for s in report.failing_spans] or [(0, len(shown))]
        generated = [(index[a], index[b - 1] + 1) for a, b in spans if a < b <= len(shown)] or [(0, len(result.text))]
        raw_spans = map_spans(result.text, result.raw_text, generated)
        with lock or contextlib.nullcontext():
            if isinstance(gen, Repairs):
                how = getattr(gen, "repair_how", "remask failing sentences")
                repaired = gen.repair(request, result.raw_text, raw_spans)
            else:
                how = "regenerate without the passages only failing sentences cite"
                repaired = gen.generate(_without_failing_sources(request, result.raw_text, raw_spans))
        before, report = report, judge(repaired)
        done.append(RepairRound(how=how, before=before.status, after=report.status,
                                failing_before=[shown[a:b] for a, b in spans], seconds=time.perf_counter() - t))
        result = repaired
    return result, report, done


def default_validator(settings: Settings, embedder=None) -> Validator:
    """The validation stage's Validator (Answer -> ValidationReport) with the support checker that
    settings.validation.checker names (built through the checker registry; the default overlap + embedding
    checker shares the retriever's embedder, so MiniLM is loaded once)."""
    from validation.support import checker_from_settings
    from validation.validate import Validator as AnswerValidator

    return AnswerValidator(checker_from_settings(settings.validation, embedder))


class _SharedEmbedder:
    """The retriever's embedder, loaded when first used by either (one MiniLM per pipeline)."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def encode(self, texts):
        return self.retriever.load_embedder().encode(texts)


def _options_key(options: Mapping[str, Any]) -> str:
    """A stable key for a set of generator options (pydantic configs by their fields)."""
    def plain(v: Any) -> Any:
        if hasattr(v, "get_secret_value"):  # an API key: two keys must not share one generator (kept in memory only)
            return v.get_secret_value()
        return v.model_dump() if hasattr(v, "model_dump") else v
    return json.dumps({k: plain(v) for k, v in options.items()}, sort_keys=True, default=str)


def map_spans(text: str, raw: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans of the shown answer -> the same spans of the generator's raw text, which differs
    only in marker numbers (renumbered in order of use). When the two differ otherwise (a marker naming no
    passage was dropped), the whole raw answer."""
    a_parts, b_parts = MARKER_RUN_RE.split(text), MARKER_RUN_RE.split(raw)
    if a_parts != b_parts:
        return [(0, len(raw))] if raw else []
    a_marks = [m.span() for m in MARKER_RUN_RE.finditer(text)]
    b_marks = [m.span() for m in MARKER_RUN_RE.finditer(raw)]
    shift = [0]  # offset to add to a text position inside text segment i
    for (a0, a1), (b0, b1) in zip(a_marks, b_marks):
        shift.append(shift[-1] + (b1 - b0) - (a1 - a0))

    def at(pos: int) -> int:
        i = sum(1 for a0, _ in a_marks if a0 < pos)  # markers starting before pos
        return pos + shift[i]

    out = [(at(a), min(len(raw), at(b))) for a, b in spans if b > a]
    return [(a, b) for a, b in out if b > a]


def _without_failing_sources(request: GenerationRequest, raw: str, spans: Sequence[tuple[int, int]]) -> GenerationRequest:
    """The request minus the passages that only failing sentences cite (the numbers of the rest are kept)."""
    failing = {n for a, b in spans for n in find_markers(raw[a:b])}
    cut = raw
    for a, b in sorted(spans, reverse=True):
        cut = cut[:a] + cut[b:]
    kept = set(find_markers(cut))
    drop = failing - kept
    passages = tuple(p for p in request.passages if p.number not in drop) or request.passages
    return request.model_copy(update={"passages": passages})


def resolve_citations(result: GenerationResult, hits: Sequence[Hit]) -> list[SourceCitation]:
    """Each citation of the result -> the chunk behind its passage number (passages are hits 1..k)."""
    out = []
    for c in result.citations:
        hit = hits[c.passage_number - 1]
        out.append(SourceCitation(
            marker=c.marker, passage_number=c.passage_number, chunk_id=hit.chunk_id, document_title=hit.document.title,
            source_uri=hit.document.source_uri, page=hit.page, section=hit.section, quote=hit.text,
        ))
    return out
