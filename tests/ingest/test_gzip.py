"""A gzip-compressed file is read as the file it holds, within the same bounds as a zip.

Debian's documentation packages ship a manual's long pages compressed (`changelog.html.gz` in pytest's and
Celery's manuals); exports and logs often come as `.txt.gz`. Before, they were refused as "unknown file type".
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from pipeline import Store, ingest
from pipeline.config import IngestSettings, Settings

PAGE = """<html><head><title>Release notes</title></head><body>
<h1>Release notes</h1>
<h2>Version 8.1</h2>
<p>The cache plugin now stores the last failed tests in the cache directory.</p>
<ul><li>The --lf option reruns only the tests that failed at the last run.</li></ul>
</body></html>"""


def _gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


def test_gzipped_pages_and_texts_are_ingested_as_what_they_hold_and_bad_streams_are_refused(tmp_path: Path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    _gz(docs / "changelog.html.gz", PAGE.encode())
    (docs / "plain").mkdir()
    (docs / "plain" / "changelog.html").write_text(PAGE)  # the same page, uncompressed
    _gz(docs / "export.txt.gz", b"The night shift starts at ten and ends at six in the morning.\n")
    _gz(docs / "bomb.txt.gz", b"\0" * (60 << 20))  # 60 MB of zeros in ~60 kB: 1000:1
    (docs / "broken.txt.gz").write_bytes(gzip.compress(b"some text " * 500)[:40])  # cut short
    for name in ("bundle.tar.gz", "bundle.gz"):  # the second is a tar by its content, whatever its name says
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as t:
            info = tarfile.TarInfo(f"{name}.txt")
            info.size = 5
            t.addfile(info, io.BytesIO(b"hello"))
        _gz(docs / name, tar.getvalue())
    settings = Settings(store_dir=tmp_path / "store", ingest=IngestSettings())

    report = ingest([docs], settings, embedder=embedder)

    by_name = {Path(o.path.removeprefix("file://")).name: o for o in report.outcomes}
    assert by_name["changelog.html.gz"].status == "ingested"
    assert by_name["export.txt.gz"].status == "ingested"
    assert by_name["bomb.txt.gz"].reason == "oversize" and "gzip bomb" in by_name["bomb.txt.gz"].detail
    assert by_name["broken.txt.gz"].reason == "parse error" and "gzip" in by_name["broken.txt.gz"].detail
    for name in ("bundle.tar.gz", "bundle.gz"):
        assert by_name[name].reason == "unsupported" and "tar" in by_name[name].detail

    store = Store(settings)
    docs_by_name = {Path(d.source_uri).name: d for d in store.documents()}
    page = docs_by_name["changelog.html.gz"]
    assert page.file_type == "HTML" and page.title == "Release notes"
    chunks = store.chunks(store.all_vectors()[0])
    texts = [c.text for c in chunks if c.document_id == page.id]
    assert any("--lf option reruns only the tests that failed" in t for t in texts)
    assert not any("<li>" in t or "<p>" in t for t in texts)  # parsed as HTML, not read as markup
    plain = docs_by_name["changelog.html"]  # read exactly as the uncompressed page is
    assert plain.title == page.title
    assert ([(c.text, c.section) for c in chunks if c.document_id == page.id]
            == [(c.text, c.section) for c in chunks if c.document_id == plain.id])
    assert any("night shift starts at ten" in c.text for c in chunks)
    assert store.check()["consistent"]


def test_a_version_that_reads_more_formats_parses_again_what_an_earlier_one_refused(tmp_path: Path, embedder, monkeypatch):
    from ingest.parse import FORMATS

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The canteen opens at noon and closes at three in the afternoon.")
    (docs / "blob.bin").write_bytes(bytes(range(256)) * 64)  # no format sculptrag reads
    settings = Settings(store_dir=tmp_path / "store", ingest=IngestSettings())
    first = ingest([docs], settings, embedder=embedder)
    assert first.parsed == 2 and [o.reason for o in first.rejections()] == ["unsupported"]
    again = ingest([docs], settings, embedder=embedder)
    assert again.parsed == 0 and again.unchanged == 2  # the same bytes, the same parser: nothing read again

    monkeypatch.setattr("ingest.parse.FORMATS", FORMATS + 1)  # a version that reads more formats
    upgraded = ingest([docs], settings, embedder=embedder)
    assert upgraded.parsed == 1 and upgraded.unchanged == 1  # the refused file is tried again, the text is not
    assert [o.reason for o in upgraded.rejections()] == ["unsupported"]
    assert Store(settings).check()["consistent"]
