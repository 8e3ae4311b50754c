"""Types that cross package lines: passages, generation requests, results, traces and denoising states,
the ingest report, retrieval hits and filters, the answer.

The generator knows passages as text and token ids, never the store: a `Passage` is only what the prompt
needs (number, title, page, text).

All are pydantic models and serialize to JSON.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from .text import MARKER_RE

__all__ = [
    "Citation", "DenoiseState", "DiffusionConfig", "GenerationRequest", "GenerationResult", "GenerationTrace",
    "Passage", "FileOutcome", "IngestReport", "SentenceReport", "InjectionFlag", "GroundTruth", "RepairRound",
    "ValidationReport", "Answer",
]



class Passage(BaseModel):
    """A numbered passage given to the generator; `number` is the marker the answer cites as [number].

    `text` and `title` are what the model is shown and may quote, so they never carry a citation marker:
    a literal "[2]" in a document becomes "(2)" here (see `neutralize_markers`), and a title is one line.
    """

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    text: str
    title: str = ""
    page: int | None = None
    chunk_id: str | None = None
    section: str = ""  # the title of the document section the text is in; the text may open with that title
    context: str = ""  # what the text is about: file name, document title, entity, period, section path; never quoted

    @field_validator("text")
    @classmethod
    def _no_markers_in_text(cls, v: str) -> str:
        return neutralize_markers(v)

    @field_validator("title", "section")
    @classmethod
    def _one_line_title(cls, v: str) -> str:
        return neutralize_markers(" ".join(v.split()))


def neutralize_markers(text: str) -> str:
    """Citation markers inside passage text rewritten so they are not markers: "[2]" -> "(2)", "[1, 3]" ->
    "(1, 3)". Same length, so character offsets into the text stay valid.

    Passages are data: a "[2]" in a document must never become a citation of the prompt's passage 2, whether
    a model copies it or a quoting generator (extractive, sculpt) carries it through verbatim.
    """
    return MARKER_RE.sub(lambda m: f"({m.group(1)})", text)


class DiffusionConfig(BaseModel):
    """Sampling settings for a masked-diffusion generator (frozen, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gen_length: int = Field(128, ge=1, le=4096)
    block_length: int = Field(32, ge=1)
    steps: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="with temperature > 0, sample only from the "
                                "smallest set of tokens whose probability reaches top_p (nucleus sampling)")
    confidence: Literal["probability", "margin", "entropy", "random"] = "probability"
    threshold: float | None = Field(None, gt=0.0, le=1.0)
    cfg_scale: float = Field(0.0, ge=0.0)
    use_cache: bool = True
    dual_cache: bool = Field(False, description="with use_cache, a block's steps run only the block, reusing the "
                             "keys/values of the prefix and of the suffix (Fast-dLLM dual cache)")
    remask_threshold: float | None = Field(None, gt=0.0, lt=1.0)
    edit_threshold: float | None = Field(None, gt=0.0, le=1.0)
    require_citations: bool = False
    repetition_penalty: float = Field(1.0, ge=1.0)
    logits_eos_inf: bool = Field(False, description="never propose EOS (LLaDA generate.py's option)")
    confidence_eos_eot_inf: bool = Field(False, description="rank positions by a confidence that leaves EOS and "
                                         "end-of-turn out of the softmax, so a proposed stop commits last "
                                         "(LLaDA generate.py's option)")
    reference_compat: Literal["llada", "dream"] | None = Field(
        None, description="reproduce a published sampler step for step, quirks included: 'llada' (LLaDA "
        "generate.py with use_cache=False; Fast-dLLM's LLaDA samplers with a threshold or the cache), 'dream' "
        "(Dream's diffusion_generate with use_cache=False; Fast-dLLM's Dream samplers with a threshold or the "
        "cache). See docs/generators.md")
    seed: int | None = 0

    @field_validator("block_length")
    @classmethod
    def _block_divides(cls, v: int, info) -> int:
        gen = info.data.get("gen_length")
        if gen is not None and gen % v != 0:
            raise ValueError(f"gen_length ({gen}) must be a multiple of block_length ({v})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DiffusionConfig":
        if self.dual_cache and not self.use_cache:
            raise ValueError("dual_cache needs use_cache=True")
        if self.reference_compat is not None:
            ours = {"remask_threshold": self.remask_threshold is not None, "edit_threshold":
                    self.edit_threshold is not None, "repetition_penalty": self.repetition_penalty > 1,
                    "require_citations": self.require_citations}
            on = [k for k, v in ours.items() if v]
            if on:
                raise ValueError(f"reference_compat reproduces the published samplers, which have no {', '.join(on)}; "
                                 "unset it or drop reference_compat")
        return self


class AutoregressiveConfig(BaseModel):
    """Sampling settings for an autoregressive generator (frozen, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, ge=1.0)
    seed: int | None = 0


class GenerationRequest(BaseModel):
    """A question, the numbered passages, and optionally a config overriding the generator's default."""

    model_config = ConfigDict(frozen=True)

    question: str = Field(min_length=1)
    passages: tuple[Passage, ...] = ()
    config: DiffusionConfig | AutoregressiveConfig | None = None

    @field_validator("passages")
    @classmethod
    def _numbers_unique(cls, v: tuple[Passage, ...]) -> tuple[Passage, ...]:
        numbers = [p.number for p in v]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"passage numbers must be unique, got {numbers}")
        return v


