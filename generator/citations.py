"""Citation markers in answer text: find them, drop the ones naming missing passages, renumber.

After decoding, markers are renumbered in order of first use ("[3] ... [1]" -> "[1] ... [2]") and the
reference list is built from the same pass, so text and list always agree. Both generators (diffusion and
autoregressive) go through `finalize_citations`, so they are compared on equal terms.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from pipeline.text import MARKER_RE
from pipeline.types import Citation, Passage


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
    # a dropped marker leaves "word ." behind; punctuation that opens a word stays where it is, so a quote of
    # "creates .nojekyll" or "In .htaccess files" is not glued into "creates.nojekyll"
    out = re.sub(r"[ \t]+([.,;:!?])(?=\s|$|[\[\]\"')])", r"\1", out)
    out = re.sub(r"[ \t]{2,}", " ", out).strip()
    citations = [
        Citation(marker=new, passage_number=old, chunk_id=by_number[old].chunk_id)
        for old, new in sorted(new_of.items(), key=lambda kv: kv[1])
    ]
    return out, citations


def written_spans(text: str, sources: Mapping[int, str]) -> list[tuple[int, int]]:
    """The character spans of `text` its generator wrote rather than quoted: in each piece before a marker,
    the words in front of the longest tail that is verbatim (whitespace aside) in a passage the marker
    names ("and" in "... [1] and Raducanu won [2]"); a piece with no verbatim tail is written whole. Text
    after the last marker counts only when it holds a word. `sources`: marker number -> the passage text."""
    flat = {n: " ".join(t.split()) for n, t in sources.items()}
    out: list[tuple[int, int]] = []
    pos = 0
    for m in [*MARKER_RE.finditer(text), None]:
        end = m.start() if m else len(text)
        words = [(w.start(), w.end()) for w in re.finditer(r"\S+", text[pos:end])]
        cited = [flat[n] for n in (int(x) for x in m.group(1).split(",")) if n in flat] if m else []
        if words and (m or any(c.isalnum() for c in text[pos:end])):
            tail = next((i for i in range(len(words))
                         if any(" ".join(text[pos + words[i][0]: pos + words[-1][1]].split()) in c for c in cited)),
                        len(words))
            wordy = [any(c.isalnum() for c in text[pos + a: pos + b]) for a, b in words[:tail]]
            first = wordy.index(True) if True in wordy else tail  # punctuation left by "[1]. Y" is no writing
            if first < tail:
                out.append((pos + words[first][0], pos + words[tail - 1][1]))
        pos = m.end() if m else end
    return out
