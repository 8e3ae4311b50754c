"""Markdown written a paragraph to a line, with no blank line between paragraphs.

Markdown joins consecutive lines into one paragraph: a writer wraps a long paragraph at 72 or 80 columns and
the reader sees one paragraph. Text exported or generated as Markdown often does the opposite: each paragraph,
heading and list line on a line of its own, separated by a single line break. Markdown then reads a whole
article as one paragraph (chunking_eval's WikiText file: 338 lines, one element of 117,000 characters), and
the headings and short lines are glued to the sentences around them ('... says " Jesus Saves ". = = Track
listings = = " There 's Got to Be a Way " ( Original album version ) ...'): a quote runs over them.

A block of consecutive plain lines (no list marker, heading, quote, table, code or HTML: BLOCK_RE) is written a
paragraph to a line when its lines are not wrapped: at least two of them are longer than LONG_LINE characters,
which no one wraps at, and such lines hold at least half of its text. Then each of its lines is a paragraph
of its own. A wrapped paragraph with one long line in it (a URL) is left as Markdown reads it.
"""

from __future__ import annotations

import re

LONG_LINE = 200
BLOCK_RE = re.compile(r"^ {0,3}(?:[-*+]\s|\d{1,9}[.)]\s|#|>|<|=+\s*$|-+\s*$|\[[^\]]+\]:)|^(?: {4}|\t)|\|")
FENCE_RE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})")


def plain_lines(lines: list[str]) -> list[bool]:
    """For each line: is it paragraph text (not blank, not in a code fence, not Markdown block syntax)?"""
    fenced, out = False, []
    for line in lines:
        if FENCE_RE.match(line):
            fenced = not fenced
            out.append(False)
        else:
            out.append(not fenced and bool(line.strip()) and not BLOCK_RE.search(line))
    return out


def unwrapped(block: list[str]) -> bool:
    """Lines written a paragraph each (module docstring)."""
    long = [len(line) for line in block if len(line) > LONG_LINE]
    return len(long) >= 2 and sum(long) >= 0.5 * sum(len(line) for line in block)


def split_unwrapped(text: str) -> str | None:
    """`text` with a blank line between the lines of each block written a paragraph to a line; None when it has
    no such block."""
    lines = text.split("\n")
    plain = plain_lines(lines)
    out: list[str] = []
    changed, i = False, 0
    while i < len(lines):
        j = i
        while plain[i] and j + 1 < len(lines) and plain[j + 1]:
            j += 1
        block = lines[i:j + 1]
        if j > i and unwrapped(block):
            out.append("\n\n".join(block))
            changed = True
        else:
            out.extend(block)
        i = j + 1
    return "\n".join(out) if changed else None