class Citation(BaseModel):
    """A marker in the final answer and the passage it names (numbers as given in the request)."""

    marker: int = Field(ge=1, description="the number shown in the final answer, in order of first use")
    passage_number: int = Field(ge=1, description="the passage's number in the request")
    chunk_id: str | None = None


class GenerationTrace(BaseModel):
    """How an answer was made: steps, forward passes, tokens committed per step, time."""

    generator: str
    steps: int = 0
    nfe: int = 0
    tokens_per_step: list[int] = Field(default_factory=list)
    prompt_tokens: int = 0
    answer_tokens: int = 0
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0
    remasked: int = 0
    edited: int = 0


class GenerationResult(BaseModel):
    """The answer text (markers renumbered in order of first use), its citations, and the trace."""

    text: str
    citations: list[Citation] = Field(default_factory=list)
    trace: GenerationTrace
    raw_text: str = ""


MASK_GLYPH = "░"  # how a still-masked answer position is shown in a DenoiseState's text


class DenoiseState(BaseModel):
    """The canvas after one denoising step: text with masks shown (MASK_GLYPH), which answer positions changed."""

    step: int
    text: str
    masked: int
    changed: list[int] = Field(default_factory=list)
    done: bool = False


class FileOutcome(BaseModel):
    """What happened to one input path."""

    path: str  # readable text: bytes of a file name that are not UTF-8 show as U+FFFD
    status: str  # ingested | updated | unchanged | removed | rejected | skipped (hidden files, links searched elsewhere, a site build's copies)
    reason: str = ""
    detail: str = ""
    file_type: str = ""
    chunks: int = 0

    @field_validator("path")
    @classmethod
    def _printable(cls, v: str) -> str:
        return os.fsencode(v).decode("utf-8", "replace")  # (a surrogate-escaped name would break JSON)


