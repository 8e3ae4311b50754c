"""Validate: a parsed file becomes a ValidDocument (pydantic) or an IngestError with a reason.

Checks: enough text (empty), text that is mostly replacement/control characters or has too few letters
and digits (garbled). Duplicate content is checked by the caller against the store (it needs the store).
"""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import IngestSettings
from pipeline.errors import IngestError

from .parse import Element, ParsedFile


class ValidDocument(BaseModel):
    """A parsed document that passed validation; what the chunker receives."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    title: str
    media_type: str
    file_type: str
    pages: int | None = None
    elements: list[Element] = Field(min_length=1)
    min_chars: int = Field(exclude=True)
    min_alnum_ratio: float = Field(exclude=True)

    @model_validator(mode="after")
    def _text_is_usable(self) -> "ValidDocument":
        text = "\n".join(e.text for e in self.elements)
        visible = [c for c in text if not c.isspace()]
        if len(visible) < self.min_chars:
            raise ValueError(f"empty: {len(visible)} visible characters (minimum {self.min_chars})")
        bad = sum(1 for c in visible if c == "\ufffd" or unicodedata.category(c) in {"Cc", "Co", "Cs"})
        if bad / len(visible) > 0.02:
            raise ValueError(f"garbled: {bad / len(visible):.0%} replacement or control characters")
        alnum = sum(1 for c in visible if c.isalnum())
        if alnum / len(visible) < self.min_alnum_ratio:
            raise ValueError(f"garbled: only {alnum / len(visible):.0%} letters and digits")
        return self

    @property
    def text_chars(self) -> int:
        return sum(len(e.text) for e in self.elements)


def validate_parsed(parsed: ParsedFile, settings: IngestSettings) -> ValidDocument:
    if not parsed.elements:
        raise IngestError("empty", "no text could be extracted")
    try:
        return ValidDocument(
            title=parsed.title,
            media_type=parsed.media_type,
            file_type=parsed.file_type,
            pages=parsed.pages,
            elements=parsed.elements,
            min_chars=settings.min_chars,
            min_alnum_ratio=settings.min_alpha_ratio,
        )
    except ValidationError as e:
        msg = e.errors()[0]["msg"].removeprefix("Value error, ")
        reason, _, detail = msg.partition(": ")
        raise IngestError(reason if reason in {"empty", "garbled"} else "parse error", detail or msg) from None
