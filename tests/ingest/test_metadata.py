"""Document metadata: who and when a document says it is about, read conservatively from real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.metadata import DocumentMeta, extract_metadata
from ingest.parse import Element, parse_file, sniff
from pipeline.config import IngestSettings


@pytest.fixture(scope="module")
def docs(shared_data) -> Path:
    return shared_data / "docs" / "unstructured-example-docs"


def meta_of(path: Path) -> DocumentMeta:
    file_type, media_type = sniff(path)
    return parse_file(path, file_type, media_type, None, IngestSettings()).metadata


def test_filing_cover_page_gives_filer_form_and_period(docs):
    meta = meta_of(docs / "example-10k.html")
    assert meta.entity == "Galaxy Gaming, Inc."
    assert meta.period == "For the fiscal year ended December 31, 2021"
    assert meta.title == "Form 10-K"


def test_email_gives_subject_sender_and_date(docs):
    meta = meta_of(docs / "eml" / "fake-email.eml")
    assert (meta.title, meta.author, meta.entity) == ("Test Email", "Matthew Robinson", "Matthew Robinson")
    assert meta.date.startswith("2022-12-16")
    no_subject = meta_of(docs / "eml" / "mime-no-subject.eml")
    assert no_subject.title == "mime-no-subject" and no_subject.author == "sender@example.com"


def test_office_core_properties_and_pdf_period(docs):
    assert meta_of(docs / "fake.docx").author == "Mr. Miagi"
    report = meta_of(docs / "pdf" / "reliance.pdf")
    assert report.period == "for the year ended March 31, 2022"


def test_a_paper_gets_no_invented_entity_or_period(docs):
    meta = meta_of(docs / "pdf" / "layout-parser-paper-with-table.pdf")
    assert meta.title.startswith("LayoutParser") and meta.entity == "" and meta.period == ""


def test_contract_parties_and_the_context_line():
    els = [
        Element("Title", "MASTER SERVICES AGREEMENT", page=1),
        Element("NarrativeText", "This Master Services Agreement is entered into by and between Acme Corp. "
                "(\"Client\") and Globex Limited (\"Supplier\"), effective as of March 1, 2024.", page=1),
    ]
    meta = extract_metadata(els, "MASTER SERVICES AGREEMENT", "DOCX")
    assert meta.entity == "Acme Corp.; Globex Limited"
    assert meta.context_line("1. Services > 1.2 Fees") == "MASTER SERVICES AGREEMENT | Acme Corp.; Globex Limited | 1. Services > 1.2 Fees"
    assert DocumentMeta(title="Acme Corp. 10-Q", entity="Acme Corp.").context_line() == "Acme Corp. 10-Q"  # said once