class IngestReport(BaseModel):
    """The result of one ingest run: counts, per-file outcomes, timings."""

    files_seen: int = 0
    ingested: int = 0
    unchanged: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    skipped: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    pages: int = 0
    parsed: int = 0
    embedded_chunks: int = 0
    still_quarantined: int = 0
    kept_groups: int = 0  # stored documents whose groups differ from the run's and were kept (no set_groups)
    seconds: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)
    outcomes: list[FileOutcome] = Field(default_factory=list)

    def rejections(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    def add(self, other: "IngestReport") -> None:
        """Count `other` (a later run of the same ingest, e.g. the next request of an upload) into this one:
        counts, timings and outcomes add up, still_quarantined is the later run's."""
        for name in ("files_seen", "ingested", "unchanged", "updated", "removed", "rejected", "skipped", "chunks_added",
                     "chunks_removed", "pages", "parsed", "embedded_chunks", "kept_groups", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, value in other.timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + value
        self.outcomes.extend(other.outcomes)
        self.still_quarantined = other.still_quarantined

    def reasons(self, status: str = "rejected") -> dict[str, int]:
        """How many paths of `status` (rejected, skipped) each reason accounts for."""
        return dict(Counter(o.reason for o in self.outcomes if o.status == status))


# -- retrieval -----------------------------------------------------------------------------------------
class SearchFilters(BaseModel):
    """Metadata conditions on documents; all given ones must hold, a list means any of its values.

    `source` patterns match a document's source URI or, for file: URIs, its local path: a pattern with glob
    characters (* ? [) is matched whole (fnmatch, `*` crosses `/`), any other is a prefix. Dates are UTC
    when naive; `modified_*` is the file's mtime, `ingested_*` when it was stored. `fields` names any other
    stored document column (title, sha256, pages, ...) with a value or a list of values.
    """

    model_config = ConfigDict(extra="forbid")

    source: str | list[str] | None = None
    media_type: str | list[str] | None = None
    file_type: str | list[str] | None = None
    ingested_after: datetime | None = None
    ingested_before: datetime | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


class DocumentRef(BaseModel):
    """The document a hit comes from."""

    id: int
    uid: str
    title: str
    source_uri: str
    media_type: str
    file_type: str
    pages: int | None = None

    @property
    def file_name(self) -> str:
        """The source's file name in words ("vodafone.xlsx" -> "vodafone xlsx", "a1977-backus-p21.pdf" ->
        "a1977 backus p21 pdf"): what the file is about when its text does not say (a workbook titled by its
        sheet, a page of a paper)."""
        name = unquote(self.source_uri.rstrip("/").rsplit("/", 1)[-1])
        return " ".join(re.split(r"[-_.\s]+", name)).strip()


class HitScores(BaseModel):
    """Scores and 1-based ranks in each ranking that returned the chunk (None: that ranking did not)."""

    dense: float | None = None  # cosine similarity of query and chunk embeddings
    bm25: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None
    fused: float = 0.0  # weighted reciprocal rank fusion: sum of w / (rrf_k + rank)


class Hit(BaseModel):
    """One retrieved chunk with its document, location and scores."""

    chunk_id: int
    chunk_uid: str
    document: DocumentRef
    position: int
    page: int | None = None
    page_end: int | None = None
    section: str = ""
    context: str = ""  # the chunk's context line (document title, entity, period, section path), as ingest indexed it
    text: str
    table_html: str | None = None
    scores: HitScores = Field(default_factory=HitScores)
    neighbour_of: int | None = None  # set on chunks added by neighbour expansion: the hit they surround
    duplicates: list[int] = Field(default_factory=list)  # chunk ids folded into this hit by de-duplication

    def to_passage(self, number: int) -> Passage:
        """This hit as the generator's numbered passage."""
        return Passage(number=number, text=self.text, title=self.document.title, page=self.page, chunk_id=self.chunk_uid,
                       section=self.section, context=" | ".join(x for x in (self.document.file_name, self.context) if x))



# -- the validation report (validation.validate makes it; the pipeline, the app, the service and evaluation read it)
# Everything here is plain data. Numbering: `markers` and the keys of `precision` are the numbers shown in the
# answer text; `passages` are the passage numbers they resolve to (the same numbers unless the caller gave a
# marker -> passage map, as the pipeline does after markers are renumbered in order of first use). Character
# offsets index the answer text.
Status = Literal["pass", "warn", "fail"]


class SentenceReport(BaseModel):
    """One sentence of the answer: where it is, what it cites, and whether the citations hold."""

    index: int
    text: str
    start: int = Field(description="char offset of the sentence in the answer text")
    end: int = Field(description="char offset one past the sentence's end")
    markers: list[int] = Field(default_factory=list, description="the [n] numbers in the sentence, in order, once each")
    passages: list[int] = Field(default_factory=list, description="passage numbers the known markers resolve to")
    status: Status = "pass"
    reasons: list[str] = Field(default_factory=list)
    factual: bool = Field(False, description="states something checkable (not a refusal, question or filler)")
    supported: bool | None = Field(
        None, description="citation recall: the cited passages together support the sentence (None: nothing cited "
        "or not factual)")
    support_score: float | None = Field(None, description="the checker's score of the sentence against its citations")
    precision: dict[int, bool] = Field(
        default_factory=dict, description="marker -> the passage it names is needed or relevant for this sentence")
    best_passage: int | None = Field(None, description="the passage that alone supports the sentence best")
    best_score: float | None = Field(None, description="that passage's score")


class InjectionFlag(BaseModel):
    """A passage containing text that tries to instruct the model (prompt injection), and whether the answer
    obeys it. `excerpt` quotes the passage with any markup made inert (validation.markup.defang)."""

    passage: int
    pattern: str = Field(description="name of the pattern in validation.injection.PATTERNS")
    excerpt: str
    cited: bool = Field(False, description="the answer cites this passage")
    obeyed: bool = Field(False, description="the answer does what the passage asks: it carries the payload the "
                         "passage asked for, or a URL or markup written in the passage (the verdict is then fail)")
    evidence: str = Field("", description="what in the answer shows it obeyed (markup shown inert)")


class GroundTruth(BaseModel):
    """Comparison with an evaluation set's gold answer and gold evidence passages (None: not given)."""

    exact_match: bool | None = Field(None, description="SQuAD-normalised answer equals the gold (markers removed)")
    token_f1: float | None = Field(None, description="SQuAD token F1 against the gold (markers removed)")
    evidence_recall: float | None = Field(None, description="share of gold passages the answer cites (None: none given)")


class RepairRound(BaseModel):
    """One round of repair (pipeline.rag.validate_and_repair): what was done, the verdict before and after,
    the failing sentences' text before it, how long it took."""

    how: str
    before: Status
    after: Status
    failing_before: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class ValidationReport(BaseModel):
    """The verdict on one answer: pass / warn / fail, why, per sentence, and the spans a repair should redo."""

    status: Status | Literal["not run"]
    reasons: list[str] = Field(default_factory=list)
    sentences: list[SentenceReport] = Field(default_factory=list)
    coverage: float | None = Field(None, description="share of factual sentences citing >=1 passage (None: none factual)")
    citation_recall: float | None = Field(
        None, description="ALCE citation recall: share of factual sentences supported by their citations (uncited: 0)")
    citation_precision: float | None = Field(
        None, description="ALCE citation precision: share of citations (marker in a sentence) that are relevant")
    unknown_markers: list[int] = Field(default_factory=list)
    refusal: bool = False
    injection: list[InjectionFlag] = Field(default_factory=list)
    ground_truth: GroundTruth | None = None
    failing_spans: list[tuple[int, int]] = Field(default_factory=list, description="(start, end) of failing sentences")
    checker: str = ""
    thresholds: dict[str, float] = Field(default_factory=dict)
    repair: list[RepairRound] = Field(default_factory=list, description="the repair rounds run, in order (the "
                                      "rest of the report is about the answer after the last one)")

    @classmethod
    def not_run(cls) -> "ValidationReport":
        """The report of an answer nobody validated (settings.validation.enabled off)."""
        return cls(status="not run")

    @model_serializer(mode="wrap")
    def _compact(self, handler):
        """An unvalidated answer is `{"status": "not run"}`, and `repair` is written only when a round ran:
        the JSON of `ask --json` and of the eval report is what it was when the report was a dict."""
        if self.status == "not run":
            return {"status": "not run"}
        data = handler(self)
        if not self.repair:
            data.pop("repair", None)
        return data

    def to_dict(self) -> dict:
        """A JSON-ready dict (dict keys become strings, tuples lists)."""
        return self.model_dump(mode="json")


class SourceCitation(BaseModel):
    """A citation in an answer, resolved to the chunk it names and the passage text it quotes."""

    marker: int  # the number shown in the answer text, in order of first use
    passage_number: int  # the number the passage had in the prompt
    chunk_id: int
    document_title: str
    source_uri: str
    page: int | None = None
    section: str = ""
    quote: str


class Answer(BaseModel):
    """What a question gets: the answer text, resolved citations, the passages shown, checks and timings."""

    question: str
    text: str
    citations: list[SourceCitation] = Field(default_factory=list)
    passages: list[Hit] = Field(default_factory=list)
    generator: str
    trace: GenerationTrace | None = None
    validation: ValidationReport = Field(default_factory=ValidationReport.not_run)
    timings: dict[str, float] = Field(default_factory=dict)
