"""A PDF's stat callouts: a figure printed large over its caption becomes one line that says what it counts."""

from __future__ import annotations

from pathlib import Path

from unstructured.documents.coordinates import PixelSpace
from unstructured.documents.elements import CoordinatesMetadata, ElementMetadata, NarrativeText, Text, Title

from ingest.callouts import join_callouts
from ingest.parse import parse_file
from pipeline.config import IngestSettings

PAGE = PixelSpace(width=612, height=792)


def at(cls, text: str, x0: float, top: float, x1: float, bottom: float, page: int = 1):
    points = ((x0, top), (x0, bottom), (x1, bottom), (x1, top))
    return cls(text=text, metadata=ElementMetadata(page_number=page,
                                                   coordinates=CoordinatesMetadata(points=points, system=PAGE)))


def texts(elements) -> list[tuple[str, str]]:
    return [(e.category, e.text) for e in elements]


def test_each_large_figure_is_joined_to_the_caption_under_it():
    raw = [at(NarrativeText, "We are investing to grow in the region.", 54, 108, 550, 146),
           at(Text, "2.5", 96, 181, 167, 226), at(Title, "1st", 274, 181, 334, 226), at(Text, "~70%", 418, 181, 534, 226),
           at(Title, "kilograms CO2e/boe carbon intensity in 2022", 69, 222, 198, 272),
           at(NarrativeText, "woman offshore platform engineer in Israel", 249, 222, 368, 272),
           at(NarrativeText, "electricity production powered by Tamar", 420, 222, 544, 272)]
    assert texts(join_callouts(raw)) == [
        ("NarrativeText", "We are investing to grow in the region."),
        ("NarrativeText", "2.5 kilograms CO2e/boe carbon intensity in 2022"),
        ("NarrativeText", "1st woman offshore platform engineer in Israel"),
        ("NarrativeText", "~70% electricity production powered by Tamar")]


def test_body_size_numbers_chart_labels_and_figures_without_a_caption_stay_as_they_are():
    raw = [at(Text, "12", 290, 40, 310, 52), at(NarrativeText, "A page number over body text, body size.", 72, 60, 540, 90),
           at(Text, "40", 307, 222, 537, 379), at(Text, "20", 307, 222, 537, 379),  # a chart's labels: its box
           at(NarrativeText, "Figure 1: accuracy against training size.", 307, 385, 537, 400),
           at(Text, "$4.2bn", 72, 420, 200, 460), at(Text, "2023", 72, 462, 200, 480),  # a figure under a figure
           at(Text, "98%", 300, 500, 380, 540), at(NarrativeText, "A caption in another column.", 420, 545, 540, 570),
           at(Text, "7", 72, 600, 100, 640, page=2), at(NarrativeText, "On the next page.", 72, 60, 200, 80, page=3)]
    assert texts(join_callouts(raw)) == texts(raw)


def test_a_callout_page_is_parsed_into_figures_with_their_captions(shared_data: Path):
    parsed = parse_file(shared_data / "docs" / "unstructured-example-docs" / "pdf" / "chevron-page.pdf", "PDF",
                        "application/pdf", 1, IngestSettings())
    lines = [(e.kind, e.text) for e in parsed.elements]
    assert ("NarrativeText", "2.5 kilograms CO₂e/boe carbon intensity from our Eastern Mediterranean operations "
                             "in 2022") in lines
    assert not any(text in {"2.5", "1st", "~70%"} for _, text in lines)
