"""Small hostile files: the work a file causes is bounded, not only its size, and odd names are fine.

A zip that inflates past a few MB at a bomb's ratio is refused before parsing; a text of one enormous
line is cut and chunked in seconds; a parse that needs more memory than `parse_memory_mb`, or that
outlives its time limit, or whose worker dies at the limit, costs that file only, with a reason that
says which limit it hit; and a file whose name is not valid UTF-8 is ingested like any other.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.embedding import SentenceTransformerEmbedder
from ingest.parse import precheck
from ingest.process import ParsePool, Processed, Rejection, process_file
from pipeline import Store, ingest
from pipeline.config import IngestSettings
from pipeline.errors import IngestError

GOOD_TEXT = "The canteen opens at noon and closes at three in the afternoon on weekdays."


def docx_of(path: Path, paragraphs: int) -> Path:
    """A well-formed DOCX with `paragraphs` identical paragraphs (it compresses several hundred to one)."""
    para = b"<w:p><w:r><w:t>The quarterly report is due on the first Monday of the month.</w:t></w:r></w:p>"
    ns = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
                   'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
                   'Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml", b"<w:document " + ns + b"><w:body>" + para * paragraphs + b"</w:body></w:document>")
    return path


def one_line_text(path: Path, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    text = [rng.choice(vocab) for _ in range(words)]
    path.write_text(" ".join(text))
    return text


@pytest.fixture(scope="module")
def tokenizer_path() -> str:
    return str(SentenceTransformerEmbedder().path)


def test_a_small_docx_that_inflates_past_a_few_mb_is_refused_as_a_zip_bomb(tmp_path: Path, tokenizer_path: str):
    bomb = docx_of(tmp_path / "report.docx", 100_000)  # ~10 MB of XML in ~30 kB
    size = bomb.stat().st_size
    assert size < 200_000
    with pytest.raises(IngestError) as e:
        precheck(bomb, "DOCX", size, IngestSettings())
    assert e.value.reason == "oversize" and "zip bomb" in e.value.detail and ":1" in e.value.detail
    rejected = process_file(str(bomb), size, IngestSettings(), tokenizer_path)
    assert isinstance(rejected, Rejection) and rejected.reason == "oversize" and "zip bomb" in rejected.detail

    # the same compression below the threshold is a document, not a bomb
    small = docx_of(tmp_path / "memo.docx", 2_000)
    done = process_file(str(small), small.stat().st_size, IngestSettings(), tokenizer_path)
    assert isinstance(done, Processed) and "quarterly report" in done.chunks[0].text


def test_a_text_of_one_two_megabyte_line_is_cut_and_chunked_in_seconds(tmp_path: Path, tokenizer_path: str):
    path = tmp_path / "dump.txt"
    words = one_line_text(path, 300_000)  # 2 MB, no line break, no full stop: 130 s and 2.8 GB before
    settings = IngestSettings()
    t0 = time.perf_counter()
    done = process_file(str(path), path.stat().st_size, settings, tokenizer_path)
    took = time.perf_counter() - t0
    assert isinstance(done, Processed), done
    assert took < 60, f"{took:.0f} s for a 2 MB line"
    assert all(c.token_count <= settings.chunk_tokens for c in done.chunks)
    kept = {w for c in done.chunks for w in c.text.split()}
    assert kept == set(words)  # cut, never lost
    assert done.chunks[0].text.split()[0] == words[0] and done.chunks[-1].text.split()[-1] == words[-1]


def test_text_without_spaces_is_cut_by_characters(tmp_path: Path, tokenizer_path: str):
    path = tmp_path / "notes.txt"
    path.write_text("会议在星期一上午十点开始请准时参加" * 20_000)  # 340k characters, no space, no ASCII full stop
    settings = IngestSettings()
    done = process_file(str(path), path.stat().st_size, settings, tokenizer_path)
    assert isinstance(done, Processed), done
    assert len(done.chunks) > 100 and all(c.token_count <= settings.chunk_tokens for c in done.chunks)


def test_a_file_over_the_memory_limit_is_rejected_and_the_next_one_ingests(tmp_path: Path, embedder, make_settings):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-log.txt").write_text("\n".join(f"line {i} of the nightly export job log" for i in range(400_000)))  # 15 MB
    (docs / "b-note.txt").write_text(GOOD_TEXT)
    settings = make_settings(parse_workers=1, parse_memory_mb=100)
    report = ingest([docs], settings, embedder=embedder)

    by_name = {Path(o.path).name: o for o in report.outcomes}
    assert by_name["a-log.txt"].reason == "oversize", by_name["a-log.txt"]
    assert "more than 100 MB of memory" in by_name["a-log.txt"].detail
    assert by_name["b-note.txt"].status == "ingested"
    assert Store(settings).check()["consistent"]


def _kill_when_started(pool: ParsePool, signals: list[int]) -> threading.Thread:
    """Send each signal to the worker parsing the next file (what an abort() at the limit, or a bug, does)."""

    def kill() -> None:
        deadline, killed = time.monotonic() + 120, set()
        for sig in signals:
            while time.monotonic() < deadline:
                slot = pool._slots[0]
                if slot["started"] is not None and slot["started"][0] not in killed:
                    killed.add(slot["started"][0])
                    time.sleep(0.2)
                    os.kill(slot["proc"].pid, sig)
                    break
                time.sleep(0.05)

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_a_worker_that_aborts_or_overruns_costs_one_file_with_a_clear_reason(tmp_path: Path, tokenizer_path: str):
    slow = tmp_path / "slow.txt"  # 3,000 short paragraphs: spaCy runs on each, 3-10 s of parsing
    slow.write_text("\n".join(f"The report for unit {i} was filed on time by the night shift." for i in range(3000)))
    note = tmp_path / "note.txt"
    note.write_text(GOOD_TEXT)
    files = [(str(slow), slow.stat().st_size), (str(note), note.stat().st_size)]

    with ParsePool(IngestSettings(parse_memory_mb=2048), tokenizer_path, workers=1) as pool:
        # native code (Rust, C++) aborts when an allocation fails at RLIMIT_AS; a segfault far from it is a bug
        killer = _kill_when_started(pool, [signal.SIGABRT, signal.SIGSEGV])
        results = list(pool.run([files[0], files[0], files[1]]))
        killer.join()
    assert results[0].reason == "oversize" and "most likely at its memory limit" in results[0].detail, results[0]
    assert "more than 2,048 MB of memory" in results[0].detail
    assert results[1].reason == "parse error" and "crashed (exit code -11)" in results[1].detail, results[1]
    assert isinstance(results[2], Processed)

    # 2 s: the slow file needs 3-10 s; a fresh worker's first small file needs up to ~1 s on a slow machine
    with ParsePool(IngestSettings(parse_timeout_s=2, parse_timeout_s_per_mb=0), tokenizer_path, workers=1) as pool:
        t0 = time.monotonic()
        results = list(pool.run(files))
    assert results[0].reason == "parse error" and "did not finish within 2 s" in results[0].detail, results[0]
    assert isinstance(results[1], Processed), results[1]
    assert time.monotonic() - t0 < 60  # the overrun cost two seconds, plus a fresh worker


def _running(needle: str) -> list[str]:
    """Command lines of this machine's processes that mention `needle`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            found.append(cmd)
    return found


