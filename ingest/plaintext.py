"""Plain text in a <pre>: its wrapped paragraphs and bulleted lists, before unstructured reads them.

Manuals written as plain text and published as HTML keep their text in <pre>, wrapped at 80 columns by hand
(HAProxy's guides, converted by its dconv tool; RFCs and Internet-Drafts as the IETF renders them; FAQs and
READMEs of many projects):

    Once in a while, someone reports that after a system reboot, the haproxy
    service wasn't started, and that once they start it by hand it works. ...

      - stick-tables are replicated between all nodes in a multi-master fashion;

        global
            maxconn 100

unstructured reads that as code: every line a line of its own, so a sentence was cut at each line's end ("The
fix doesn't consist in delaying the") and chunks began and ended mid-sentence. `restructure_plain_text` puts
HTML in such a <pre>'s place:

- a block of lines at one indent, each but the last reaching to within WRAP_SLACK columns of the text's
  right margin (the MARGIN quantile of its lines' lengths), the last ending as a sentence or a lead-in does,
  and reading as words rather than code (PROSE_SHARE of each line's tokens plain words or numbers; no comment,
  prompt or quoted line, no aligned columns, no line continued by a backslash), is a paragraph (<p>): its
  lines joined, a word hyphenated at a line's end whole again (ingest/manpage.py's rule); so is a lone
  sentence at the text's left margin ("Example :");
- a bulleted item ("- ", "* ", "o ", "1. ", "2) ", "a) ": manpage.BULLET) with its lines below it indented to
  its text is a list item (<li>), consecutive items one list, where each item is prose or a short name ("-
  check-sni");
- anything else (a configuration example, a command, a table drawn in text) stays preformatted, its blank
  lines and indentation kept.

Only a <pre> that reads as wrapped prose is touched: its paragraphs and items hold at least MIN_PROSE of its
lines, and at least MIN_WRAPS of their lines run on into the next (or they hold all of its lines: "Abort and
destroy a temporary CA file update transaction." and a "See also" line under a command's name). A manual
page in a <pre> is ingest/manpage.py's; code, logs and examples are left as they are.
"""

from __future__ import annotations

import re
from collections import Counter

from .manpage import BULLET, WORD, Node, indent, join_lines, replace_pres

WRAP_SLACK = 24  # a wrapped line ends within this many columns of the text's right margin
PROSE_SHARE = 0.8  # of a prose line's tokens, plain words or numbers
MIN_PROSE = 0.5  # of a <pre>'s non-blank lines, in paragraphs and list items
MARGIN = 0.9  # the text's right margin: this quantile of its lines' lengths
MIN_WIDTH = 60  # a text narrower than this is no wrapped prose (a short list, a table, a log excerpt)
MIN_WRAPS = 3  # lines that run on into the next, in its paragraphs and items
NAME_WORDS = 3  # an item of one line this short may be a name, words or not
_LEAD = re.compile(r"^( *)(\S+)( +)(?=\S)")  # a first token and the spaces after it (a bullet: BULLET)
_END = re.compile(r"[.:?!][)\"'\u2019\u201d]*$")  # a sentence's or a lead-in's end
_MARKS = {":", ";", "-", "\u2013", "\u2014", "!", "?"}  # punctuation written apart from the words
_NOT_PROSE = ("#", "//", ";", "--", "%", ">", "$", "|")  # a comment's, a prompt's, a quote's, a table's start
_PLAIN = re.compile(r"^[(\"'\u2018\u201c]?(?:[A-Za-z]+(?:['\u2019-][A-Za-z]+)*|\d+(?:[.,]\d+)*%?)"  # a word, a number
                    r"[.,;:!?)\"'\u2019\u201d]*$")


def restructure_plain_text(doc) -> int:
    """Replace each <pre> of `doc` (an lxml.html document) that holds wrapped plain text by its paragraphs,
    lists and preformatted blocks (see the module docstring), in place; how many were replaced."""
    return replace_pres(doc, read_plain_text)


