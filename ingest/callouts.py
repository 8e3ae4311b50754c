"""Stat callouts in PDFs: a figure printed large over the words that say what it counts, joined into one line.

Reports lay out their key figures as callouts: "2.5" in a large font, and under it "kilograms CO₂e/boe
carbon intensity from our Eastern Mediterranean operations in 2022". A PDF's text comes out in reading order
of its blocks, so a row of three callouts reads "2.5 / 1st / ~70%" and then the three captions: no line holds
a figure with what it measures, and the caption, short and unpunctuated, is taken for a title. Here each
figure is joined to the text block right under it (same page, overlapping columns, starting no further
below it than its own height) into one NarrativeText at the caption's place: "2.5 kilograms CO₂e/boe carbon
intensity from our Eastern Mediterranean operations in 2022".

A figure is a number, percentage, amount or ordinal alone in its block, printed at least CALLOUT_HEIGHT
points tall (a page number or a table's figure is body size); a caption holds at least two words and is no
figure itself. Elements without coordinates are left as they are, and so are elements that share their box
with another (a chart's labels come with the chart's box, not one of their own).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from .tables import element_box

CALLOUT_HEIGHT = 20.0  # points: a figure's box at least this tall (body text and page numbers are ~10-14)
MAX_HEIGHT = 120.0  # and at most this: a taller box around a number is a chart's or a page region's
FIGURE_RE = re.compile(r"^[~≈<>+]?\s?[$€£¥₹`]?\s?\d[\d,.]*\s?(?:%|x|k|m|bn|mn|million|billion|crore|st|nd|rd|th)?\+?$",
                       re.IGNORECASE)
WORD_RE = re.compile(r"[^\W\d_]{2,}")
SKIP = {"Table", "Header", "Footer", "PageNumber", "PageBreak", "Image", "Formula"}


class Box(NamedTuple):
    page: int
    x0: float
    top: float
    x1: float
    bottom: float


def _box(el) -> Box | None:
    """The element's page and box (tables.element_box), or None without either."""
    page, box = getattr(el.metadata, "page_number", None), element_box(el)
    return Box(page, *box) if page and box else None


def is_figure(text: str) -> bool:
    return bool(FIGURE_RE.match(text.strip()))


def _caption_below(figure: Box, boxes: dict[int, Box], texts: dict[int, str], taken: set[int]) -> int | None:
    """The index of the text block right under `figure`, if any: on its page, it starts below the figure's middle and at
    most the figure's height under its bottom, and the two overlap by half the narrower one's width."""
    height, best = figure.bottom - figure.top, None
    for j, b in boxes.items():
        if j in taken or b.page != figure.page or not (figure.top + height / 2 <= b.top <= figure.bottom + height):
            continue
        overlap = min(figure.x1, b.x1) - max(figure.x0, b.x0)
        if overlap < 0.5 * min(figure.x1 - figure.x0, b.x1 - b.x0):
            continue
        if len(WORD_RE.findall(texts[j])) < 2 or is_figure(texts[j]):
            continue
        if best is None or b.top < boxes[best].top:
            best = j
    return best


def join_callouts(raw: list) -> list:
    """unstructured's PDF elements with each stat callout's figure joined to its caption (module docstring)."""
    from unstructured.documents.elements import NarrativeText

    boxes = {i: b for i, el in enumerate(raw) if getattr(el, "category", "") not in SKIP and (b := _box(el))}
    shared = Counter(boxes.values())  # text inside a chart comes with the chart's box, one for all its labels
    boxes = {i: b for i, b in boxes.items() if shared[b] == 1}
    texts = {i: (raw[i].text or "").strip() for i in boxes}
    joined: dict[int, int] = {}  # caption index -> figure index
    for i, b in boxes.items():
        if not CALLOUT_HEIGHT <= b.bottom - b.top <= MAX_HEIGHT or not is_figure(texts[i]):
            continue
        j = _caption_below(b, boxes, texts, set(joined) | set(joined.values()) | {i})
        if j is not None:
            joined[j] = i
    if not joined:
        return raw
    figures = set(joined.values())
    out = []
    for i, el in enumerate(raw):
        if i in figures:
            continue
        if i in joined:
            el = NarrativeText(text=f"{texts[joined[i]]} {texts[i]}", metadata=el.metadata)
        out.append(el)
    return out
