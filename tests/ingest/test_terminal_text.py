"""Text written for a terminal (ANSI colours and bold, nroff's overstrikes) is read as the words it shows.

Debian ships formatted manuals so (man-db's manual was refused as "garbled: 2% replacement or control
characters"), and CI logs and pasted terminal sessions carry colour codes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from ingest.parse import terminal_plain
from ingest.process import Processed, process_file
from pipeline.config import IngestSettings
from pipeline.embedding import SentenceTransformerEmbedder


def bold(word: str) -> str:  # nroff: each character, a backspace, the character again
    return "".join(f"{c}\b{c}" for c in word)


def underline(word: str) -> str:  # nroff: an underscore, a backspace, the character
    return "".join(f"_\b{c}" for c in word)


def test_escape_sequences_and_overstrikes_are_dropped_and_nothing_else():
    assert terminal_plain("\x1b[1mman-db\x1b[0m by \x1b[4mGraeme\x1b[24m, \x1b[31;1merror\x1b[m") == "man-db by Graeme, error"
    assert terminal_plain(f"The {bold('mandb')} program reads {underline('manpath')}.") == "The mandb program reads manpath."
    plain = "Tabs\tand new lines\nstay; so do _underscores_ and back\\slashes."
    assert terminal_plain(plain) == plain


def test_a_formatted_manual_is_ingested_as_its_words(tmp_path: Path):
    lines = [f"   \x1b[1m{n}. Section {n}\x1b[0m\n\n     The {bold('mandb')} program builds the index caches "
             f"that {underline('man')} reads, and line {n} says so in full sentences.\n\n" for n in range(1, 40)]
    path = tmp_path / "manual.txt.gz"
    path.write_bytes(gzip.compress("".join(lines).encode()))
    done = process_file(str(path), path.stat().st_size, IngestSettings(), str(SentenceTransformerEmbedder().path))
    assert isinstance(done, Processed), done  # refused as garbled before
    text = "\n".join(c.text for c in done.chunks)
    assert "\x1b" not in text and "\b" not in text and "[1m" not in text
    assert "The mandb program builds the index caches that man reads" in text
