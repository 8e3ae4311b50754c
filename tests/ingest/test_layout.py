"""Tables used for page layout are read as their cells; tables of data stay tables."""

from __future__ import annotations

from ingest.definitions import read_html
from ingest.layout import unwrap_layout_tables
from ingest.parse import parse_file
from pipeline.config import Settings

LAYOUT = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><body>
<table border="0" width="100%"><tr><td><h1>Catalog support</h1></td></tr>
<tr><td valign="top"><ul><li><a href="index.html">Home</a></li><li><a href="FAQ.html">FAQ</a></li></ul></td>
<td valign="top"><h3>How to debug catalog processing:</h3><p>Setting up the <code>XML_DEBUG_CATALOG</code> environment
variable will make libxml2 output debugging information for each catalog operations, for
example:</p><pre>orchis:~/XML -&gt; export XML_DEBUG_CATALOG=</pre>
<table border="1"><tr><th>Variable</th><th>Meaning</th></tr>
<tr><td>XML_CATALOG_FILES</td><td>the catalogs to load instead of the default one</td></tr></table>
</td></tr></table></body></html>"""

DATA = """<html><body><h2>Options</h2><table class="docutils"><thead><tr><th><p>Option</p></th><th><p>Default</p></th>
</tr></thead><tbody><tr><td><p>timeout</p></td><td><p>30 seconds</p></td></tr></tbody></table></body></html>"""


def test_a_page_laid_out_in_a_table_is_read_as_titles_paragraphs_and_code(tmp_path):
    path = tmp_path / "catalog.html"
    path.write_text(LAYOUT, encoding="utf-8")
    elements = parse_file(path, "HTML", "text/html", None, Settings().ingest).elements
    kinds = {e.text: e.kind for e in elements}
    assert kinds.get("How to debug catalog processing:") == "Title"
    # the paragraph is one line, as written, not cut where its source wrapped
    assert ("Setting up the XML_DEBUG_CATALOG environment variable will make libxml2 output debugging information "
            "for each catalog operations, for example:") in kinds
    assert kinds.get("orchis:~/XML -> export XML_DEBUG_CATALOG=") == "CodeSnippet"
    # a table of data inside the layout's cell stays a table
    tables = [e for e in elements if e.kind == "Table"]
    assert len(tables) == 1 and "XML_CATALOG_FILES" in tables[0].text and "Setting up" not in tables[0].text


def test_a_table_of_data_is_not_a_layout(tmp_path):
    doc = read_html(DATA)
    assert unwrap_layout_tables(doc) == 0  # paragraphs in its cells, but no heading
    doc = read_html(LAYOUT.split("\n", 2)[2])
    assert unwrap_layout_tables(doc) == 1  # the outer table; the one of data inside it is left
    assert len(list(doc.iter("table"))) == 1


def test_a_box_of_paragraphs_and_the_frames_around_a_page_are_layouts():
    words = "This operation can take a non-zero period of time, hours or even days for a large set. " * 6
    box = (f'<html><body><table class="WARNING" border="1"><tr><td><b>Warning</b></td></tr><tr><td><p>{words}</p>'
           f'<p>The request will, nonetheless, return immediately.</p></td></tr></table></body></html>')
    doc = read_html(box)
    assert unwrap_layout_tables(doc) == 1 and not list(doc.iter("table"))
    assert [p.text for p in doc.iter("p")][1] == "The request will, nonetheless, return immediately."
    # the text in the innermost of three tables, no heading in any of them: all three are the page's frame
    framed = f"<html><body><table><tr><td><table><tr><td><table><tr><td><p>{words}</p><pre>x = 1</pre>" \
             "</td></tr></table></td></tr></table></td></tr></table></body></html>"
    doc = read_html(framed)
    assert unwrap_layout_tables(doc) == 3 and not list(doc.iter("table"))
    # short paragraphs in a grid's cells are data
    grid = "<html><body><table><tr><td><p>timeout</p><p>(seconds)</p></td><td><p>30</p></td></tr></table></body></html>"
    assert unwrap_layout_tables(read_html(grid)) == 0
