"""Manual pages rendered as text in one <pre>: their sections, paragraphs and entries, before unstructured reads them.

Many projects publish their man pages as HTML by wrapping `man`'s text output in a <pre> (Postfix's whole
reference, man2html and a good many "manual page" links of hand-written sites):

    SMTPD(8)                                                              SMTPD(8)

    NAME
           smtpd - Postfix SMTP server
    ...
           smtpd_tls_auth_only (no)
                  When TLS encryption is optional in the Postfix SMTP server,  do
                  not announce or accept SASL authentication over unencrypted con-
                  nections.

unstructured reads that as one code snippet: the chunks were slices of it at arbitrary lines, a section title
ran into the sentence before it ("... bounce notifications. MAIL QUEUES The qmgr(8) daemon ..."), words stayed
split at the end of a line ("con- nections") and an entry's description was cut off from its name.
`restructure_manpages` reads the layout the way `man` wrote it and puts HTML in the <pre>'s place:

- a line that starts in the first columns and is in capitals is a section title (<h2>; <h3> when indented a
  little, a subsection); the page's header and footer lines ("SMTPD(8) ... SMTPD(8)") go;
- a block of lines with one indent, each but the last running to the right margin, is a filled paragraph
  (<p>): its lines are joined, the spaces that justified them collapsed, and a word hyphenated at a line's end
  joined again ("con-" "nections": "connections"; kept as "single-process" where the page writes the word
  with its hyphen elsewhere);
- a tagged paragraph, a tag at one indent and its text at a deeper one (on the tag's line, "DUNNO  Pretend
  that the lookup key was not found", or on the lines below), is a definition: <dt> the tag, <dd> the text and
  every block under it at that indent or deeper (the tag "o", "*" or "1)" makes a list item instead); the
  definition lists are then joined to their terms as on any page (ingest/definitions.py);
- anything else (an example, a configuration excerpt, an address) stays preformatted, less its common indent.

Only a <pre> that reads as a manual page is touched: at least MIN_SECTIONS section titles at the left margin,
among them NAME or under the page's "TITLE(N) ... TITLE(N)" header, and nearly every other line indented.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_SECTIONS = 2  # section titles at the left margin
INDENTED = 0.9  # at least this share of the other non-blank lines is indented
FILL_SLACK = 16  # a filled line ends within this many columns of the page's right margin
TAB = 7  # columns from a tag to its text, by default (`man`'s .TP indent)
MAX_SHARED = 60  # characters of a tag alone on its line, whose text is the next tag's
MAX_TAG = 160  # characters of a tag on lines of its own (ingest/definitions.py joins no longer term)
_HEADER = re.compile(r"^(\S+)\((\w+)\)\s.*\s\1\(\w+\)$")  # "SMTPD(8)   System Manager's Manual   SMTPD(8)"
_FOOTER = re.compile(r"\S+\(\w+\)$")  # "Postfix 3.7   2023-01-01   SMTPD(8)", right-aligned
_TITLE = re.compile(r"^[A-Z][A-Z0-9 ,/&()'._-]*[A-Z0-9)]$")
BULLET = re.compile(r"^(?:[o*+\u2022\u00b7-]|\(?\d{1,2}[.)]|\(?[a-z][.)])$")
_HYPHENATED = re.compile(r"([A-Za-z]+)-$")
WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


@dataclass
class Node:
    kind: str  # "h2", "h3", "p", "pre", "dt" (a definition: tag and children), "li" (a list item)
    text: str = ""
    children: list["Node"] = field(default_factory=list)


def restructure_manpages(doc) -> int:
    """Replace each <pre> of `doc` (an lxml.html document) that holds a rendered manual page by its structure
    (see the module docstring), in place; how many were replaced."""
    return replace_pres(doc, read_manpage)


def replace_pres(doc, read: Callable[[str], list[Node] | None]) -> int:
    """Replace each <pre> of `doc` whose text `read` gives nodes for by those nodes' HTML, in place (a text after
    the <pre>, inside its parent, is kept as a paragraph after them); how many were replaced."""
    done = 0
    for pre in list(doc.iter("pre")):
        parent = pre.getparent()
        nodes = read(pre.text_content()) if parent is not None else None
        if nodes is None:
            continue
        at = parent.index(pre)
        elements = list(_elements(nodes))
        if (pre.tail or "").strip():
            elements.append(_element("p", pre.tail.strip()))
        parent.remove(pre)
        for offset, el in enumerate(elements):
            parent.insert(at + offset, el)
        done += 1
    return done


def read_manpage(text: str) -> list[Node] | None:
    """The structure of `text` when it is a manual page as `man` renders it, else None."""
    lines = [line.rstrip() for line in text.expandtabs().split("\n")]
    body = [i for i, line in enumerate(lines) if line.strip()]
    if not body:
        return None
    header = bool(_HEADER.match(lines[body[0]].strip()))
    if header:
        lines[body[0]] = ""
    last = lines[body[-1]]
    if indent(last) >= 20 and _FOOTER.search(last):
        lines[body[-1]] = ""
    titles = [line for line in lines if _title(line) and indent(line) == 0]
    others = [line for line in lines if line.strip() and not _title(line)]
    if (len(titles) < MIN_SECTIONS or not (header or "NAME" in titles)
            or sum(indent(line) > 0 for line in others) < INDENTED * len(others)):
        return None
    width = max(len(line) for line in lines)
    words = Counter(w.lower() for line in lines for w in WORD.findall(line))
    out: list[Node] = []
    stack: list[tuple[int, list[Node]]] = [(0, out)]  # (the indent a container's text starts at, its children)
    blocks = list(_blocks(lines))
    shared: list[str] = []  # tags that share the next tag's text (".TP -e" ".TP -f": "-e queue_id, -f queue_id")
    tabs: dict[int, int] = {}  # a tag's indent -> where its text starts, in the last tagged paragraph there
    for at, block in enumerate(blocks):
        if len(block) == 1 and _title(block[0]):
            out.append(Node("h2" if indent(block[0]) == 0 else "h3", block[0].strip()))
            stack = [(0, out)]
            continue
        first = indent(block[0])
        while len(stack) > 1 and first < stack[-1][0]:
            stack.pop()
        if len(stack) == 1 and stack[0][0] == 0:
            stack[0] = (first, out)  # a section's text starts where its first paragraph does
        deeper = first > stack[-1][0]  # than its context's text: an example, unless it is a bulleted item
        tab = tabs.get(first, first + TAB)
        tagged = _tagged(block, width, words, tab)
        if tagged is not None and deeper and not BULLET.match(tagged[0]):
            tagged = None
        elif tagged is None and not deeper and _shares_text(blocks, at, width, words, tab):
            shared.append(block[0].strip())
            continue
        if tagged is None:
            stack[-1][1].append(_text_node(block, deeper, width, words))
            continue
        tag, text_at, rest = tagged
        node = Node("li" if BULLET.match(tag) else "dt", ", ".join([*shared, tag]))
        shared, tabs[first] = [], text_at
        if rest:
            node.children.append(_text_node(rest, False, width, words))
        stack[-1][1].append(node)
        stack.append((text_at, node.children))
    return out


def indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _title(line: str) -> bool:
    """A section title: in capitals, at the left margin (a subsection's: up to 3 columns in)."""
    return bool(line.strip()) and indent(line) <= 3 and bool(_TITLE.match(line.strip()))


def _blocks(lines: list[str]):
    """Runs of non-blank lines; a section title is a run of its own (`man` writes the text right under it)."""
    block: list[str] = []
    for line in lines:
        if not line.strip():
            if block:
                yield block
            block = []
        elif _title(line):
            if block:
                yield block
            yield [line]
            block = []
        else:
            block.append(line)
    if block:
        yield block


def _tagged(block: list[str], width: int, words: Counter, tab: int | None) -> tuple[str, int, list[str]] | None:
    """A tagged paragraph's tag, the indent of its text and its text's lines; None for any other block.

    The tag is on the text's first line when it fits in the indent ("DUNNO  Pretend that ..."), else on lines
    of its own: one, several short ones (each a tag of the same text), or one too long for its line that runs
    on to the next ("transport_destination_concurrency_limit ($default_destination_concur-" "rency_limit)").
    A paragraph of one line is tagged only by a bullet, or by a short tag whose text starts where the text of
    the last tagged paragraph at this indent started (`tab`; TAB columns in, before the first one)."""
    first, line0 = indent(block[0]), block[0]
    if len(block) == 1:
        m = re.match(r"(\S+)( {2,})\S", line0[first:])
        if m and (BULLET.match(m.group(1)) or first + m.end() - 1 == tab):
            deeper = first + m.end() - 1
            return m.group(1), deeper, [" " * deeper + line0[deeper:]]
        return None
    lines = next((k for k, line in enumerate(block) if indent(line) != first), len(block))  # the tag's lines
    if lines == len(block):
        return None
    deeper = indent(block[lines])
    if deeper <= first or any(indent(line) < deeper for line in block[lines + 1:]):
        return None
    if (lines == 1 and len(line0) >= width - FILL_SLACK and len(line0) > deeper and line0[deeper - 1] == " "
            and line0[deeper] != " " and len(line0[first:deeper].split()) == 1):
        return line0[first:deeper].strip(), deeper, [" " * deeper + line0[deeper:]] + block[1:]
    if lines > 1 and all(_short(line) for line in block[:lines]):
        tag = ", ".join(line.strip() for line in block[:lines])
    elif lines <= 2:
        tag = join_lines(block[:lines], words)
    else:
        return None
    if len(tag) > MAX_TAG or (lines == 2 and tag[-1] in ".:;,"):  # (two lines of a sentence, not a tag)
        return None
    return tag, deeper, block[lines:]


def _short(line: str) -> bool:
    """A line that can be a tag of its own: short (MAX_SHARED characters), not a sentence or a lead-in."""
    line = line.strip()
    return len(line) <= MAX_SHARED and line[-1] not in ".:;,!?"


def _shares_text(blocks: list[list[str]], at: int, width: int, words: Counter, tab: int | None) -> bool:
    """Block `at` is a tag alone whose text is a later tag's: one short line, then only such lines (at its
    indent, each a paragraph), then a tagged paragraph at that indent ("net.work.addr.ess", "net.work.addr",
    "net.work", "net    Matches a remote IPv4 host address ...")."""
    own = indent(blocks[at][0])
    for block in blocks[at:]:
        if indent(block[0]) != own:
            return False
        if len(block) > 1 or not _short(block[0]):
            return block is not blocks[at] and _tagged(block, width, words, tab) is not None
        if _tagged(block, width, words, tab) is not None:
            return block is not blocks[at]
    return False


def _text_node(block: list[str], deeper: bool, width: int, words: Counter) -> Node:
    """A filled paragraph, or the block as it is (an example; a lone line deeper than its context's text)."""
    indents = {indent(line) for line in block}
    filled = len(indents) == 1 and all(len(line) >= width - FILL_SLACK for line in block[:-1])
    if filled and not (deeper and len(block) == 1):
        return Node("p", join_lines(block, words))
    cut = min(indents)
    return Node("pre", "\n".join(line[cut:] for line in block))


def join_lines(block: list[str], words: Counter) -> str:
    """A filled paragraph's lines as one line of single spaces, each word hyphenated at a line's end whole again."""
    text = ""
    for line in block:
        line = " ".join(line.split())
        m = _HYPHENATED.search(text)
        if m and line[:1].islower():
            head = WORD.match(line).group(0)
            keep = words[f"{m.group(1)}-{head}".lower()] > words[(m.group(1) + head).lower()]
            text = text + line if keep else text[:-1] + line
        else:
            text = f"{text} {line}" if text else line
    return text


def _elements(nodes: list[Node]):
    """The HTML elements of `nodes`: consecutive definitions in one <dl>, consecutive list items in one list."""
    group = None
    for node in nodes:
        if node.kind in ("dt", "li"):
            tag = "dl" if node.kind == "dt" else ("ol" if node.text[:1].isdigit() else "ul")
            if group is None or group.tag != tag:
                if group is not None:
                    yield group
                group = _element(tag)
            if node.kind == "dt":
                group.append(_element("dt", node.text))
            holder = _element("dd" if node.kind == "dt" else "li")
            group.append(holder)
            for el in _elements(node.children):
                holder.append(el)
            continue
        if group is not None:
            yield group
            group = None
        yield _element(node.kind, node.text)
    if group is not None:
        yield group


def _element(tag: str, text: str | None = None):
    from lxml import html

    el = html.Element(tag)
    el.text = text
    return el
