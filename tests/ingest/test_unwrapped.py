"""Markdown written a paragraph to a line, without blank lines, is read a paragraph to a line (ingest/unwrapped.py).

Markdown joins such lines into one paragraph: a whole article became one element, and its headings and short
lines were glued to the sentences around them.
"""

from __future__ import annotations

from pathlib import Path

from ingest.parse import parse_file, sniff
from ingest.unwrapped import split_unwrapped
from pipeline.config import IngestSettings

INTRO = ("The lighthouse at Karsholm was built in 1872 on the northern breakwater of the harbour, to a design by the "
         "engineer Maren Lund, who had drawn the harbour's two earlier beacons and the pilot station beside them.")
HISTORY = ("Its first lamp burned rapeseed oil and was seen eleven nautical miles out; a paraffin lamp replaced it in "
           "1901 and an electric one in 1934, when the keeper's cottage was connected to the town's new power line.")
KEEPERS = ("Five families kept the light until it was automated in 1969, the last of them the Brandts, whose logbooks "
           "from 1931 to 1969 are held by the town museum and record every ship that passed the breakwater at night.")
ARTICLE = "\n".join([
    "= Karsholm Lighthouse =", INTRO, HISTORY,
    "= = Keepers = =", KEEPERS,
    "= = Lamps = =", "Rapeseed oil ( 1872 )", "Paraffin ( 1901 )", "Electric ( 1934 )",
])


def _texts(path: Path) -> list[str]:
    file_type, media_type = sniff(path)
    assert file_type == "MD"
    return [e.text for e in parse_file(path, file_type, media_type, None, IngestSettings()).elements]


def test_a_paragraph_to_a_line_is_read_a_paragraph_to_a_line(tmp_path: Path):
    page = tmp_path / "karsholm.md"
    page.write_text(ARTICLE + "\n")
    texts = _texts(page)
    # every line its own element: no heading glued to a sentence, no list line glued to the next
    assert texts == ["= Karsholm Lighthouse =", INTRO, HISTORY, "= = Keepers = =", KEEPERS, "= = Lamps = =",
                     "Rapeseed oil ( 1872 )", "Paraffin ( 1901 )", "Electric ( 1934 )"]


def test_wrapped_paragraphs_code_and_lists_are_read_as_markdown_reads_them(tmp_path: Path):
    url = "https://example.org/" + "a" * 220
    wrapped = ("The keeper lit the lamp at sunset and put it out at\n"
               "sunrise, and wrote the weather in the log every four hours;\n"
               f"the museum's scans are at {url}\n"
               "and the originals in its archive.")
    code = "```\n" + "\n".join(["x = " + "1 + " * 70 + "1"] * 3) + "\n```"
    items = "\n".join(["- " + INTRO, "- " + HISTORY])
    page = tmp_path / "log.md"
    page.write_text("\n\n".join([wrapped, code, items]) + "\n")
    assert split_unwrapped(page.read_text()) is None  # one long line in a wrapped paragraph: not a paragraph a line
    texts = _texts(page)
    assert texts[0] == " ".join(wrapped.split("\n"))
    assert texts[-2:] == [INTRO, HISTORY]


def test_a_long_line_alone_does_not_split_its_paragraph():
    block = ["A short opening line of a paragraph that is", "x" * 300, "and its end."]
    assert split_unwrapped("\n".join(block)) is None
    assert split_unwrapped("\n".join([INTRO, HISTORY])) == INTRO + "\n\n" + HISTORY
