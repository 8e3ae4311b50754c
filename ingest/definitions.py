"""Definition lists in HTML: each term joined to the first line of its definition, before unstructured reads it.

Manuals, man pages, API references and glossaries state most of their facts in definition lists:

    <dt>--autostash</dt><dt>--no-autostash</dt>
    <dd><p>Automatically create a temporary stash entry before the operation begins, ...</p></dd>

unstructured makes the terms and the definition separate elements, so the chunk reads "--autostash" on one
line and "Automatically create a temporary stash entry ..." on the next: the sentence that answers "Which
rebase option stashes my changes first?" does not hold the option, and neither a quote of it nor the
embedding of it says what it defines. `join_definitions` writes the terms into the definition's first text,
"--autostash, --no-autostash: Automatically create a temporary stash entry ...", and drops the <dt>s, so
term and definition are one sentence, as a reader sees them. Terms longer than MAX_TERMS characters (a
whole synopsis line), terms that are questions (a FAQ written as a definition list: the question is the
answer's title, and joined to it a quote of the answer would open with the question) and definitions that
open with code, a table or another list are left as they are.

Outlines do the same with nested lists (DocBook and asciidoc output, word processors' bullets):

    <li><p>"Enhances"</p><ul><li><p>This declares a weak dependency like Suggests but ...</p></li></ul></li>

An item whose own text is a short label (MAX_LABEL characters, not a sentence) followed by a sub-list gets the
same treatment: the label is written into the sub-list's first item, "\"Enhances\": This declares a weak
dependency ...", and dropped. (unstructured reads both as list items, one line each, and the line that
answers "What does the Enhances field declare?" would not name the field.)

API references made by Sphinx put a parameter's name, its default and a dash in one paragraph and its
description in the next (the markup nests a <p> in a <p>, which HTML closes):

    <li><p><strong>pool_timeout=30</strong> – <p>number of seconds to wait before giving up ...</p></p></li>

A paragraph that is only a short term and a dash (MAX_LABEL characters) is written into the paragraph after it,
"pool_timeout=30 – number of seconds to wait before giving up ...", the way Sphinx writes a parameter whose
description fits in one paragraph ("timeout – The number of seconds to wait ..."). In a list item (or a <dd>)
the description's further paragraphs join that one, so the whole entry is one line that opens with its term:
"query_cache_size – size of the cache ... The cache is pruned ... Defaults to 500, ..." (a later sentence is
then read with the term it describes, generator/sculpt/relevance.definition_heads).

A definition of several paragraphs (DocBook's option and setting lists: Valgrind's, PostgreSQL's) says its effect
or its limits in a later paragraph without naming the term: "When set to yes, Memcheck keeps track of the origins
of all uninitialised values." Each further paragraph opens with the term too ("--track-origins=<yes|no> [default:
no]: When set to yes, ..."), where the term is a name, not a signature with parameters, and the list is not a
Python API reference (`_label_paragraphs`).

Some references put an entry's fields in a box above its description: a table of one row, the name and then
"Use: smtp", "Type: time", "Default: 5m" (the Exim specification, above each of its options). The box opens
the paragraph under it, "data_timeout (use smtp, type time, default 5m): This sets a timeout for ...", and the
entry's further paragraphs open with its name (`_join_field_boxes`).
"""

from __future__ import annotations

import re

from .chrome import HEADINGS

MAX_TERMS = 160  # characters of the joined terms
MAX_LABEL = 80  # characters of an outline item's label (a term or a short title, not a sentence)
_LISTS = frozenset({"ul", "ol"})
_NOT_PROSE = frozenset({"pre", "table", "dl", "ul", "ol", "code", "img", "script", "style"})
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)


def join_definitions(markup: str) -> str | None:
    """`markup` with each definition list's terms joined to their definitions, and each outline item's label
    to its sub-list (see the module docstring); None when there was nothing to join (the caller parses the
    original)."""
    if not re.search(r"<(dt|li|table)\b", markup, re.I):  # (Sphinx's parameter entries are list items or <dd>s)
        return None
    doc = read_html(markup)
    if doc is None or not join_definitions_in(doc):
        return None
    from lxml import html as lxml_html

    return lxml_html.tostring(doc, encoding="unicode")


