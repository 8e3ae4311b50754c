"""Markers after decoding: renumbered by first use, dropped when they name no given passage, quotes untouched."""

from __future__ import annotations

from generator.citations import finalize_citations
from pipeline.types import Passage

GIVEN = [Passage(number=3, text="a"), Passage(number=5, text="b")]


def test_markers_are_renumbered_and_a_dropped_one_leaves_no_gap_before_punctuation():
    text, citations = finalize_citations("Paris [5], then Rome [9]. Berlin [3][5].", GIVEN)
    assert text == "Paris [1], then Rome. Berlin [2][1]."
    assert [(c.marker, c.passage_number) for c in citations] == [(1, 5), (2, 3)]


def test_punctuation_that_opens_a_word_stays_where_the_quote_has_it():
    # a verbatim quote of "creates .nojekyll" or "In .htaccess files" must not become "creates.nojekyll"
    text, _ = finalize_citations("This extension creates .nojekyll file [3]. In .htaccess files [9], it is 8190.", GIVEN)
    assert text == "This extension creates .nojekyll file [1]. In .htaccess files, it is 8190."
    text, _ = finalize_citations("It sorts by source order [5] :special-members: adds them [3]", GIVEN)
    assert text == "It sorts by source order [1] :special-members: adds them [2]"