def read_plain_text(text: str) -> list[Node] | None:
    """The paragraphs, list items and preformatted blocks of `text` when it is wrapped prose, else None."""
    lines = [line.rstrip() for line in text.expandtabs().split("\n")]
    body = [line for line in lines if line.strip()]
    if len(body) < 2:
        return None
    width = sorted(map(len, body))[int(MARGIN * (len(body) - 1))]  # (not the longest: one line may run over)
    if width < MIN_WIDTH:
        return None
    left = min(indent(line) for line in body)
    words = Counter(w.lower() for line in body for w in WORD.findall(line))
    out: list[Node] = []
    kept: list[str] = []  # lines that stay preformatted, blank ones included, until the next paragraph or item
    prose = wrapped = 0
    for block in _blocks(lines):
        items = _items(block, width)
        if items is not None:
            nodes = [Node("li", children=[Node("p", join_lines(item, words))]) for item in items]
            wrapped += sum(len(item) - 1 for item in items)
        elif _paragraph(block, width) or (len(block) == 1 and indent(block[0]) == left and _sentence(block[0])):
            nodes = [Node("p", join_lines(block, words))]
            wrapped += len(block) - 1
        else:
            kept.extend([*block, ""])
            continue
        prose += len(block)
        _flush(kept, out)
        out.extend(nodes)
    _flush(kept, out)
    if prose < MIN_PROSE * len(body) or (wrapped < MIN_WRAPS and prose < len(body)):
        return None
    return out


def _blocks(lines: list[str]):
    """Runs of non-blank lines."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _prose(line: str) -> bool:
    """A line of words: PROSE_SHARE of its tokens plain words or numbers (not names with dots, calls, options
    or markup, which code, commands and logs are made of); not a comment, a prompt or a quoted line, nor a row
    of aligned columns (three spaces in a row)."""
    tokens = [t for t in line.split() if t not in _MARKS]  # ("Example :", "it - and")
    return (bool(tokens) and not line.endswith("\\") and not tokens[0].startswith(_NOT_PROSE)
            and "   " not in line.strip() and sum(bool(_PLAIN.match(t)) for t in tokens) >= PROSE_SHARE * len(tokens))


def _paragraph(block: list[str], width: int) -> bool:
    """Lines at one indent, each but the last wrapped at the right margin, all of them words, the last ending
    as a sentence or a lead-in does."""
    return (len(block) > 1 and len({indent(line) for line in block}) == 1 and bool(_END.search(block[-1]))
            and all(len(line) >= width - WRAP_SLACK for line in block[:-1]) and all(map(_prose, block)))


def _sentence(line: str) -> bool:
    """A line of prose that ends as a sentence or a lead-in does."""
    return _prose(line) and len(line.split()) >= 2 and bool(_END.search(line))


def _items(block: list[str], width: int) -> list[list[str]] | None:
    """A block of bulleted items: each a bullet line and the lines below it indented to its text (the bullet
    dropped); None when any line is neither, or an item reads neither as prose nor as a name."""
    items: list[list[str]] = []
    at = None  # where the current item's text starts
    for line in block:
        m = _LEAD.match(line)
        if m and BULLET.match(m.group(2)) and (at is None or len(m.group(1)) < at):
            at = m.end()
            items.append([line[at:]])
        elif at is not None and indent(line) == at:
            items[-1].append(line[at:])
        else:
            return None
    for item in items:
        named = len(item) == 1 and len(item[0].split()) <= NAME_WORDS  # ("- force-sslv3/tlsv10": a name)
        if not (named or all(map(_prose, item))) or any(len(line) + (at or 0) < width - WRAP_SLACK
                                                        for line in item[:-1]):
            return None
    return items


def _flush(kept: list[str], out: list[Node]) -> None:
    """The preformatted lines gathered so far as one <pre>, less their common indent; `kept` emptied."""
    while kept and not kept[-1].strip():
        kept.pop()
    if kept:
        cut = min(indent(line) for line in kept if line.strip())
        out.append(Node("pre", "\n".join(line[cut:] for line in kept)))
    kept.clear()