def read_html(markup: str):
    """`markup` as an lxml.html document, or None when lxml cannot read it."""
    from lxml import html as lxml_html

    try:  # lxml refuses a str that declares its own encoding
        return lxml_html.document_fromstring(_XML_DECLARATION.sub("", markup, count=1))
    except Exception:  # noqa: BLE001 - markup lxml cannot read: unstructured gets the original
        return None


def join_definitions_in(doc) -> int:
    """Join the definition lists' terms, and the outline items' labels, in `doc` (an lxml.html document) in
    place; how many were joined."""
    joined = _join_labels(doc) + _join_dashed(doc) + _join_field_boxes(doc) + _qualify_members(doc)
    for dd in list(doc.iter("dd")):
        terms, prev = [], dd.getprevious()
        while prev is not None and prev.tag == "dt":
            terms.insert(0, prev)
            prev = prev.getprevious()
        names = [n for n in (" ".join(t.text_content().split()).rstrip(":") for t in terms) if n]
        label = ", ".join(names)
        if not label or len(label) > MAX_TERMS or any((t.tail or "").strip() for t in terms) or label.endswith("?"):
            continue  # (a question is a FAQ entry's title, not a term: it stays a line above its answer)
        _notes_after_text(dd)
        first = _first_text(dd)
        if first is None:
            continue
        _prefix(first, f"{label}: ")
        if len(label) <= MAX_NAME and not CALL_RE.search(label) and not _python_api(dd):
            _label_paragraphs(dd, first[0], label)
        for t in terms:
            t.drop_tree()
        joined += 1
    return joined


# a box that Sphinx and docutils put before an entry's text: a warning or a note, "New in version 2.0."
NOTE_CLASS_RE = re.compile(r"\b(?:admonition|versionadded|versionchanged|deprecated)\b")


def _notes_after_text(dd) -> None:
    """Where definition `dd` opens with notes (a warning, "New in version 2.0.": `NOTE_CLASS_RE`) and a paragraph
    follows them, that paragraph goes first: the term is joined to what the entry is ("encrypt(nonce, data,
    associated_data): Encrypts and authenticates the data ..."), and the notes follow it. (Joined to the notes,
    the term went into a warning's title, "Warning", and was lost with it.)"""
    if (dd.text or "").strip():
        return
    kids = [k for k in dd if isinstance(k.tag, str)]
    n = 0
    while n < len(kids) and kids[n].tag.lower() == "div" and NOTE_CLASS_RE.search(kids[n].get("class") or ""):
        n += 1
    if 0 < n < len(kids) and kids[n].tag.lower() == "p":
        p = kids[n]
        kids[n - 1].tail = f"{kids[n - 1].tail or ''}{p.tail or ''}"
        p.tail = "\n"
        dd.insert(0, p)


# a Sphinx entry of a class's member (<dl class="py method">), whose signature names the member alone
MEMBER_KINDS = frozenset({"method", "attribute", "property", "classmethod", "staticmethod"})


def _qualify_members(doc) -> int:
    """Write the class's name before each class member's name in its signature, as its anchor names it: Sphinx
    writes "encrypt(nonce, data, associated_data)" under "class cryptography.hazmat.primitives.ciphers.aead.AESCCM
    (key, tag_length=16)", with the id "cryptography.hazmat.primitives.ciphers.aead.AESCCM.encrypt", and a chunk
    or a quote of the member's entry, read apart from the class's, did not say whose method it is: now
    "AESCCM.encrypt(nonce, data, associated_data)". A signature that already names its owner (a module's
    function, "psutil.cpu_freq()") is left as it is. How many were qualified."""
    qualified = 0
    for dt in doc.iter("dt"):
        dl = dt.getparent()
        kinds = set((dl.get("class") or "").split()) if dl is not None else set()
        path = (dt.get("id") or "").split(".")
        if "py" not in kinds or not kinds & MEMBER_KINDS or len(path) < 2 or not all(path):
            continue
        marked = [e for e in dt.iter() if isinstance(e.tag, str) and set((e.get("class") or "").split())
                  & {"sig-name", "descname", "sig-prename", "descclassname"}]
        if not marked or set(marked[0].get("class").split()) & {"sig-prename", "descclassname"} \
                or "".join(marked[0].text_content().split()) != path[-1]:
            continue  # (no name in the markup, or an owner already written before it)
        name, before = marked[0], marked[0].getprevious()
        if before is not None:
            before.tail = f"{before.tail or ''}{path[-2]}."
        else:
            name.getparent().text = f"{name.getparent().text or ''}{path[-2]}."
        qualified += 1
    return qualified


