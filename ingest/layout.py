"""Tables used for page layout, unwrapped before unstructured reads a web page.

Sites made before CSS layout (libxml2's, many intranet pages and HTML e-mails) put the whole page in a table:
a row for the banner, then a cell for the menu and a cell for the text, with its headings, paragraphs, code
and lists:

    <table><tr><td><h1>Catalog support</h1></td></tr>
    <tr><td>(menu)</td><td><h3>How to debug catalog processing:</h3><p>Setting up the ...</p><pre>...</pre></td></tr>

unstructured reads a <table> as one Table element, its text flattened: the page became two elements, no title
was a title, and "Setting up the XML_DEBUG_CATALOG environment variable will make libxml2 output debugging
information ..." was split where the source wrapped its line. `unwrap_layout_tables` puts each cell of such a
table in its place as a <div>, in reading order, so its headings, paragraphs and code are read as they are on
any other page. A table is a layout when it holds the flow of a document (`_flow`): a heading (<h1>-<h6>) and a
block of text (a paragraph, code, a list, a quotation), or a cell of its own with several blocks and
FLOW_CHARS characters or more (a page's text, or a box drawn around a warning, as DocBook's SGML stylesheets
draw one: "Warning" over its paragraphs); and a table that frames one (the outer tables of a page nested three
deep). A table of data holds neither: a Sphinx table's cells hold a paragraph each and never a heading;
Doxygen's summary tables hold headings but no paragraphs. It stays a table, in a layout's cell too.
"""

from __future__ import annotations

from .chrome import HEADINGS

BLOCKS = frozenset({"p", "pre", "ul", "ol", "dl", "blockquote"})
FLOW_CHARS = 500


def unwrap_layout_tables(doc) -> int:
    """Replace each layout table of `doc` (an lxml.html document) by its cells, each a <div>, in place; how many
    were unwrapped."""
    layouts: set = set()
    for table in reversed(list(doc.iter("table"))):  # (a table nested in another comes after it)
        if _flow(table) or any(inner in layouts for inner in table.iter("table") if inner is not table):
            layouts.add(table)  # (a table that holds a layout is one too: a frame around the page)
    for table in layouts:
        _unwrap(table)
    return len(layouts)


def _flow(table) -> bool:
    """`table` holds a document's flow: a heading and a block of text, or a cell of its own with several blocks
    and FLOW_CHARS characters or more (the page's text in one cell; a cell of data holds a value, or a
    paragraph)."""
    tags = {e.tag.lower() for e in table.iter() if isinstance(e.tag, str) and e is not table}
    if tags & HEADINGS and tags & BLOCKS:
        return True
    for cell in table.iter("td", "th"):
        if _owner(cell) is table and len(cell.text_content()) >= FLOW_CHARS:
            blocks = [e for e in cell.iter(*BLOCKS, "table") if e is not cell and _owner(e) is table]
            if len(blocks) >= 2:
                return True
    return False


def _unwrap(table) -> None:
    cells = [c for c in table.iter("td", "th", "caption") if _owner(c) is table]
    box = table.makeelement("div", {})
    for cell in cells:
        div = cell.makeelement("div", {})
        div.text = cell.text
        for kid in list(cell):
            div.append(kid)  # (moved with its tail; a nested table moves whole)
        box.append(div)
    box.tail = table.tail
    table.getparent().replace(table, box)


def _owner(cell):
    """The table `cell` is a cell of: its nearest <table> ancestor."""
    return next(cell.iterancestors("table"), None)
