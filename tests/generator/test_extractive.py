"""The extractive baseline cuts sentences inside each line: a heading or a table row stands on its own."""

from __future__ import annotations

from generator.extractive import ExtractiveGenerator
from pipeline.types import GenerationRequest, Passage


def test_a_table_row_is_quoted_alone_and_a_heading_is_not_glued_to_its_sentence():
    table = ("Ballot results by disability category\n"
             "Disability Category | Participants | Results Accuracy | Time to complete\n"
             + "\n".join(f"{cat} | Participants: 5 | Results Accuracy: {acc} | Time to complete: {t} sec, n=4"
                         for cat, acc, t in [("Blind", "34.5%", 1199), ("Low Vision", "98.3%", 1716),
                                             ("Dexterity", "98.3%", 1416), ("Mobility", "95.4%", 1672)] * 3))
    prose = "To Whom it May Concern:\nThere were 20,000 bottles of water in the warehouse."
    request = GenerationRequest(question="What accuracy did the Mobility participants reach?",
                                passages=(Passage(number=1, title="Ballots", text=table), Passage(number=2, title="Memo", text=prose)))
    answer = ExtractiveGenerator().generate(request).text
    assert "Mobility | Participants: 5 | Results Accuracy: 95.4%" in answer and "Blind" not in answer
    water = ExtractiveGenerator().generate(GenerationRequest(question="How many bottles of water were there?",
                                                             passages=(Passage(number=1, title="Memo", text=prose),))).text
    assert water.startswith("There were 20,000 bottles") and "Concern" not in water
