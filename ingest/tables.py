"""Tables: cells -> header + rows, rendered so every row names its columns; PDF tables found with pdfplumber.

A table's text as partitioners flatten it ("Total net sales 121,234 118,500") loses which column a figure
belongs to. Here a table is read from its cells (the HTML unstructured gives for Office/HTML/CSV/XLSX,
or pdfplumber's cells for PDFs), its header rows are found (<th>/<thead>, else the leading rows whose
cells are mostly not numbers; none in a table of keys and values, whose rows name themselves in a <th>
or in a first cell ending in ":"), and each body row is rendered as
"Total net sales | Three months ended July 1, 2023: 81,797 | June 25, 2022: 82,959". Forms print a
value over its "(label)": such a row of labels is folded into the row above ("Nevada (State of
incorporation)"), so the value and the words that name it stay on one line. A spreadsheet cut at a blank
row between its header and its figures (unstructured does that) is joined back (`join_header_table`), and
a lone header cell over several columns ("January–June 2022") names each of them.

Invariants: parsing never raises on bad HTML (a table it cannot read gives no rows, and the caller keeps
the element's own text); a PDF table replaces page text only where pdfplumber found at least 2 rows and
2 columns with real content, and only the text elements that lie inside the table's box.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

NUMBER_RE = re.compile(r"^[\s$€£¥(+\-−–—]*\d[\d,.\s]*(?:[-–]\s*\d[\d,.\s]*)?[%)]*\s*[a-zA-Z]{0,3}$")
DASHES = {"—", "–", "-", "−", "n/a", "N/A", "nm", "NM"}
YEAR_RE = re.compile(r"^(?:FY\s?)?(?:19|20)\d\d[A-Z]?$")
UNITS_RE = re.compile(
    r"\((?:[^()]*\b(?:in|amounts? in|dollars in|expressed in)\s+)?(?:thousands|millions|billions|crores|lakhs|"
    r"percent|%|[A-Z]{3}|\$|€|£)[^()]*\)|\bin (?:thousands|millions|billions)\b[^.;\n]*",
    re.IGNORECASE,
)
CAPTION_RE = re.compile(r"^(?:table|exhibit|schedule|figure)\s+[\w.\-]+\b", re.IGNORECASE)
MAX_HEADER_ROWS = 3
MAX_LABEL_CHARS = 120
SCALE_RE = re.compile(r"\b(?:thousands|millions|billions|crores|lakhs)\b", re.IGNORECASE)
ABBREV_RE = re.compile(r"(?:\b(?:No|Nos|Inc|Co|Corp|Ltd|Jr|Sr|St|Ste|etc)|\w\.\w)\.$", re.IGNORECASE)


@dataclass
class TableData:
    """A table as header rows and body rows of cell strings, all rows as wide as `width`."""

    header: list[list[str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""  # a title row inside the table ("Stanley Cups" spanning all columns)
    label_col: bool = False  # the first column names the rows ("Total net sales"), not a value

    @property
    def width(self) -> int:
        return max((len(r) for r in self.header + self.rows), default=0)


# -- HTML -> cells -------------------------------------------------------------------------------------


_CELL_BLOCKS = frozenset({"p", "div", "li", "dt", "dd", "pre", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6",
                          "blockquote"})  # inside a cell, they end a run of words: "numeric_type</p><p>Absolute"


class _TableHTML(HTMLParser):
    """Collects the first table's rows as [(cell text, is_header, colspan)], with <thead> rows marked. The
    paragraphs, list items and lines of a cell are kept apart by a space (their words were run together)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, bool, int]]] = []
        self.head_rows: set[int] = set()
        self.depth = 0
        self.in_head = False
        self.cell: list[str] | None = None
        self.cell_th = False
        self.cell_span = 1

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
        if self.depth != 1:
            return  # nested tables are read as text of their cell
        if tag == "thead":
            self.in_head = True
        elif tag == "tr":
            self.rows.append([])
            if self.in_head:
                self.head_rows.add(len(self.rows) - 1)
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self.cell, self.cell_th = [], tag == "th"
            span = dict(attrs).get("colspan") or "1"
            self.cell_span = int(span) if span.isdigit() and 0 < int(span) <= 50 else 1
        elif (tag == "br" or tag in _CELL_BLOCKS) and self.cell is not None:
            self.cell.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in ("td", "th") and self.depth == 1:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(("", tag == "th", 1))
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1
        if tag in _CELL_BLOCKS and self.cell is not None:
            self.cell.append(" ")
        if self.depth != 1 and tag != "table":
            return
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((" ".join("".join(self.cell).split()), self.cell_th, self.cell_span))
            self.cell = None
        elif tag == "thead":
            self.in_head = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _read_html(html: str) -> _TableHTML | None:
    p = _TableHTML()
    try:
        p.feed(html)
        p.close()
    except Exception:  # malformed markup: no structure, the caller keeps the text
        log.debug("unreadable table HTML", exc_info=True)
        return None
    return p


