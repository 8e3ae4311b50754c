"""The extractive baseline cuts sentences inside each line: a heading or a table row stands on its own; the
same question over the same passages gets the same answer in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# Two sentences cover different question words whose IDFs are the same three values (each word of one has a
# twin in the other, with the same document frequency): an exact tie, which the earlier sentence wins. Summed
# in a set's iteration order, which changes with PYTHONHASHSEED, the two totals could differ in their last
# bit, and 5 of the first 16 seeds then answered with the second sentence.
TIE = """
from generator.extractive import ExtractiveConfig, ExtractiveGenerator
from pipeline.types import GenerationRequest, Passage
texts = ["Amber basalt cobalt quartz.", "Dolomite ember flint quartz.", "Basalt here.", "Ember here.",
         "Cobalt one.", "Cobalt two.", "Cobalt three.", "Flint one.", "Flint two.", "Flint three."]
request = GenerationRequest(question="amber basalt cobalt dolomite ember flint",
                            passages=[Passage(number=i + 1, text=t) for i, t in enumerate(texts)])
print(ExtractiveGenerator(ExtractiveConfig(max_sentences=1)).generate(request).text)
"""


def test_a_tie_is_broken_the_same_way_in_every_process():
    root = Path(__file__).resolve().parents[2]
    answers = set()
    for seed in (0, 1, 2, 3, 5, 11):  # 1, 2, 3, 5 and 11 broke the tie the other way before the sums were exact
        done = subprocess.run([sys.executable, "-c", TIE], cwd=root, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)})
        answers.add(done.stdout.strip())
    assert answers == {"Amber basalt cobalt quartz [1]."}