MAX_NAME = 60  # characters of a term written into every paragraph of its definition
CALL_RE = re.compile(r"\w\((?!\))")  # a signature with parameters: "class psycopg2.extras.RealDictCursor(*args)"


def _python_api(dd) -> bool:
    """`dd` describes an object of Sphinx's Python domain (<dl class="py class">, "py method", "py attribute"):
    an API reference's entries, whose further paragraphs are not written under the entry's name (measured on
    five library manuals' sets: the name in each paragraph moved sentences it did not help, docs/benchmarks.md)."""
    dl = dd.getparent()
    return dl is not None and "py" in (dl.get("class") or "").split()


def _label_paragraphs(dd, first, label: str) -> None:
    """Write the term into each further paragraph of definition `dd` (those after the one holding `first`, its
    first words): a long entry says its default or its effect in a later paragraph without naming it ("When set
    to yes, Memcheck keeps track of the origins of all uninitialised values." under "--track-origins=<yes|no>"),
    and read alone, in a chunk of its own or quoted, that paragraph says nothing of what it is about. Only a name
    (at most MAX_NAME characters, not a signature with parameters), and not in a Python API reference
    (`_python_api`): a class entry runs to many paragraphs under a long signature, and that signature in each of
    them made them all look alike (psycopg2's manual lost three answers of library set a)."""
    opening = first
    while opening is not None and opening.getparent() is not dd:
        opening = opening.getparent()
    for kid in dd:
        if kid is opening or not isinstance(kid.tag, str):
            continue
        inner = [k for k in kid if isinstance(k.tag, str)]
        if kid.tag.lower() == "div" and len(inner) == 1 and not (kid.text or "").strip():
            kid = inner[0]  # asciidoc wraps each paragraph: <div class="paragraph"><p>
        if kid.tag.lower() == "p" and kid.text_content().strip():
            _write_label(kid, label)


def _join_labels(doc) -> int:
    """Each outline item's label written into the first line of its sub-list's first item (module docstring)."""
    joined = 0
    for li in list(doc.iter("li")):
        kids = [k for k in li if isinstance(k.tag, str)]
        if not kids:
            continue
        if (li.text or "").strip():  # <li>Label<ul>...: the label is the item's own text
            label_el, sub = None, kids[0]
            label = " ".join(li.text.split())
        elif len(kids) >= 2 and kids[0].tag.lower() in ("p", "span", "b", "strong", "em", "code") \
                and not (kids[0].tail or "").strip():  # <li><p>Label</p><ul>...
            label_el, sub = kids[0], kids[1]
            label = " ".join(label_el.text_content().split())
        else:
            continue
        if sub.tag.lower() == "div":  # DocBook wraps the sub-list: <div class="itemizedlist"><ul>
            inner = [k for k in sub if isinstance(k.tag, str)]
            sub = inner[0] if len(inner) == 1 and not (sub.text or "").strip() else sub
        if sub.tag.lower() not in _LISTS:
            continue
        label = label.rstrip(":").strip()
        if not label or len(label) > MAX_LABEL or label[-1] in ".!?;,":
            continue
        first = next((k for k in sub if isinstance(k.tag, str)), None)
        if first is None or first.tag.lower() != "li" or not _write_label(first, label):
            continue
        if label_el is None:
            li.text = None
        else:
            label_el.drop_tree()
        joined += 1
    return joined


_DASHED = re.compile(r"^(\S.{0,%d}?)\s[–—]$" % (MAX_LABEL - 1))  # "pool_timeout=30 –"


def _join_dashed(doc) -> int:
    """Each paragraph that is only a term and a dash written into the paragraph right after it (the module
    docstring); how many were joined."""
    joined = 0
    for p in list(doc.iter("p")):
        found = _DASHED.match(" ".join(p.text_content().split()))
        after = p.getnext()
        if found is None or found.group(1)[-1] in ".!?;:," or (p.tail or "").strip() or after is None \
                or after.tag != "p" or not _write_label(after, f"{found.group(1)} –", sep=" "):
            continue
        p.drop_tree()
        joined += 1
        if after.getparent() is not None and after.getparent().tag in ("li", "dd"):  # the entry's other
            while (more := after.getnext()) is not None and more.tag == "p" \
                    and not (after.tail or "").strip():  # paragraphs: one line with its term
                _append_paragraph(after, more)
    return joined


