"""Chunk: document elements -> token-bounded chunks that respect the document's structure.

Rules, in order: a title opens a new section and a new chunk (a run of titles stays together), except that a
small part of the section the chunk is in (a deeper title and its text, at most a third of a chunk, whose title
names no reference entry: gtk-doc's "Parameters" and "Returns" of a function) joins that chunk where it fits, under
the section's title and path (text before the first title is a section above every title); a table
that fits `table_tokens` is one chunk of its own, a larger one is split by rows into chunks of at most
`chunk_tokens`, each repeating the table's caption and header; other text is packed sentence by sentence
up to `chunk_tokens`, and a chunk cut for size starts with the last sentences of the previous one (up to
`chunk_overlap` tokens), except that a definition's entry (a line that opens with its term: "query_cache_size
– size of the cache ... Defaults to 500, ...", pipeline.text.TERM_RE) that fits in a chunk is never cut: it
starts the next chunk whole. A chunk that opens inside an API entry ("psutil.cpu_freq(percpu=False): Return ...",
pipeline.text.api_entry), cut from its signature line for size, is in the entry's section: the entry's name, its
path going on to it. Tokens are the embedder's own, so a chunk never gets truncated by the embedding
model. Each chunk keeps its first/last page and its section title. Before packing, an element that is
only a "(label)" (forms print "(Address of principal executive offices)" under the address) joins the
element above it on the same page, unless that one is a title, a table or a label itself.

A table with cells (HTML) is rendered row by row with its column names ("Total net sales | Three months
ended July 1, 2023: 81,797 | June 25, 2022: 82,959", see ingest/tables.py), under its caption and header.
A chunk's `text` is what is shown and quoted; its `embed_text` (what is embedded and indexed) leads with
the `context` line: document title, entity, period, section path (ingest/metadata.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from pipeline.config import IngestSettings
from pipeline.text import CHUNK_SENTENCE_RE  # ingestion's sentence rule (see pipeline.text: why it is a variant)
from pipeline.text import TERM_RE, api_entry, entry_name

from . import tables
from .metadata import DocumentMeta
from .parse import Element


@dataclass
class Piece:
    text: str
    tokens: int
    page: int | None
    kind: str
    new_element: bool


@dataclass
class Chunk:
    position: int
    text: str
    token_count: int
    section: str
    page: int | None
    page_end: int | None
    kinds: list[str] = field(default_factory=list)
    table_html: str | None = None
    context: str = ""  # "title | entity | period | section path": indexed with the text, never shown as it

    @property
    def embed_text(self) -> str:
        return embed_text(self.section, self.text, self.context)


def embed_text(section: str, text: str, context: str = "") -> str:
    """What gets embedded and indexed: the context line (else the section title) leads, so a chunk in the
    middle of a section, or a table row, still knows its document and section."""
    lead = context or section
    return f"{lead}\n{text}" if lead and not text.startswith(lead) else text


def split_sentences(text: str) -> list[str]:
    """The text's sentences, every character kept but the whitespace between them: a closing quote or bracket
    after the stop stays with the sentence it closes ('... Prussia." He' -> '... Prussia."', 'He')."""
    out, start = [], 0
    for m in CHUNK_SENTENCE_RE.finditer(text):
        out.append(text[start:m.end(1)])
        start = m.end()
    out.append(text[start:])
    return [s.strip() for s in out if s.strip()]


def chunk_elements(
    elements: Sequence[Element],
    count_tokens: Callable[[Sequence[str]], list[int]],
    settings: IngestSettings,
    meta: DocumentMeta | None = None,
) -> list[Chunk]:
    limit, overlap = settings.chunk_tokens, settings.chunk_overlap
    meta = meta or DocumentMeta()
    elements = join_split_tables(attach_code_lines(attach_labels(elements)))
    split = [_split_element(el, elements[max(0, i - 2) : i]) for i, el in enumerate(elements)]
    per_element = _measured_units([units for _, units in split], count_tokens, limit)
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    section = cur_section = ""
    path: list[tuple[int, str]] = []  # (depth, title) of the sections the text is in, outermost first
    cur_path = ""
    cur_depth = -1  # the depth of the section the current chunk opened in
    joined = False  # the current title's part joins the chunk of the section it is part of
    api, head = "", None  # the API entry the text is in (`api_entry`) and the first piece of its signature line

    def flush(carry: bool) -> list[Piece]:
        nonlocal cur
        if not cur:
            return []
        chunks.append(_make_chunk(len(chunks), cur, cur_section))
        chunks[-1].context = meta.context_line(cur_path)
        tail: list[Piece] = []
        budget = overlap if carry else 0
        for p in reversed(cur):
            if p.kind in {"Title", "Table"} or p.tokens > budget:
                break
            tail.insert(0, p)
            budget -= p.tokens
        cur = []
        return tail

    for i, (el, (has_head, _), units) in enumerate(zip(elements, split, per_element)):
        pieces = [Piece(text, n, el.page, el.kind, k == 0) for k, (text, n) in enumerate(units)]
        if el.kind == "Title":
            api, head = "", None
            said = any(p.kind != "Title" for p in cur)
            part = _section_tokens(elements, per_element, i)
            joined = said and el.depth > cur_depth and part <= limit // SMALL_PART and not entry_name(el.text) \
                and sum(q.tokens for q in cur) + part <= limit  # (an entry of a reference is a thing of its own)
            if said and not joined:
                flush(carry=False)
            section = el.text[:300]
            while path and path[-1][0] >= el.depth:  # (depths need not start at 0 nor go one by one: a page
                path.pop()  # may open with an <h2> and go on with <h3>s, whose siblings must not nest)
            path.append((el.depth, section))
            if not joined:  # (a joined part's chunk keeps the path and title of the section it is part of; a run
                cur_path, cur_depth = _path(path), el.depth  # of titles opens the chunk in the section of its last)
            if not cur:
                cur_section = section
            cur.extend(pieces)
            continue
        table_tokens = sum(p.tokens for p in pieces)
        if el.kind == "Table" and joined:  # a table in a part that joined its section's chunk stays in it
            cur.append(Piece("\n".join(p.text for p in pieces), table_tokens, el.page, "Table", True))
            continue
        if el.kind == "Table" and table_tokens <= settings.table_tokens:
            if any(p.kind != "Title" for p in cur) or sum(p.tokens for p in cur) + table_tokens > settings.table_tokens:
                flush(carry=False)
            if not cur:
                cur_section, cur_path, cur_depth = section, _path(path), _depth(path)
            cur.append(Piece("\n".join(p.text for p in pieces), table_tokens, el.page, "Table", True))
            flush(carry=False)
            chunks[-1].table_html = el.html
            continue
        if el.kind == "Table":  # too big for one chunk: pieces of rows, each under the caption and header
            flush(carry=False)
            cur_section, cur_path, cur_depth = section, _path(path), _depth(path)
            head = pieces[0] if has_head and pieces[0].tokens <= limit // 2 else None
            rows = pieces[1:] if has_head else pieces
            for group in _row_groups(rows, limit - (head.tokens if head else 0)):
                group = ([head] if head else []) + group
                cur = [Piece("\n".join(p.text for p in group), sum(p.tokens for p in group), el.page, "Table", True)]
                flush(carry=False)
                chunks[-1].table_html = el.html
            continue
        term = el.kind != "CodeSnippet" and TERM_RE.match(el.text) is not None  # a line that opens with its term
        entry = sum(p.tokens for p in pieces)  # a definition's entry that fits in a chunk starts one rather than
        if term and any(q.kind != "Title" for q in cur) \
                and sum(q.tokens for q in cur) + entry > limit >= entry:  # be cut: its later sentences say the
            lead = cur[-1:] if len(cur) > 1 and _leads_in(cur[-1]) else []  # default or the effect without naming
            del cur[len(cur) - len(lead):]  # the term ("Defaults to 500, meaning ..."); a lead-in goes with it
            flush(carry=False)
            if lead:
                cur, cur_section, cur_path, cur_depth = lead, section, _path(path), _depth(path)
        if term and el.kind != "ListItem":  # an entry of another kind
            api, head = "", None  # ("arraysize: This read/write attribute ...") ends the API entry before it
        if el.kind != "CodeSnippet" and (name := api_entry(el.text)):  # (its later paragraphs follow it unnamed:
            # a chunk cut from the entry for size is the entry's, its section the entry's name, its path on to it)
            api, head = name, pieces[0] if pieces else None
        for p in pieces:
            opens = not cur
            if cur and sum(q.tokens for q in cur) + p.tokens > limit:
                cur = flush(carry=True)
                while cur and sum(q.tokens for q in cur) + p.tokens > limit:
                    cur.pop(0)  # the overlap never pushes a chunk past the limit
                opens = True
            if not cur:
                cur_section, cur_path, cur_depth = section, _path(path), _depth(path)
            if opens and api:  # a chunk that opens inside an entry is the entry's; one that holds its name
                inside = p is not head and not any(q is head for q in cur)  # line (carried over, too) is not
                cur_section, cur_path = (api, f"{_path(path)} > {api}") if inside else (section, _path(path))
            cur.append(p)
    flush(carry=False)
    return chunks


SMALL_PART = 3  # a part of a section this small (a chunk's limit over it, in tokens) joins the section's chunk


def _leads_in(piece: Piece) -> bool:
    """A line of text that introduces what follows it ("The options are:"), which belongs with that."""
    return piece.kind not in {"Title", "Table", "CodeSnippet"} and piece.text.rstrip().endswith(":")


def _path(path: Sequence[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in path)


def _depth(path: Sequence[tuple[int, str]]) -> int:
    return path[-1][0] if path else -1


def _section_tokens(elements: Sequence[Element], per_element: Sequence[Sequence[tuple[str, int]]], i: int) -> int:
    """The tokens of the title at `i` and the text under it, up to the next title."""
    end = next((j for j in range(i + 1, len(elements)) if elements[j].kind == "Title"), len(elements))
    return sum(n for units in per_element[i:end] for _, n in units)


def attach_labels(elements: Sequence[Element]) -> list[Element]:
    """Elements with each one that is only a "(label)" put at the end of the element before it, on its
    line: "Galaxy Gaming, Inc. (Exact name of registrant as specified in its charter)". Not into a title
    or a table, not across pages, and not into an element that is or already took a label."""
    out: list[Element] = []
    took = False
    for el in elements:
        prev = out[-1] if out else None
        if (
            prev is not None
            and not took
            and el.kind != "Table"
            and prev.kind not in {"Title", "Table"}
            and prev.page == el.page
            and tables.is_label(el.text)
            and not tables.is_label(prev.text)
        ):
            out[-1] = replace(prev, text=f"{prev.text.rstrip()} {el.text.strip()}")
            took = True
            continue
        out.append(el)
        took = False
    return out


CODE_LINE_CHARS = 100  # a one-line code snippet at most this long joins the sentence that introduces it


def attach_code_lines(elements: Sequence[Element]) -> list[Element]:
    """Elements with a one-line code snippet put at the end of the text that introduces it with a colon, on its
    line: "You can see what is about to be committed using git diff with the --cached option: $ git diff
    --cached". Manuals say how to do a thing in the command after the colon; apart, the sentence that asks
    for it does not hold it, and the command alone does not say what it is for. Longer code (several lines,
    or over CODE_LINE_CHARS) keeps its own lines; not into a title, a table or other code, not across pages."""
    out: list[Element] = []
    for el in elements:
        prev = out[-1] if out else None
        code = el.text.strip()
        if (
            prev is not None
            and el.kind == "CodeSnippet"
            and prev.kind not in {"Title", "Table", "CodeSnippet"}
            and prev.page == el.page
            and prev.text.rstrip().endswith(":")
            and "\n" not in code
            and len(code) <= CODE_LINE_CHARS
        ):
            out[-1] = replace(prev, text=f"{prev.text.rstrip()} {code}")
            continue
        out.append(el)
    return out


def join_split_tables(elements: Sequence[Element]) -> list[Element]:
    """Elements with a table that is only a header joined to the table of figures right after it on the same
    page (`tables.join_header_table`: spreadsheets cut at blank rows), so each row names its columns."""
    out: list[Element] = []
    for el in elements:
        prev = out[-1] if out else None
        if prev is not None and prev.kind == el.kind == "Table" and prev.page == el.page and prev.html and el.html:
            joined = tables.join_header_table(prev.html, el.html)
            if joined is not None:
                out[-1] = replace(el, text=f"{prev.text}\n{el.text}", html=joined)
                continue
        out.append(el)
    return out


def _row_groups(rows: list[Piece], budget: int) -> list[list[Piece]]:
    """Consecutive rows packed into groups of at most `budget` tokens (a row over it stands alone)."""
    groups: list[list[Piece]] = []
    for r in rows:
        if groups and sum(p.tokens for p in groups[-1]) + r.tokens <= budget:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _split_element(el: Element, before: Sequence[Element] = ()) -> tuple[bool, list[str]]:
    """(whether the first unit is a table's head, the units: sentences, or a table's head and rows)."""
    if el.kind == "Table":
        head, rows = table_units(el, before)
        return bool(head), ([head] if head else []) + rows
    return False, split_sentences(el.text) or [el.text]


# a web page's line wrapped in its source, which the parser keeps in a table's text ("It first determines the best
# SRID that\n                    fits the bounding box"): a break and indentation, after a line that ends no sentence,
# clause or block, before a word in lower case (a line of code in the box keeps its breaks: "SELECT a\n  FROM t")
SOURCE_WRAP = re.compile(r"(?<![.:;!?\\{}\s])[ \t]*\n[ \t]+(?=[a-z])")


def table_units(el: Element, before: Sequence[Element] = ()) -> tuple[str, list[str]]:
    """A table's head (caption, units, column headers) and its rows rendered with their column names.

    The caption is the table's own title row, else the element just before it when that reads as one
    (a short line that is not a section title: "Table 3 ...", "(in millions)", "DECEMBER 31, 2021 AND
    2020"); a section title is the chunk's section already. Without usable cells (no HTML, or a table
    of one row or column) the rows are the element's text lines, as the parser gave them (a web page's lines
    wrapped in its source joined: `SOURCE_WRAP`), or the table's own rows where it has more (an HTML table of
    one column, whose rows the parser ran into one line), a "(label)" line joined to the line above it."""
    data = tables.parse_html_table(el.html) if el.html else None
    near = [b.text for b in before if b.kind != "Title" and len(b.text) <= 150 and not b.text.endswith(".")]
    near = [t for t in near if tables.CAPTION_RE.match(t) or tables.units(t) or t.isupper() or t.endswith(":")][-1:]
    if data is None or not tables.is_usable(data):
        text = SOURCE_WRAP.sub(" ", el.text) if el.html else el.text
        lines = [line for line in text.split("\n") if line.strip()]
        cells = [" | ".join(c for c in row if c) for row in (data.header + data.rows if data else []) if any(row)]
        if len(cells) > len(lines):  # a table of one column: its rows, which the parser's text ran into one line
            lines = cells
        return "\n".join(near), tables.merge_label_lines(lines) or [el.text]
    lines = [data.caption] if data.caption else near
    header = tables.header_line(data)
    unit = tables.units(*lines, header)
    if not unit:
        unit = tables.units(*(b.text for b in before if len(b.text) <= 300))
        lines += [unit] if unit else []
    lines += [header] if header else []
    return "\n".join(line for line in lines if line), tables.render_rows(data) or [el.text]


def _measured_units(
    split: Sequence[Sequence[str]], count_tokens: Callable[[Sequence[str]], list[int]], limit: int
) -> list[list[tuple[str, int]]]:
    """Per element, its sentences (table rows) with token counts; units over `limit` cut into word windows."""
    huge = MAX_TOKEN_CHARS * limit  # a unit this long is over `limit` for sure: not worth counting whole
    counts = iter(count_tokens([u for units in split for u in units if len(u) <= huge]))
    out: list[list[tuple[str, int]]] = []
    for units in split:
        measured: list[tuple[str, int]] = []
        for u in units:
            n = next(counts) if len(u) <= huge else _estimate_tokens(u, count_tokens)
            if n <= limit and len(u) <= huge:
                measured.append((u, n))
                continue
            measured.extend(_windows(u, n, limit, count_tokens))
        out.append(measured)
    return out


MAX_TOKEN_CHARS = 101  # WordPiece/BPE tokens span at most ~100 characters (longer words become one [UNK])


def _estimate_tokens(text: str, count_tokens) -> int:
    """Tokens in a long text, estimated from its first 2,000 words (windows are then counted exactly)."""
    words = text.split() or [text]
    sample = words[:2000]
    return max(1, count_tokens([" ".join(sample)])[0] * len(words) // len(sample))


def _windows(text: str, n: int, limit: int, count_tokens) -> list[tuple[str, int]]:
    """Cut a unit of `n` tokens into windows of words (characters, where there are no spaces) that fit `limit`.

    The window size comes from the unit's tokens per word (`n` may be an estimate), so a 200k-character
    line is tokenized about once, not once per level of a halving (which took 45 s on a 2 MB line)."""
    words, sep = text.split(), " "
    if len(words) <= 1:
        words, sep = list(text), ""  # no spaces (CJK, base64, a hex dump): cut by characters
    if len(words) <= 1:
        return [(text, n)]
    per = max(1, int(len(words) * limit * 0.9 / n))
    windows = [sep.join(words[i : i + per]) for i in range(0, len(words), per)]
    out: list[tuple[str, int]] = []
    for w, m in zip(windows, count_tokens(windows)):
        out.extend([(w, m)] if m <= limit else _windows(w, m, limit, count_tokens))
    return out


def _make_chunk(position: int, pieces: list[Piece], section: str) -> Chunk:
    parts: list[str] = []
    for p in pieces:
        if parts and p.new_element:
            parts.append("\n")
        elif parts:
            parts.append(" ")
        parts.append(p.text)
    pages = [p.page for p in pieces if p.page is not None]
    return Chunk(
        position=position,
        text="".join(parts).strip(),
        token_count=sum(p.tokens for p in pieces),
        section=section if section != "".join(parts).strip() else "",
        page=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
        kinds=sorted({p.kind for p in pieces}),
    )


def chunk_uid(document_uid: str, chunk: Chunk, config_digest: str) -> str:
    """Deterministic id from (document, position, content, chunking config)."""
    h = hashlib.sha256(f"{document_uid}|{chunk.position}|{config_digest}|{chunk.text}".encode())
    return h.hexdigest()[:32]


def config_digest(settings: IngestSettings, embedding_model: str) -> str:
    # v2: table rows with headers, context line; v3: "(labels)" joined to the values above them; v4: a header
    # cut off its figures joined to them, a lone header cell names every column under it; v5: HTML definition
    # lists' terms joined to their definitions (ingest/definitions.py), a one-line code snippet to the text
    # that introduces it with a colon, a table of keys and values read without column names; v6: HTML pages
    # without their chrome (navigation, sidebars, footers, permalinks: ingest/chrome.py); v7: an outline item's
    # label joined to its sub-list's first item (ingest/definitions.py), Sphinx's "[source]" links dropped;
    # v8: a PDF's stat callouts, a large figure joined to the caption under it (ingest/callouts.py); v9: a
    # Sphinx parameter's name and dash joined to its description, the entry's paragraphs one line; v10: a closing
    # quote or bracket after a sentence's stop is kept (v9 dropped it: '(... many!) So' read '(... many! So'), and
    # Markdown that libmagic takes for code is read as Markdown (ingest.parse.MARKUP_EXTENSIONS); v11: a web page
    # with a script in its head, which libmagic takes for code, is read as HTML, not as its markup (HTML_START_RE), and
    # punctuation alone outside code and tables ('">' that a malformed page leaves) is not text, and a definition's
    # further paragraphs open with its term too (ingest/definitions.py, not in a Python API reference); v12: Markdown
    # written a paragraph to a line without blank lines between is read a paragraph to a line (ingest/unwrapped.py);
    # v13: an entry's box of fields (a one-row table: "data_timeout | Use: smtp | Type: time | Default: 5m") opens
    # the paragraph under it as a definition, and its further paragraphs open with its name (ingest/definitions.py);
    # a site banner heading and paging links outside navigation blocks are chrome (ingest/chrome.py); v14: a table's
    # cell keeps its paragraphs apart, a table of one column its rows (`table_units`); v15: a section's path no longer
    # nests it under an earlier sibling where the page's first title is deeper than 0 (an <h2> above <h3>s); v16: a
    # manual page rendered in a <pre> is read as its sections, paragraphs and entries (ingest/manpage.py), a code
    # block that opens with "name:" ("/etc/postfix/main.cf:") starts no chunk of its own as a definition's entry
    # does, and a lead-in line ("The options are:") goes with the entry after it; v17: wrapped plain text in a <pre>
    # is read as its paragraphs and lists (ingest/plaintext.py); v18: a C prototype wrapped over lines in a <pre> is
    # one line (ingest/declarations.py), and a table of words whose first row says something has no header row
    # ("handle | is a gnutls_cipher_hd_t type" and "pkcs12 | A pkcs12 type" were taken for the column names of a
    # function's parameters); v19: a small part of a section (gtk-doc's "Parameters" and "Returns" of a function)
    # joins the section's chunk where it fits; v20: a permalink whose text is an icon-font glyph is chrome (the Read
    # the Docs theme's U+F0C1 after every heading and term); v21: a web page's line wrapped in its source inside a
    # box drawn as a table (DocBook's admonitions with icons) is not a line break (`SOURCE_WRAP`); v22: a chunk that
    # opens inside an API entry, cut from its signature for size, is in the entry's section (`api_entry`), and
    # Doxygen's "◆" before each entry's title is a permalink (ingest/chrome.py); v23: a paragraph that opens
    # with a term of its own (an attribute's entry, "arraysize: This read/write attribute ...") ends the entry;
    # v24: a table used for page layout is read as its cells (ingest/layout.py), a Sphinx class member's signature
    # names its class ("AESCCM.encrypt(nonce, ...)"), an entry's text goes before the notes that open it, and a
    # method's kind before its signature ("classmethod ...") no longer hides the API entry
    chrome = "" if settings.html_chrome == "strip" else "|chrome kept"
    key = f"{settings.chunk_tokens}|{settings.chunk_overlap}|{settings.table_tokens}|{embedding_model}|v24{chrome}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]
