"""Page furniture: running headers and footers, page numbers and "Table of Contents" back-links, found
per document and dropped from its parsed elements before chunking.

A line is furniture when it sits at the same edge of most pages: among the first or last EDGE elements
of a page, at most MAX_CHARS long, and the same line, digits aside ("Page 3 of 20" is "Page 4 of 20"),
at that edge on at least `max(MIN_PAGES, SHARE x pages)` of the document's pages. Where the parser glued
a running header onto the start of a page's first element ("ACME Corp. | Q3 2023 Form 10-Q | 18
Liquidity and Capital Resources The Company ..."), the repeated prefix is cut off and the rest kept.
Footers are not cut off the end of a page's last element: sentences end alike too often ("... in the
quarter."), and the parser already drops lines in a page's bottom margin as Footer.

Invariants: tables are never touched (a table's header repeated on every page of a long table is
content); documents without page numbers (HTML, most DOCX) or with fewer than MIN_PAGES pages come
back unchanged; nothing is dropped for repeating alone, only short text at a page's edge on most pages.
Pure functions over `ingest.parse.Element` lists (kind, text, page); elements are replaced, never
mutated.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    from .parse import Element

EDGE = 3  # elements at each end of a page that may be furniture (a header is often split in two or three)
MAX_CHARS = 120  # furniture is a line, not a paragraph
MIN_PAGES = 3  # a line on 2 pages of 2 proves nothing
SHARE = 0.5  # "most pages": a cover page or a chapter opening without the header still counts
MIN_GLUED_TOKENS = 3  # a glued prefix this long at least ("ACME Corp ."), never one word ("The")
MAX_GLUED_TOKENS = 30
GLUED_KEEP = 0.9  # a glued prefix grows only while this share of the pages that carry it agree
KEEP_KINDS = {"Table"}

PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-–—(\[]?\s*(?:\d+|[ivx]{1,5})\s*[-–—)\]]?(?:\s*(?:of|/)\s*\d+)?$", re.I)
TOKEN = re.compile(r"\d+|[^\W\d_]+|[^\w\s]")  # digits, letters and punctuation apart: "18Liquidity" is two


@dataclass
class Furniture:
    """What was found on a document's pages: the lines dropped and the prefix cut."""

    top: set[str] = field(default_factory=set)  # keys of lines dropped at the top of pages
    bottom: set[str] = field(default_factory=set)
    glued: set[tuple[str, ...]] = field(default_factory=set)  # normalised token prefixes cut off pages' first elements
    header: str = ""  # the most common running header, page number removed ("ACME Corp. | Q3 2023 Form 10-Q")
    footer: str = ""
    dropped: int = 0  # elements dropped
    cut: int = 0  # glued prefixes cut off

    def __bool__(self) -> bool:
        return bool(self.dropped or self.cut)


def key(text: str) -> str:
    """A line as furniture is compared: lower case, spaces collapsed, digit runs as '#', and any page
    number alone ("18", "- 4 -", "iv", "Page 3 of 20") as '<page>'."""
    text = " ".join(text.split())
    if PAGE_NUMBER.match(text):
        return "<page>"
    return re.sub(r"\d+", "#", text.lower())


def strip_furniture(elements: Sequence[Element]) -> tuple[list[Element], Furniture]:
    """`elements` without running headers, footers and page numbers, and what was found."""
    pages = _pages(elements)
    need = max(MIN_PAGES, math.ceil(len(pages) * SHARE))
    found = Furniture()
    if len(pages) < need:
        return list(elements), found
    found.top, found.bottom = _edge_lines(elements, pages, need)
    out = dict(enumerate(elements))
    removed: dict[str, dict[int, list[str]]] = {"top": defaultdict(list), "bottom": defaultdict(list)}  # zone -> page -> texts
    for i, zone in _edge_positions(elements, pages):
        if i in out and key(elements[i].text) in (found.top if zone == "top" else found.bottom):
            removed[zone][elements[i].page].append(elements[i].text)
            del out[i]
            found.dropped += 1
    kept = {p: [i for i in idx if i in out] for p, idx in pages.items()}
    # glued headers: the prefix most pages' first elements share, and the header lines dropped elsewhere
    mined = _glued(out, kept, need)
    dropped_lines = (tuple(_norm(w) for w in TOKEN.findall(t)) for texts in removed["top"].values() for t in texts)
    found.glued = {g for g in [mined, *dropped_lines] if _header_like(g)}
    longest_first = sorted(found.glued, key=len, reverse=True)
    for page, idx in kept.items() if found.glued else ():
        i = _first_element(out, idx)
        while i in out:  # "Table of Contents" then "ACME Corp. | ... | 18": cut one prefix after the other
            rest, part = next((c for g in longest_first if (c := _cut(out[i].text, g))[1]), (out[i].text, ""))
            if not part:
                break
            removed["top"][page].append(part)
            found.cut += 1
            if rest:
                out[i] = dataclasses.replace(out[i], text=rest)
            else:
                del out[i]
    found.header, found.footer = _label(removed["top"]), _label(removed["bottom"])
    return list(out.values()), found


def _pages(elements: Sequence[Element]) -> dict[int, list[int]]:
    """Element positions by page number, in document order; elements without a page are not paged."""
    pages: dict[int, list[int]] = defaultdict(list)
    for i, el in enumerate(elements):
        if el.page is not None:
            pages[el.page].append(i)
    return pages