_FIELD = re.compile(r"^[A-Z][\w -]{0,24}:\s*\S")  # "Default: 5m", "Type: string list"


def _join_field_boxes(doc) -> int:
    """Each entry's box of fields written into the paragraphs under it (the module docstring); how many were.

    A box is a table of one row: a name, then cells that are each a field and its value ("Use: smtp", "Type:
    time", "Default: 5m"), with a paragraph right after it. The box opens that paragraph as a definition's term,
    "data_timeout (use smtp, type time, default 5m): This sets a timeout for ...", one sentence that names the
    option, its default and what it does (the fields without their colons, so that the term ends at the colon
    after it: pipeline.text.TERM_RE; the paragraph's later sentences are read with it,
    generator/sculpt/relevance.definition_heads), and each further paragraph, to the next table or heading,
    opens with the name: "data_timeout: Its value must ...".
    Left as a table row above a paragraph that never names the option, a question about the option's meaning
    met a sentence without its name, and one about its default a row without its meaning."""
    joined = 0
    for table in list(doc.iter("table")):
        rows = list(table.iter("tr"))
        cells = [" ".join(c.text_content().split()) for c in rows[0] if isinstance(c.tag, str)] \
            if len(rows) == 1 else []
        name, fields = (cells[0], cells[1:]) if len(cells) >= 3 else ("", [])
        after = table.getnext()
        if not name or len(name) > MAX_NAME or name[-1] in ".!?;:," or not all(_FIELD.match(f) for f in fields) \
                or (table.tail or "").strip() or after is None or after.tag != "p" or not after.text_content().strip():
            continue
        box = ", ".join(f"{key.strip().lower()} {value.strip().rstrip('.')}"
                        for key, value in (f.split(":", 1) for f in fields))
        if not _write_label(after, f"{name} ({box})"):
            continue
        table.drop_tree()
        node = after.getnext()
        while node is not None and isinstance(node.tag, str) and node.tag.lower() not in HEADINGS \
                and node.tag.lower() != "table" and node.find(".//table") is None:
            if node.tag.lower() == "p" and node.text_content().strip():
                _write_label(node, name)
            node = node.getnext()
        joined += 1
    return joined


def _append_paragraph(into, p) -> None:
    """Move paragraph `p`'s text and markup to the end of paragraph `into`, after a space, and drop `p`."""
    if len(into):
        into[-1].tail = f"{(into[-1].tail or '').rstrip()} {(p.text or '').lstrip()}"
    else:
        into.text = f"{(into.text or '').rstrip()} {(p.text or '').lstrip()}"
    for child in list(p):
        into.append(child)
    into.tail = p.tail
    p.getparent().remove(p)


def _write_label(el, label: str, sep: str = ": ") -> bool:
    """Write `label` and `sep` before the first words of `el` (see `_first_text`); False when it opens with no
    prose."""
    holder = _first_text(el)
    if holder is None:
        return False
    _prefix(holder, f"{label}{sep}")
    return True


def _prefix(holder: tuple[object, str], text: str) -> None:
    """Write `text` before the first words that `holder` (`_first_text`'s answer) holds."""
    element, attr = holder
    setattr(element, attr, f"{text}{getattr(element, attr).lstrip()}")


def _first_text(el) -> tuple[object, str] | None:
    """(element, "text" or "tail") holding the first words of `el` in reading order; None when `el` opens
    with something that is not prose (code, a table, a list) or holds no text."""
    found = _walk(el)
    return found if found is not _STOP else None


_STOP = object()  # the definition opens with code, a table or a list: nothing to join to


def _walk(el):
    if el.text and el.text.strip():
        return el, "text"
    for child in el:
        if isinstance(child.tag, str):  # (comments and processing instructions: only their tail counts)
            if child.tag.lower() in _NOT_PROSE:
                return _STOP
            if (found := _walk(child)) is not None:
                return found
        if child.tail and child.tail.strip():
            return child, "tail"
    return None
