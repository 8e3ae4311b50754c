"""Text rules every package shares: citation markers (and later sentences, words, stopwords, the refusal).

One definition each, so the generator that writes a marker, the validator that reads it and the app
that draws it can never disagree.
"""

from __future__ import annotations

import re

# "[3]", "[1, 2]", "[1][2]" (the last is two matches). Only plain integers are markers.
MARKER_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def find_markers(text: str) -> list[int]:
    """Passage numbers cited in `text`, in order of appearance (with repeats)."""
    out: list[int] = []
    for m in MARKER_RE.finditer(text):
        out.extend(int(n) for n in m.group(1).split(","))
    return out
