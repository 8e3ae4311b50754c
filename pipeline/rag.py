"""RagPipeline: question -> retrieval (access-controlled) -> numbered passages -> generator -> Answer.

One object per process, built at the edge from one Settings; `ask` and `stream` are safe to call from
many threads (each generator is loaded once, under a lock, and runs one request at a time). Validation
plugs in through the `validator` argument (the validation package fills `Answer.validation`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from generator.base import Generator, get_generator
from generator.types import DenoiseState, GenerationRequest, GenerationResult

from .config import Settings
from .errors import ConfigError
from .retrieve import Retriever
from .store import Store
from .types import Answer, Hit, SourceCitation

Validator = Callable[[Answer], dict]


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
        self.generator_options = dict(generator_options or {})
        self._generators: dict[str, Generator] = {}
        self._gen_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def generator(self, name: str | None = None) -> tuple[Generator, threading.Lock]:
        """The warmed-up generator registered as `name` (default: settings.generator), loaded once."""
        name = name or self.settings.generator
        with self._lock:
            if name not in self._generators:
                gen = get_generator(name, **self.generator_options.get(name, {}))
                gen.warm_up()
                self._generators[name] = gen
                self._gen_locks[name] = threading.Lock()
            return self._generators[name], self._gen_locks[name]

    def retrieve(self, question: str, groups: Sequence[str], k: int | None = None, filters=None) -> list[Hit]:
        return self.retriever.search(question, groups=groups, k=k, filters=filters)

    def ask(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
            k: int | None = None, filters=None) -> Answer:
        answer = None
        for item in self.stream(question, groups=groups, generator=generator, k=k, filters=filters):
            answer = item
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
               k: int | None = None, filters=None) -> Iterator[DenoiseState | Answer]:
        """Yield the generator's DenoiseStates as the answer forms, then the final Answer."""
        if not question or not question.strip():
            raise ConfigError("the question is empty")
        groups = list(self.settings.default_groups if groups is None else groups)
        t0 = time.perf_counter()
        hits = self.retrieve(question, groups, k, filters)
        t_retrieve = time.perf_counter() - t0
        gen, lock = self.generator(generator)
        request = GenerationRequest(question=question, passages=tuple(h.to_passage(i + 1) for i, h in enumerate(hits)))
        t1 = time.perf_counter()
        result: GenerationResult | None = None
        with lock:
            for item in gen.stream(request):
                if isinstance(item, GenerationResult):
                    result = item
                else:
                    yield item
        if result is None:
            raise ConfigError(f"generator {gen.name!r} ended its stream without a result")
        t_generate = time.perf_counter() - t1
        answer = Answer(
            question=question, text=result.text, citations=resolve_citations(result, hits), passages=hits,
            generator=gen.name, trace=result.trace,
            timings={"retrieve_s": t_retrieve, "generate_s": t_generate},
        )
        if self.validator is not None:
            t2 = time.perf_counter()
            answer.validation = self.validator(answer)
            answer.timings["validate_s"] = time.perf_counter() - t2
        answer.timings["total_s"] = time.perf_counter() - t0
        yield answer


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
