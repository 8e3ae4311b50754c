"""The validation report: a verdict per sentence and for the whole answer, with reasons, as pydantic models.

Everything here is plain data and JSON-serializable (`ValidationReport.to_dict()`), so the report can ride
inside `pipeline.types.Answer.validation`, be written by an evaluation harness, or be shown by the app.

Numbering: `markers` and the keys of `precision` are the numbers shown in the answer text; `passages` are
the passage numbers they resolve to (the same numbers unless the caller gave a marker -> passage map, as the
pipeline does after markers are renumbered in order of first use). Character offsets index the answer text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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


class ValidationReport(BaseModel):
    """The verdict on one answer: pass / warn / fail, why, per sentence, and the spans a repair should redo."""

    status: Status
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

    def to_dict(self) -> dict:
        """A JSON-ready dict (dict keys become strings, tuples lists)."""
        return self.model_dump(mode="json")