def test_a_parser_program_that_hangs_is_stopped_with_its_worker(tmp_path: Path, tokenizer_path: str):
    # pandoc (which reads org, rst, epub, odt and rtf for unstructured) spins without end on this table; the
    # worker that ran it was killed at its time limit, and pandoc went on at 100% of a core, adopted by init
    table = tmp_path / "keys.org"
    table.write_text("| a | ^\\ | ^\\ |\n| b | ^] | ^] |\n| c | ^^ | ^^ |\n| d | ^_ | ^_ |\n")
    note = tmp_path / "note.txt"
    note.write_text(GOOD_TEXT)
    files = [(str(table), table.stat().st_size), (str(note), note.stat().st_size)]
    with ParsePool(IngestSettings(parse_timeout_s=3, parse_timeout_s_per_mb=0), tokenizer_path, workers=1) as pool:
        results = list(pool.run(files))
        assert results[0].reason == "parse error" and "did not finish within 3 s" in results[0].detail, results[0]
        assert isinstance(results[1], Processed), results[1]
        time.sleep(0.5)
        assert _running(str(table)) == []  # stopped with its worker, while the pool goes on


def test_files_whose_names_are_not_utf8_are_ingested_in_every_format(
    shared_data: Path, tmp_path: Path, embedder, make_settings, format_seeds: list[str]
):
    src = shared_data / "docs" / "unstructured-example-docs"
    docs = tmp_path / "docs"
    docs.mkdir()
    for rel in format_seeds:
        name = b"caf\xe9-" + Path(rel).name.encode()  # latin-1 bytes: not UTF-8
        shutil.copy(src / rel, os.path.join(os.fsencode(docs), name))
    settings = make_settings()
    report = ingest([docs], settings, embedder=embedder)

    assert report.ingested == len(format_seeds), [(o.path, o.reason, o.detail) for o in report.rejections()]
    store = Store(settings)
    assert all("/caf%E9-" in d.source_uri for d in store.documents())  # the name's bytes, percent-encoded
    assert store.check()["consistent"]
    assert ingest([docs], settings, embedder=embedder).unchanged == len(format_seeds)  # found again by the same URI
