"""Types that cross package lines: the ingest report (and, re-exported, the generator's types).

All are pydantic models and serialize to JSON.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from generator.types import (  # noqa: F401  (re-exported: the public names live here)
    Citation,
    DenoiseState,
    DiffusionConfig,
    GenerationRequest,
    GenerationResult,
    GenerationTrace,
    Passage,
)


class FileOutcome(BaseModel):
    """What happened to one input path."""

    path: str
    status: str  # ingested | updated | unchanged | removed | rejected
    reason: str = ""
    detail: str = ""
    file_type: str = ""
    chunks: int = 0


class IngestReport(BaseModel):
    """The result of one ingest run: counts, per-file outcomes, timings."""

    files_seen: int = 0
    ingested: int = 0
    unchanged: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    pages: int = 0
    parsed: int = 0
    embedded_chunks: int = 0
    still_quarantined: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)
    outcomes: list[FileOutcome] = Field(default_factory=list)

    def rejections(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    def reasons(self) -> dict[str, int]:
        return dict(Counter(o.reason for o in self.rejections()))
