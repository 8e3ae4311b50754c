"""An HTML page is read without spaCy: its paragraphs are labelled by their look, its text is unstructured's."""

from __future__ import annotations

from pathlib import Path

import pytest
import unstructured.nlp.tokenize as tokenize
import unstructured.partition.html.parser as html_parser
import unstructured.partition.text_type as text_type

from ingest.parse import configure_unstructured, narrative_by_look, parse_file, sniff
from pipeline.config import Settings

HANDBOOK = Path(__file__).resolve().parents[3] / "shared" / "data" / "docs" / "debian-handbook-en"


@pytest.mark.parametrize("text, narrative", [
    ("APT reads the list of package sources from /etc/apt/sources.list.", True),
    ("Each line names one repository and the components to use from it", True),  # six words or more
    ("Install the package first.", True),
    ("1A. Risk Factors", False), ("ITEM 7. MANAGEMENT'S DISCUSSION", False), ("Package Sources", False),
    ("2,32,822", False), ("-- 14.3 / 27.9 --", False), ("", False),
    ("The Debian Project. Its Social Contract And Its Free Software Guidelines.", True),  # two sentences
])
def test_a_paragraph_is_narrative_by_its_look(text, narrative):
    assert narrative_by_look(text) is narrative


def test_an_html_page_gives_the_same_text_without_spacy(monkeypatch):
    configure_unstructured()
    page = HANDBOOK / "apt.html"  # a long chapter: prose, lists, code, tables
    ours = parse_file(page, *sniff(page), None, Settings().ingest)

    def no_spacy(text):
        raise AssertionError("spaCy ran on an HTML paragraph")

    monkeypatch.setattr(tokenize, "_run_pipeline", no_spacy)  # what sentence counts and verbs run through
    assert [(e.kind, e.text) for e in parse_file(page, *sniff(page), None, Settings().ingest).elements] == \
        [(e.kind, e.text) for e in ours.elements]
    monkeypatch.undo()
    monkeypatch.setattr(html_parser, "is_possible_narrative_text", text_type.is_possible_narrative_text)
    theirs = parse_file(page, *sniff(page), None, Settings().ingest)  # unstructured's own labelling
    assert [e.text for e in theirs.elements] == [e.text for e in ours.elements] and len(ours.elements) > 20
    assert ours.title == theirs.title
