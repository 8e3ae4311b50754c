"""The extractive baseline: answer with the passage sentences that best match the question, cited.

No model: sentences are scored by IDF-weighted overlap of their words with the question (IDF over the
given passages), the best ones are returned verbatim with the marker of the passage they come from.
When no sentence shares a content word with the question, it says the passages do not contain the
answer. It is the yardstick a generative model must beat (verbatim, always correctly cited, but unable
to combine or rephrase), and a dependable fallback generator on tiny machines.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

from .base import generator_plugin
from .citations import finalize_citations
from pipeline.text import QUESTION_STOPWORDS, REFUSAL, idf_cover, line_sentences, words
from pipeline.types import DenoiseState, GenerationRequest, GenerationResult, GenerationTrace


class ExtractiveConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_sentences: int = Field(2, ge=1, description="sentences in the answer at most")
    min_score: float = Field(0.2, ge=0, description="share of the question's IDF mass a sentence must cover")
    max_chars: int = Field(400, ge=20, description="longer sentences are skipped")


def _words(text: str) -> list[str]:
    return [w for w in words(text) if w not in QUESTION_STOPWORDS]


class ExtractiveGenerator:
    """Selects cited sentences from the passages; `stream` yields one state, then the result."""

    def __init__(self, config: ExtractiveConfig | None = None, name: str = "extractive") -> None:
        self.config = config or ExtractiveConfig()
        self.name = name

    def warm_up(self) -> None:  # nothing to load
        return None

    def generate(self, request: GenerationRequest) -> GenerationResult:
        start = time.perf_counter()
        sentences = [  # cut inside each line, as validation does: a heading or a table row is never glued to the next
            (p.number, s.strip())
            for p in request.passages
            for line in p.text.splitlines()
            for s in line_sentences(" ".join(line.split()))
            if 0 < len(s.strip()) <= self.config.max_chars
        ]
        covers = idf_cover(_words(request.question), [set(_words(s)) for _, s in sentences])
        scored = [(cover, -i, num, s) for i, (cover, (num, s)) in enumerate(zip(covers, sentences))]
        scored.sort(reverse=True)
        picked = [x for x in scored if x[0] >= self.config.min_score][: self.config.max_sentences]
        picked.sort(key=lambda x: -x[1])  # keep the passages' order
        raw = " ".join(_cite(s, num) for _, _, num, s in picked) if picked else REFUSAL
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        words = len(text.split())
        trace = GenerationTrace(generator=self.name, steps=1, nfe=0, tokens_per_step=[words], answer_tokens=words,
                                wall_time_s=wall, tokens_per_s=words / wall if wall > 0 else 0.0)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        result = self.generate(request)
        yield DenoiseState(step=1, text=result.text, masked=0, changed=list(range(len(result.text.split()))), done=True)
        yield result


def _cite(sentence: str, number: int) -> str:
    """Put the marker before the sentence's final punctuation: "... end [2]."."""
    m = re.match(r"^(.*?)([.!?]+[\"')\]]*)?$", sentence, re.S)
    body, end = m.group(1), m.group(2) or "."
    return f"{body} [{number}]{end}"


@generator_plugin(options=ExtractiveConfig)
def build_extractive(config: ExtractiveConfig | None = None, name: str = "extractive", **options) -> ExtractiveGenerator:
    """Factory for the "extractive" entry point (options: `config=`, or ExtractiveConfig's fields laid over it)."""
    if options:
        try:
            config = ExtractiveConfig(**{**(config or ExtractiveConfig()).model_dump(), **options})
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise ConfigError(f"bad extractive option: {problems}; the options are "
                              f"{', '.join(ExtractiveConfig.model_fields)}") from None
    return ExtractiveGenerator(config=config, name=name)
