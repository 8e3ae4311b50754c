"""Fuzzing ingestion: damaged real files of every format go through the real `ingest` with parse workers.

Each seed file from the unstructured example corpus is mutated deterministically (bit flips, truncation,
a duplicated run of bytes; for zip-based Office/ODF/EPUB files also a corrupted member, once as valid
zip with broken XML inside and once as raw damage to the compressed stream). Whatever the parsers make
of them, the run must finish, every file must end ingested or rejected with a reason, no file may hold
a worker past the parse timeout, and the store must agree with itself afterwards.
"""

from __future__ import annotations

import io
import os
import random
import time
import zipfile
from pathlib import Path

import pytest

from ingest.parse import REASONS, display_name
from pipeline import Store, ingest

ZIP_SUFFIXES = {".docx", ".pptx", ".xlsx", ".odt", ".epub"}
PARSE_TIMEOUT_S = 15.0


def bit_flips(data: bytes, rng: random.Random, n: int = 12) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncated(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randint(len(data) // 4, len(data) * 9 // 10)]


def duplicated_run(data: bytes, rng: random.Random) -> bytes:
    """A run of bytes copied elsewhere, several times (a torn write, a bad merge)."""
    start = rng.randrange(len(data))
    run = data[start : start + rng.randint(16, 4096)]
    at = rng.randrange(len(data))
    return data[:at] + run * rng.randint(2, 50) + data[at:]


def corrupt_member_xml(data: bytes, rng: random.Random) -> bytes:
    """A valid zip whose largest member has flipped bytes and a cut, so its XML is broken."""
    src = zipfile.ZipFile(io.BytesIO(data))
    target = max(src.infolist(), key=lambda i: i.file_size).filename
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == target:
                body = truncated(bit_flips(body, rng, 40), rng) + b"<w:p><w:r><w:t>unclosed"
            dst.writestr(info.filename, body)
    return buf.getvalue()


def corrupt_member_stream(data: bytes, rng: random.Random) -> bytes:
    """Raw damage inside the largest member's compressed bytes: the zip directory still looks fine."""
    info = max(zipfile.ZipFile(io.BytesIO(data)).infolist(), key=lambda i: i.compress_size)
    header = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out = bytearray(data)
    for _ in range(8):
        out[header + rng.randrange(max(info.compress_size, 1))] ^= 0xFF
    return bytes(out)


def mutants(seed: Path) -> dict[str, bytes]:
    data = seed.read_bytes()
    kinds = {"flip": bit_flips, "cut": truncated, "dup": duplicated_run}
    if seed.suffix in ZIP_SUFFIXES:
        kinds |= {"xml": corrupt_member_xml, "zip": corrupt_member_stream}
    return {kind: make(data, random.Random(f"{seed.name}/{kind}")) for kind, make in kinds.items()}


def write_corpus(src: Path, seeds: list[str], dst: Path) -> list[Path]:
    """Every mutant of every seed; every third one under a name that is not valid UTF-8."""
    files = []
    for rel in seeds:
        seed = src / rel
        for kind, data in mutants(seed).items():
            name = f"{seed.stem}-{kind}{seed.suffix}".encode()
            if len(files) % 3 == 0:
                name = b"\xe9t\xe9-" + name  # latin-1 bytes
            path = Path(os.fsdecode(os.path.join(os.fsencode(dst), name)))
            path.write_bytes(data)
            files.append(path)
    return files


@pytest.mark.timeout(600)
def test_damaged_files_of_every_format_are_ingested_or_rejected_and_the_store_stays_consistent(
    shared_data: Path, tmp_path: Path, embedder, make_settings, format_seeds: list[str]
):
    corpus = tmp_path / "fuzz"
    corpus.mkdir()
    files = write_corpus(shared_data / "docs" / "unstructured-example-docs", format_seeds, corpus)
    settings = make_settings(parse_workers=1, parse_timeout_s=PARSE_TIMEOUT_S, parse_timeout_s_per_mb=0)

    t0 = time.monotonic()
    report = ingest([corpus], settings, embedder=embedder)
    took = time.monotonic() - t0

    outcomes = {display_name(Path(o.path)): o for o in report.outcomes}
    assert sorted(outcomes) == sorted(display_name(f) for f in files)  # one outcome per file, none lost
    assert report.ingested + report.rejected == len(files)
    for o in report.rejections():
        assert o.reason in REASONS and o.detail, o
    # a hang costs one timeout, never the run: the whole run stays well inside (files x timeout)
    timeouts = [o for o in report.rejections() if "did not finish within" in o.detail]
    assert took < 60 + (len(timeouts) + 1) * (PARSE_TIMEOUT_S + 10), (took, timeouts)
    assert report.ingested >= len(files) // 3, [(o.path, o.reason, o.detail) for o in report.rejections()]

    check = Store(settings).check()
    assert check["consistent"] and check["sql_chunks"] == report.chunks_added, check
    # the store remembers every outcome: a second run parses nothing
    assert ingest([corpus], settings, embedder=embedder).parsed == 0
