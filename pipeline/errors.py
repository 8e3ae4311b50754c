"""The error hierarchy: everything sculptrag raises on purpose derives from SculptragError.

Messages say what went wrong and how to fix it; wrapped errors are chained with `from e`.
"""

from __future__ import annotations


class SculptragError(Exception):
    """Root of all errors raised by sculptrag."""


class ConfigError(SculptragError, ValueError):
    """A setting or argument is invalid."""


class ModelLoadError(SculptragError):
    """A model could not be loaded from a local path or package."""


class StoreError(SculptragError):
    """The store could not be opened, read or written."""


class IngestError(SculptragError):
    """A file could not be ingested (the reason says why); the run goes on with the next file."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class GenerationError(SculptragError):
    """The generator could not produce an answer."""
