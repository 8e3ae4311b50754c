"""Bad input gets a clear reason and loses nothing: the rest of the run is ingested."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pipeline import Store, ingest

pytestmark = pytest.mark.parametrize("store_database", ["sqlite", "postgres"], indirect=True)


def _zip_bomb(path: Path) -> None:
    """A .docx-named zip whose one member expands ~1000:1 to 200 MB."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(200):
                f.write(block)


def test_bad_files_are_rejected_with_reasons_and_good_ones_kept(small_docs: Path, tmp_path: Path, embedder, make_settings):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.txt").write_bytes(b"")
    (bad / "junk.pdf").write_bytes(bytes(range(256)) * 40)
    _zip_bomb(bad / "bomb.docx")
    (bad / "huge.txt").write_text("big file. " * 30_000)  # 300 kB, over the limit set below
    (bad / "whitespace.txt").write_text(" \n\t \n" * 50)
    latin1 = "Die Größe der Übung ist für Bäcker und Müller gleich schön. " * 5
    (bad / "latin1.txt").write_bytes(latin1.encode("latin-1"))
    settings = make_settings(max_file_bytes=250_000)
    report = ingest([bad, small_docs / "README.md", tmp_path / "does-not-exist.pdf"], settings, embedder=embedder)

    by_name = {Path(o.path.removeprefix("file://")).name: o for o in report.outcomes}
    assert by_name["zero.txt"].reason == "empty"
    assert by_name["whitespace.txt"].reason == "empty"
    assert by_name["junk.pdf"].reason in {"unsupported", "parse error"}
    assert by_name["bomb.docx"].reason == "oversize" and "zip bomb" in by_name["bomb.docx"].detail
    assert by_name["huge.txt"].reason == "oversize"
    assert by_name["does-not-exist.pdf"].reason == "not found"
    assert by_name["latin1.txt"].status == "ingested"  # non-UTF-8 text is decoded, not rejected
    assert by_name["README.md"].status == "ingested"
    assert all(o.detail for o in report.rejections())  # every rejection says why

    store = Store(settings)
    texts = " ".join(c.text for c in store.chunks(store.all_vectors()[0]))
    assert "Größe der Übung" in texts
    assert {q.reason for q in store.quarantined()} >= {"empty", "oversize"}
    assert store.check()["consistent"]
    # rejected files are remembered: a re-run parses nothing
    assert ingest([bad], settings, embedder=embedder).parsed == 0