def _grid(p: _TableHTML) -> list[list[str]]:
    return [[text for text, _, span in row for _ in range(span)] for row in p.rows]


def parse_html_table(html: str) -> TableData:
    """The first <table> of `html` as a TableData (empty when there is none)."""
    p = _read_html(html)
    if p is None:
        return TableData()
    grid = _grid(p)
    marked = [i for i, row in enumerate(p.rows) if i in p.head_rows or (row and all(th for _, th, _ in row))]
    n_head = 0
    while n_head in marked:
        n_head += 1
    rows = [row for row in p.rows if any(text for text, _, _ in row)]
    if not n_head and len(rows) >= 2 and all(row[0][1] for row in rows):
        return from_cells(grid, header_rows=0)  # each row names itself in a <th>: "Default: | Off", no column names
    return from_cells(grid, header_rows=n_head if n_head else None)


def join_header_table(head_html: str, body_html: str) -> str | None:
    """One table from a header cut off its body, or None.

    Spreadsheet partitioners cut a sheet at its blank rows, so the rows that name the columns ("Sales",
    "Trading operating profit", over them "January–June 2023") can come as a table of their own, just before
    the rows of figures they name, which then read as bare numbers. `head_html` is such a header when no cell
    of it is a figure (words, years and blanks only), its last row names two columns or more (one cell alone
    is a caption) and no cell lies right of the body's last column;
    `body_html` is its body when it holds figures and no header rows of its own. The result has the header
    rows in <thead> and the body rows after them, cell for cell."""
    head_p, body_p = _read_html(head_html), _read_html(body_html)
    if head_p is None or body_p is None:
        return None
    head = [r for r in _grid(head_p) if any(c.strip() for c in r)]
    body = [r for r in _grid(body_p) if any(c.strip() for c in r)]
    if not head or len(head) > MAX_HEADER_ROWS or sum(1 for c in head[-1] if c.strip()) < 2 or not body:
        return None
    last = max(j for r in head for j, c in enumerate(r) if c.strip())
    body_width = max(len(r) for r in body)
    if (last >= body_width or any(is_number(c) for r in head for c in r)
            or not any(is_number(c) for r in body for c in r[1:]) or parse_html_table(body_html).header):
        return None
    esc = html_lib.escape
    rows = "".join("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in r) + "</tr>" for r in head)
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead>{rows}</thead><tbody>{cells}</tbody></table>"


# -- cells -> header + body ----------------------------------------------------------------------------


def is_number(cell: str) -> bool:
    c = cell.strip()
    return bool(c) and (c in DASHES or (bool(NUMBER_RE.match(c)) and not YEAR_RE.match(c)))


def _merge_symbols(row: list[str]) -> list[str]:
    """Financial HTML splits "$ 1,234" and "(5 )" over cells: "$" joins the next cell, ")" and "%" the previous."""
    out = list(row)
    for i, c in enumerate(out):
        if c in {"$", "€", "£", "¥"} and i + 1 < len(out) and out[i + 1]:
            out[i + 1], out[i] = f"{c}{out[i + 1]}", ""
        elif c in {")", "%", ")%", "%)"} and i > 0:
            j = next((j for j in range(i - 1, -1, -1) if out[j]), None)
            if j is not None:
                out[j], out[i] = out[j] + c, ""
    return [re.sub(r"\(\s+", "(", c) for c in out]


def _nonempty_cols(rows: Sequence[Sequence[str]]) -> list[int]:
    width = max((len(r) for r in rows), default=0)
    return [j for j in range(width) if any(j < len(r) and r[j].strip() for r in rows)]


def _align(header_row: list[str], value_cols: list[int], label_col: bool) -> dict[int, str]:
    """Header cells -> the body columns they name. Filings' HTML puts a year over the "$" cell, not the
    figure: when a header row names as many columns as the body has, the k-th names the k-th; otherwise
    each header cell names the nearest body column at or after its own position."""
    cells = [(j, c) for j, c in enumerate(header_row) if c.strip() and (j > 0 or not label_col)]
    if len(cells) == len(value_cols):
        return {col: c for col, (_, c) in zip(value_cols, cells)}
    out: dict[int, str] = {}
    for j, c in cells:
        after = [v for v in value_cols if v >= j]
        target = after[0] if after else (value_cols[-1] if value_cols else None)
        if target is not None and target not in out:
            out[target] = c
    return out


def from_cells(grid: Sequence[Sequence[str | None]], header_rows: int | None = None) -> TableData:
    """Rows of cells -> TableData: "$"/")" cells merged, empty rows and columns dropped, a leading title row
    taken as the caption, header rows found (`header_rows` when the markup says so) and aligned."""
    rows = [_merge_symbols([" ".join((c or "").split()) for c in r]) for r in grid]
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows]
    keep = [i for i, r in enumerate(rows) if any(r)]
    rows = [rows[i] for i in keep]
    if header_rows is not None:
        header_rows = sum(1 for i in keep if i < header_rows)
    caption = ""
    if rows and header_rows is None and len(rows) > 2 and sum(1 for c in rows[0] if c) == 1 and width > 1 and rows[0][0]:
        caption, rows = rows[0][0], rows[1:]
    if header_rows is None:
        header_rows = _detect_header(rows)
    head, body = rows[:header_rows], rows[header_rows:]
    cols = _nonempty_cols(body) or _nonempty_cols(head)
    labels = [r[0] for r in body if r[0]]
    label_col = bool(cols) and cols[0] == 0 and len(cols) > 1 and sum(map(is_number, labels)) * 2 < len(labels)
    value_cols = [j for j in cols if j > 0] if label_col else cols
    names: list[list[str]] = []
    for k, h in enumerate(head):
        aligned = _align(h, value_cols, label_col)
        spans = [c for j, c in enumerate(h) if c and (j > 0 or not label_col)]
        if k < len(head) - 1 and 1 <= len(spans) < len(value_cols) and len(value_cols) % len(spans) == 0:
            # "2021" over (High, Low), "2020" over (High, Low); one cell alone over the columns names them all
            # ("January–June 2023" over Sales, Trading operating profit, ...) wherever its cell lies
            per = len(value_cols) // len(spans)
            aligned = {col: spans[i // per] for i, col in enumerate(value_cols)}
        names.append([aligned.get(j, "") for j in value_cols])
    first = [(h[0] if label_col else "") for h in head]
    header = [[f] + n for f, n in zip(first, names)] if label_col else names
    body_rows = [([r[0]] if label_col else []) + [r[j] for j in value_cols] for r in body]
    return TableData(header=header, rows=body_rows, caption=caption, label_col=label_col)


PROSE_START = re.compile(r"(?:is|are|was|were|will|can|may|must|should|the|an?|this|if|when|returns?|sets?)\s", re.I)


def is_prose(cell: str) -> bool:
    """Whether a cell says something rather than names a column: a sentence (three words or more ending with a
    stop), or words that open as a predicate or a sentence does ("is a gnutls_cipher_hd_t type", "the length of
    the tag", "A pkcs12 type"; a capitalised pair such as "The Company" may be a column's name). Length alone
    is no sign: "Name of each exchange on which registered" names a filing's column."""
    words = cell.split()
    return (len(words) >= 3 and cell.rstrip().endswith((".", "!", "?"))
            or len(words) >= 2 and bool(PROSE_START.match(cell)) and (cell[:1].islower() or len(words) >= 3))


def _detect_header(rows: list[list[str]]) -> int:
    """Leading rows whose non-label cells are mostly not numbers (years and dates count as words); a table
    of words only has one header row."""
    filled = [[c for c in r if c] for r in rows]
    if len(rows) >= 2 and all(len(f) == 2 and f[0] == r[0] and f[0].endswith(":") for f, r in zip(filled, rows)):
        return 0  # "Syntax: | DirectoryCheckHandler On|Off" over "Default: | Off": keys and values, no column names
    n = 0
    for r in rows[:MAX_HEADER_ROWS]:
        values = [c for c in r[1:] if c]
        if not values or sum(map(is_number, values)) * 2 >= len(values):
            break
        if n and r[0] and (len(values) < 2 or any(map(is_number, values))):
            break  # a row under the header that names itself and holds a figure is the body
        n += 1
    if n >= len(rows) or not any(is_number(c) for r in rows[n:] for c in r[1:]):
        n = 1 if len(rows) > 1 and not any(map(is_prose, rows[0])) else 0  # a table of words only: its first row
        # names the columns, unless it says something: "handle | is a gnutls_cipher_hd_t type" over "tag | will
        # hold the tag" is an API reference's first parameter, not a column's name
    if n == 1 and len(rows) > 1 and _labels_row(rows[0], rows[1]):
        n = 0  # "Delaware | Acme Inc." over "(State) | (Name)": values, not column names
    return n


# -- labels under values ------------------------------------------------------------------------------


def is_label(text: str) -> bool:
    """Whether `text` is one short parenthesized label, as forms print under a value: "(IRS Employer
    Identification No.)". Not a figure ("(45,384)"), a scale ("(in millions)", which belongs to a table),
    a sentence ("(See Note 5.)"), nor two labels ("(State) (Zip)": the first "(" must close at the end)."""
    t = text.strip()
    if not (3 <= len(t) <= MAX_LABEL_CHARS and t[0] == "(" and t[-1] == ")") or "\n" in t:
        return False
    depth = 0
    for i, ch in enumerate(t):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and i < len(t) - 1:
            return False
    inner = t[1:-1].strip()
    if not any(ch.isalpha() for ch in inner) or is_number(t) or SCALE_RE.search(inner):
        return False
    return not (inner[-1] in "!?" or (inner[-1] == "." and not ABBREV_RE.search(inner)))


def _labels_row(values: Sequence[str], labels: Sequence[str]) -> bool:
    """Whether `labels` is a row of labels for `values`: as many filled cells, every one a label, and no
    label among the values."""
    filled = [c for c in labels if c]
    vals = [c for c in values if c]
    return bool(filled) and len(filled) == len(vals) and all(map(is_label, filled)) and not any(map(is_label, vals))


def merge_label_rows(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """Rows with each row of labels folded into the row of values above it, cell by cell:
    ["Nevada", "20-8143439"] over ["(State of incorporation)", "(IRS Employer Identification No.)"] gives
    ["Nevada (State of incorporation)", "20-8143439 (IRS Employer Identification No.)"]. A row takes one
    row of labels at most."""
    out: list[list[str]] = []
    merged = False
    for r in rows:
        if out and not merged and _labels_row(out[-1], r):
            cols = [j for j, c in enumerate(out[-1]) if c]
            for j, label in zip(cols, (c for c in r if c)):
                out[-1][j] = f"{out[-1][j]} {label}"
            merged = True
            continue
        out.append(list(r))
        merged = False
    return out


def merge_label_lines(lines: Sequence[str]) -> list[str]:
    """Text lines with each line that is one label put at the end of the line of values above it."""
    out: list[str] = []
    merged = False
    for line in lines:
        if out and not merged and is_label(line) and not is_label(out[-1]):
            out[-1] = f"{out[-1].rstrip()} {line.strip()}"
            merged = True
            continue
        out.append(line)
        merged = False
    return out


# -- rendering -----------------------------------------------------------------------------------------


def column_names(table: TableData) -> list[str]:
    """One name per value column: its header cells top to bottom ("Three months ended July 1, 2023")."""
    label = table.label_col
    width = table.width - (1 if label else 0)
    names = []
    for j in range(width):
        parts = [h[j + (1 if label else 0)] for h in table.header if j + (1 if label else 0) < len(h)]
        names.append(" ".join(p for p in parts if p))
    return names


def _parents(table: TableData) -> list[str]:
    label = table.label_col
    off = 1 if label else 0
    upper = table.header[:-1]
    out = []
    for j in range(table.width - off):
        out.append(" ".join(h[j + off] for h in upper if j + off < len(h) and h[j + off]))
    return out


def _short_names(table: TableData, present: Sequence[bool]) -> list[str]:
    """Each value column's name with its parent header shown once per run of the `present` columns that share
    it: "Three months ended July 1, 2023", then "June 25, 2022", not "Three months ended June 25, 2022"."""
    label = table.label_col
    names = column_names(table)
    leaves = [" ".join(table.header[-1][j + (1 if label else 0)].split()) if table.header else "" for j in range(len(names))]
    parents = _parents(table)
    out, prev_parent = [], None
    for j, name in enumerate(names):
        if not (j < len(present) and present[j]):
            out.append(name)
            continue
        if parents[j] and parents[j] == prev_parent and leaves[j]:
            name = leaves[j]
        prev_parent = parents[j]
        out.append(name)
    return out


def render_rows(table: TableData) -> list[str]:
    """Body rows as "label | column: value | ...", a parent header shown once per run of columns; a row of
    "(labels)" under a row of values is folded into it ("Nevada (State of incorporation) | ...")."""
    label = table.label_col
    lines = []
    for r in merge_label_rows(table.rows):
        parts = [r[0]] if label and r[0] else []
        values = r[1:] if label else r
        names = _short_names(table, [bool(v) for v in values])
        for j, v in enumerate(values):
            if not v:
                continue
            name = names[j] if j < len(names) else ""
            parts.append(f"{name}: {v}" if name else v)
        if parts:
            lines.append(" | ".join(parts))
    return lines


def header_line(table: TableData) -> str:
    """The column headers as one line ("Team | Location | Stanley Cups"), a parent header once per run of
    columns; "" when there are none."""
    if not table.header:
        return ""
    label = table.label_col
    first = next((h[0] for h in table.header if h and h[0]), "") if label else ""
    names = column_names(table)
    names = [n for n in _short_names(table, [bool(n) for n in names]) if n]
    return " | ".join(([first] if first else []) + names)


def units(*texts: str) -> str:
    """The first "(in millions)"-style unit statement in `texts`, or ""."""
    for t in texts:
        if t and (m := UNITS_RE.search(t)):
            return m.group(0).strip()
    return ""


def is_usable(table: TableData) -> bool:
    """At least 2 body rows... or 1 body row under a header, and 2 columns with content."""
    filled = [r for r in table.rows if sum(1 for c in r if c) >= 2]
    return table.width >= 2 and (len(filled) >= 2 or (len(filled) >= 1 and bool(table.header)))


def to_html(table: TableData) -> str:
    """A plain HTML table (header rows in <thead> with <th>) for display."""
    esc = html_lib.escape
    head = "".join("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in r) + "</tr>" for r in table.header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in table.rows)
    cap = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{cap}" + (f"<thead>{head}</thead>" if head else "") + f"<tbody>{body}</tbody></table>"


# -- PDF tables ----------------------------------------------------------------------------------------


def _split_stacked(row: list[str | None]) -> list[list[str]]:
    """pdfplumber merges rows that no ruling separates: cells "A\\nB\\nC" side by side with "1\\n2\\n3".
    When every filled cell of a row has the same number (> 1) of lines, that is one row per line."""
    cells = [(c or "") for c in row]
    counts = {len(c.split("\n")) for c in cells if c.strip()}
    if len(counts) == 1 and (k := counts.pop()) > 1 and sum(1 for c in cells if c.strip()) >= 2:
        split = [c.split("\n") if c.strip() else [""] * k for c in cells]
        return [[col[i] for col in split] for i in range(k)]
    return [[c.replace("\n", " ") for c in cells]]


def pdf_table_data(cells: Sequence[Sequence[str | None]]) -> TableData | None:
    """pdfplumber's cells -> a TableData, or None when it is not a real table (< 2 rows or < 2 columns,
    or mostly empty cells: ruled boxes and page frames look like tables to a line finder)."""
    grid = [r for row in cells for r in _split_stacked(list(row))]
    grid = [r for r in grid if any(c.strip() for c in r)]
    cols = _nonempty_cols(grid)
    if len(grid) < 2 or len(cols) < 2:
        return None
    grid = [[r[j] for j in cols] for r in grid]
    filled = sum(1 for r in grid for c in r if c.strip())
    if filled < 0.5 * len(grid) * len(cols) or max(len(c) for r in grid for c in r) > 400:
        return None  # a frame around prose, not a table
    table = from_cells(grid)
    return table if is_usable(table) else None


def _table_hint(texts: Sequence[str]) -> bool:
    """Whether a page's text elements look like they hold a table: worth pdfplumber's time (~0.1 s a page)."""
    numeric = 0
    for t in texts:
        tokens = t.split()
        if tokens and sum(map(is_number, tokens)) * 2 >= len(tokens):
            numeric += 1
        if CAPTION_RE.match(t):
            return True
    return numeric >= 3


def element_box(el) -> tuple[float, float, float, float] | None:
    """(x0, top, x1, bottom) of an unstructured element's coordinates, or None when it has none."""
    coords = getattr(el.metadata, "coordinates", None)
    points = getattr(coords, "points", None)
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(box, bbox, share: float = 0.6) -> bool:
    x0, y0, x1, y1 = box
    ix = max(0.0, min(x1, bbox[2]) - max(x0, bbox[0]))
    iy = max(0.0, min(y1, bbox[3]) - max(y0, bbox[1]))
    area = max((x1 - x0) * (y1 - y0), 1e-6)
    return ix * iy / area >= share


def merge_pdf_tables(path: Path, raw: list) -> list:
    """unstructured's PDF elements with pdfplumber's tables put in: on each page that looks like it holds
    a table, the text elements inside a found table's box are replaced by one Table element (text and
    HTML) at the first one's place. Pages or files pdfplumber cannot read are left as they are."""
    by_page: dict[int, list[int]] = {}
    for i, el in enumerate(raw):
        page = getattr(el.metadata, "page_number", None)
        if page and getattr(el, "category", "") != "Table":
            by_page.setdefault(page, []).append(i)
    pages = [p for p, idx in by_page.items() if _table_hint([raw[i].text or "" for i in idx])]
    if not pages:
        return raw
    try:
        import pdfplumber
        from unstructured.documents.elements import ElementMetadata, Table
    except ImportError:
        return raw
    replace: dict[int, object] = {}
    drop: set[int] = set()
    try:
        with pdfplumber.open(path) as pdf:
            for page_no in pages:
                if page_no > len(pdf.pages):
                    continue
                page = pdf.pages[page_no - 1]
                try:
                    found = page.find_tables()
                    for t in found:
                        data = pdf_table_data(t.extract())
                        if data is None:
                            continue
                        inside = [i for i in by_page[page_no] if (b := element_box(raw[i])) and _inside(b, t.bbox) and i not in drop]
                        if not inside:
                            continue
                        text = "\n".join(" ".join(c for c in r if c) for r in data.header + data.rows)
                        md = ElementMetadata(page_number=page_no, text_as_html=to_html(data))
                        replace[inside[0]] = Table(text=text, metadata=md)
                        drop.update(inside)
                finally:
                    page.close()
    except Exception:  # pdfplumber failing on a PDF unstructured could read: keep unstructured's text
        log.debug("pdfplumber could not read tables in %s", path, exc_info=True)
        return raw
    return [replace.get(i, el) for i, el in enumerate(raw) if i in replace or i not in drop]
