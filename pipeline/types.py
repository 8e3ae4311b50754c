"""Types that cross package lines: the ingest report, retrieval hits and filters (and the generator's types).

All are pydantic models and serialize to JSON.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from generator.types import (  # re-exported: the public names live here
    Citation,
    DenoiseState,
    DiffusionConfig,
    GenerationRequest,
    GenerationResult,
    GenerationTrace,
    Passage,
)


__all__ = [
    "Citation", "DenoiseState", "DiffusionConfig", "GenerationRequest", "GenerationResult", "GenerationTrace",
    "Passage", "FileOutcome", "IngestReport",
]


class FileOutcome(BaseModel):
    """What happened to one input path."""

    path: str  # readable text: bytes of a file name that are not UTF-8 show as U+FFFD
    status: str  # ingested | updated | unchanged | removed | rejected | skipped (hidden files, links searched elsewhere)
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

    def reasons(self) -> dict[str, int]:
        return dict(Counter(o.reason for o in self.rejections()))


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
    text: str
    table_html: str | None = None
    scores: HitScores = Field(default_factory=HitScores)
    neighbour_of: int | None = None  # set on chunks added by neighbour expansion: the hit they surround
    duplicates: list[int] = Field(default_factory=list)  # chunk ids folded into this hit by de-duplication

    def to_passage(self, number: int) -> Passage:
        """This hit as the generator's numbered passage."""
        return Passage(number=number, text=self.text, title=self.document.title, page=self.page, chunk_id=self.chunk_uid)


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
    validation: dict = Field(default_factory=lambda: {"status": "not run"})
    timings: dict[str, float] = Field(default_factory=dict)
