"""Citation markers in answer text: find them, drop the ones naming missing passages, renumber.

After decoding, markers are renumbered in order of first use ("[3] ... [1]" -> "[1] ... [2]") and the
reference list is built from the same pass, so text and list always agree. Both generators (diffusion and
autoregressive) go through `finalize_citations`, so they are compared on equal terms.
"""

from __future__ import annotations

import re
from typing import Sequence

from .types import Citation, Passage

# "[3]", "[1, 2]", "[1][2]" (the last is two matches). Only plain integers are markers.
MARKER_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def find_markers(text: str) -> list[int]:
    """Passage numbers cited in `text`, in order of appearance (with repeats)."""
    out: list[int] = []
    for m in MARKER_RE.finditer(text):
        out.extend(int(n) for n in m.group(1).split(","))
    return out


def finalize_citations(text: str, passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
    """Renumber markers by first use, drop markers naming passages not given, and build the list.

    Returns the rewritten text and one Citation per distinct cited passage, ordered by new marker.
    """
    by_number = {p.number: p for p in passages}
    new_of: dict[int, int] = {}

    def renumber(m: re.Match) -> str:
        kept: list[int] = []
        for n in (int(x) for x in m.group(1).split(",")):
            if n not in by_number:
                continue
            new_of.setdefault(n, len(new_of) + 1)
            if new_of[n] not in kept:
                kept.append(new_of[n])
        return "".join(f"[{k}]" for k in kept)

    out = MARKER_RE.sub(renumber, text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)  # a dropped marker leaves "word ." behind
    out = re.sub(r"[ \t]{2,}", " ", out).strip()
    citations = [
        Citation(marker=new, passage_number=old, chunk_id=by_number[old].chunk_id)
        for old, new in sorted(new_of.items(), key=lambda kv: kv[1])
    ]
    return out, citations