def _edge_positions(elements: Sequence[Element], pages: dict[int, list[int]]) -> Iterator[tuple[int, str]]:
    """(position, "top"|"bottom") of each short, non-table element among a page's first or last EDGE."""
    for idx in pages.values():
        for zone, edge in (("top", idx[:EDGE]), ("bottom", idx[-EDGE:])):
            for i in edge:
                if elements[i].kind not in KEEP_KINDS and len(elements[i].text) <= MAX_CHARS:
                    yield i, zone


def _edge_lines(elements: Sequence[Element], pages: dict[int, list[int]], need: int) -> tuple[set[str], set[str]]:
    """Keys of the lines at the top / at the bottom of at least `need` pages."""
    pages_at: dict[tuple[str, str], set[int]] = defaultdict(set)  # (zone, key) -> pages
    for i, zone in _edge_positions(elements, pages):
        pages_at[zone, key(elements[i].text)].add(elements[i].page)
    found = {(zone, k) for (zone, k), where in pages_at.items() if len(where) >= need}
    return {k for zone, k in found if zone == "top"}, {k for zone, k in found if zone == "bottom"}


def _first_element(out: dict[int, Element], idx: list[int]) -> int | None:
    """Position of a page's first element still kept, unless it is a table."""
    i = next((i for i in idx if i in out), None)
    return None if i is None or out[i].kind in KEEP_KINDS else i


def _norm(token: str) -> str:
    return "#" if token.isdigit() else token.lower()


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(normalised token, start, end): digit runs as '#', lower case."""
    return [(_norm(m.group()), m.start(), m.end()) for m in TOKEN.finditer(text)]


def _glued(out: dict[int, Element], kept: dict[int, list[int]], need: int) -> tuple[str, ...]:
    """The token prefix that the first elements of at least `need` pages share.

    It starts with the MIN_GLUED_TOKENS tokens most pages share and grows while nearly all of those pages
    (GLUED_KEEP) still agree: a body that happens to start with "The" on 60% of pages is not header.
    It must hold two words and end within MAX_CHARS. One of words only ("Table of Contents") must be
    followed by the start of a line (not a lower-case word) on nearly all those pages; one with digits
    or punctuation ("ACME Corp. | Q3 2023 Form 10-Q | 18") may run into a sentence continued from the
    page before. A prefix that never stops growing is repeated content, not a header: nothing is cut."""
    raw = [TOKEN.findall(out[i].text)[: MAX_GLUED_TOKENS + 1] for idx in kept.values() if (i := _first_element(out, idx)) is not None]
    heads = [[_norm(t) for t in toks[:MAX_GLUED_TOKENS]] for toks in raw]
    common = Counter(tuple(t[:MIN_GLUED_TOKENS]) for t in heads if len(t) >= MIN_GLUED_TOKENS).most_common(1)
    if not common or common[0][1] < need:
        return ()
    best, base = common[0]
    while len(best) < MAX_GLUED_TOKENS:
        nxt = Counter(t[len(best)] for t in heads if len(t) > len(best) and tuple(t[: len(best)]) == best).most_common(1)
        if not nxt or nxt[0][1] < max(need, GLUED_KEEP * base):
            break
        best += (nxt[0][0],)
    if len(best) >= MAX_GLUED_TOKENS:
        return ()
    if all(t.isalpha() for t in best):  # words only: a header only if what follows starts a line
        nexts = [t[len(best)] for t in raw if len(t) > len(best) and tuple(x.lower() for x in t[: len(best)]) == best]
        if sum(not x[0].islower() for x in nexts) < GLUED_KEEP * len(nexts):
            return ()  # "This page explains | hiring and ...": a shared sentence opening
    return best


def _header_like(tokens: tuple[str, ...]) -> bool:
    """Long enough to be told from a sentence opening, short enough to be a line: 3+ tokens, 2+ words."""
    words = sum(t.isalpha() for t in tokens)
    return len(tokens) >= MIN_GLUED_TOKENS and words >= 2 and sum(len(t) + 1 for t in tokens) <= MAX_CHARS


def _cut(text: str, tokens: tuple[str, ...]) -> tuple[str, str]:
    """(`text` without the glued `tokens` at its start, the part cut off); `text` and '' when they are not there."""
    toks = _tokens(text)
    if len(toks) < len(tokens) or tuple(t for t, _, _ in toks[: len(tokens)]) != tokens:
        return text, ""
    end = toks[len(tokens) - 1][2]
    return text[end:].strip(), text[:end].strip()


def _label(removed: dict[int, list[str]]) -> str:
    """The running header (footer) most pages carry, without its page number: the parts removed from
    one page joined by " | " ("ACME Corp. | Q3 2023 Form 10-Q"); '' when there is none."""
    variants = Counter(
        parts for texts in removed.values() if (parts := tuple(p for t in texts if (p := _without_page_number(t))))
    )
    return " | ".join(variants.most_common(1)[0][0]) if variants else ""


def _without_page_number(text: str) -> str:
    """'ACME Corp. | Q3 2023 Form 10-Q | 18' -> 'ACME Corp. | Q3 2023 Form 10-Q'."""
    text = re.sub(r"(?:\s*[|·•–—-]\s*)?(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?\s*$", "", text, flags=re.I)
    text = re.sub(r"^(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?\s*(?:[|·•–—-]\s*)?", "", text, flags=re.I)
    return text.strip()
