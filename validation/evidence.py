"""Where in a passage an answer sentence finds its support: the character spans to highlight.

Model-agnostic: it reads the sentence's text and the passage's text only. A sentence quoted verbatim (the
bundled diffusion model quotes) is found as such, whitespace-insensitively; otherwise the passage sentences
sharing the most content words and numbers with the claim are chosen: the best one, plus any other that
covers at least as much of the claim, when it covers at least `min_share` of the claim's terms.
"""

from __future__ import annotations

import re
from typing import Sequence

from pipeline.types import neutralize_markers

from .markup import neutralize_markup_map
from .text import content_terms, numbers, sentence_spans, strip_markers


def evidence_spans(claims: Sequence[str], passage: str, *, min_share: float = 0.5) -> list[tuple[int, int]]:
    """Sorted, merged (start, end) spans of `passage` that support the `claims` (answer sentences; citation
    markers are ignored). Empty when nothing in the passage shares enough with any claim."""
    spans: list[tuple[int, int]] = []
    # a single line break is wrapping (PDF text, hard-wrapped mail), not a sentence end; same length, same offsets
    sentences = sentence_spans(re.sub(r"(?<!\n)\n(?!\n)", " ", passage))
    for claim in claims:
        claim = strip_markers(claim).strip()
        if not claim:
            continue
        exact = _find_verbatim(claim, passage)
        if exact is not None:
            spans.append(exact)
            continue
        terms = content_terms(claim) | set(numbers(claim))
        if not terms:
            continue
        shares = [(len(terms & (content_terms(passage[a:b]) | set(numbers(passage[a:b])))) / len(terms), (a, b))
                  for a, b in sentences]
        best = max((share for share, _ in shares), default=0.0)
        if best >= min_share:
            spans.extend(span for share, span in shares if share >= best)
    return _merge(spans)


def _find_verbatim(claim: str, passage: str) -> tuple[int, int] | None:
    """The claim inside the passage, matching any run of whitespace to any other (end punctuation optional).

    The claim is looked for in the passage as an answer can quote it: as the generator was shown it (markers
    written "(2)", pipeline.types.neutralize_markers) with markup removed as in the final answer
    (validation.markup); the span found is mapped back to the passage's own characters."""
    words = claim.rstrip(".!?;:").split()
    if len(words) < 3:  # too short to be a quote rather than a coincidence
        return None
    shown, index = neutralize_markup_map(neutralize_markers(passage))  # same-length marker rewrite, then markup
    m = re.search(r"\s+".join(map(re.escape, words)) + r"[.!?;:]?", shown)
    return (index[m.start()], index[m.end() - 1] + 1) if m else None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
