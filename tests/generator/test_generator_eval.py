"""benchmarks/generator_eval.py: each answer-quality metric on hand-made answers, and the script end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from generator.prompt import REFUSAL
from pipeline.types import Citation, GenerationResult, GenerationTrace

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generator_eval.py"
_spec = importlib.util.spec_from_file_location("generator_eval", SCRIPT)
ge = importlib.util.module_from_spec(_spec)
sys.modules["generator_eval"] = ge  # pydantic resolves the module's annotations through sys.modules
_spec.loader.exec_module(ge)

PARIS = "Paris is the capital of France, and it has been since the tenth century. Lyon is smaller."
EXAMPLE = ge.Example(
    id="q1", source="s", question="What is the capital of France?", gold="Paris is the capital of France [1].",
    answerable=True,
    passages=(ge.EvalPassage(number=1, text=PARIS, relevant=True),
              ge.EvalPassage(number=4, text="Berlin is the capital of Germany.", relevant=False)),
)
UNANSWERABLE = EXAMPLE.model_copy(update={"gold": REFUSAL, "answerable": False})


def result(text: str, cited=(), raw: str = "") -> GenerationResult:
    return GenerationResult(text=text, raw_text=raw, trace=GenerationTrace(generator="test"),
                            citations=[Citation(marker=i + 1, passage_number=n) for i, n in enumerate(cited)])


# -- token_f1 and refusals -------------------------------------------------------------------------------
def test_f1_ignores_markers_case_punctuation_and_articles():
    assert ge.token_f1("paris is THE capital of France[1][2].", "Paris is the capital of France [1, 2]") == 1.0


def test_f1_partial_overlap():
    # pred: paris capital (2 tokens); gold: paris is capital of france (5): P=1, R=0.4
    assert ge.token_f1("Paris, capital.", "Paris is the capital of France.") == pytest.approx(2 * 0.4 / 1.4)


def test_f1_empty_answer_scores_zero():
    assert ge.token_f1("", "Paris [1].") == 0.0
    assert ge.token_f1("[1]", "Paris [1].") == 0.0


@pytest.mark.parametrize("pred", [REFUSAL, "the passages do NOT contain the answer [2]",
                                  "Sorry, the passage does not contain the answer.", "They do not contain an answer."])
def test_refusal_variants(pred):
    assert ge.is_refusal(pred)
    assert ge.token_f1(pred, REFUSAL) == 1.0
    assert ge.token_f1(pred, "Paris is the capital [1].") == 0.0


def test_refusal_needs_the_phrase_not_its_words():
    assert not ge.is_refusal("The answer is contained in the passages.")
    assert not ge.is_refusal("")
    assert ge.token_f1("Paris [1].", REFUSAL) == 0.0
    assert ge.token_f1("", REFUSAL) == 0.0


# -- citations and form ----------------------------------------------------------------------------------
def test_citation_correct_answerable():
    assert ge.citation_correct(result("Paris [1].", [1]), EXAMPLE)
    assert not ge.citation_correct(result("Paris [1][2].", [1, 4]), EXAMPLE)  # one distractor cited
    assert not ge.citation_correct(result("Paris."), EXAMPLE)  # nothing cited
    assert not ge.citation_correct(result(REFUSAL), EXAMPLE)


def test_citation_correct_unanswerable():
    assert ge.citation_correct(result(REFUSAL), UNANSWERABLE)
    assert not ge.citation_correct(result(REFUSAL + " [1]", [1]), UNANSWERABLE)
    assert not ge.citation_correct(result("Paris [1].", [1]), UNANSWERABLE)


def test_well_formed_reads_raw_markers():
    assert ge.well_formed(result("Paris [1][2].", raw="Paris [1][4]."), EXAMPLE)
    assert ge.well_formed(result("Paris [1][2].", raw="Paris [1, 4]."), EXAMPLE)
    # finalize_citations dropped [3] from the text; the raw text shows the model cited a passage not given
    assert not ge.well_formed(result("Paris [1].", raw="Paris [1][3]."), EXAMPLE)
    assert not ge.well_formed(result("Paris.", raw="Paris."), EXAMPLE)
    assert not ge.well_formed(result(""), EXAMPLE)
    assert ge.well_formed(result("Paris [1]."), EXAMPLE)  # no raw text: the text is read
    assert ge.well_formed(result(REFUSAL), UNANSWERABLE)  # a refusal needs no marker


# -- repetition and faithfulness -------------------------------------------------------------------------
def test_repeated_ngram_rate():
    assert ge.repeated_ngram_rate(["a b c a b c"]) == pytest.approx(1 / 4)  # abc bca cab abc
    assert ge.repeated_ngram_rate(["x y z [1]. X y z [2]."]) == pytest.approx(1 / 4)  # markers and case ignored
    # repeats are counted within an answer, pooled over answers: 1 repeat of 4 + 0 of 2
    assert ge.repeated_ngram_rate(["a b c a b c", "a b c d"]) == pytest.approx(1 / 6)
    assert ge.repeated_ngram_rate(["", "too short"]) == 0.0


def test_verbatim_quote_is_faithful():
    text = "Paris is the capital of France, and it has been since the tenth century [1]."
    assert ge.verbatim_faithful(text, [PARIS]) is True
    # case and punctuation kept: only the final full stop may differ
    assert ge.verbatim_faithful("Paris is the capital of France [1].", [PARIS]) is True


def test_line_breaks_end_sentences():
    # a model echoing the prompt's layout: the passage header is its own line, not part of the quote
    assert ge.verbatim_faithful("[1] Paris\nParis is the capital of France, and it has been since", [PARIS]) is True


def test_altered_quote_is_not_faithful():
    text = "Paris is the capital of France, and it has been since the eleventh century [1]."
    assert ge.verbatim_faithful(text, [PARIS]) is False
    assert ge.verbatim_faithful("paris is the capital of france.", [PARIS]) is False  # case changed


def test_paraphrase_and_short_answers_are_not_quotes():
    assert ge.verbatim_faithful("France has had its capital in Paris for over a thousand years [1].", [PARIS]) is None
    assert ge.verbatim_faithful("Paris [1].", [PARIS]) is None
    assert ge.verbatim_faithful("", [PARIS]) is None


def test_one_bad_quote_spoils_the_answer():
    good = "Paris is the capital of France [1]."
    bad = "Paris is the capital of France, and it has been since the ninth century [1]."
    assert ge.verbatim_faithful(f"{good} {bad}", [PARIS]) is False
    assert ge.verbatim_faithful(f"{bad} {good}", [PARIS]) is False
    # a sentence in the model's own words next to a good quote leaves the answer faithful
    assert ge.verbatim_faithful(f"{good} So the French government sits in that city today.", [PARIS]) is True


# -- sampling and the script end to end ------------------------------------------------------------------
def write_examples(path: Path) -> Path:
    rows = []
    for source in ("alpha", "beta"):
        for i in range(3):
            rows.append({"id": f"{source}{i}", "source": source, "doc": "d",
                         "question": "What is the capital of France?",
                         "passages": [{"number": 1, "title": "Paris", "text": PARIS, "relevant": True},
                                      {"number": 2, "title": "Berlin", "text": "Berlin is the capital of Germany.",
                                       "relevant": False}],
                         "gold": "Paris is the capital of France [1].", "answerable": True})
        rows.append({"id": f"{source}-none", "source": source, "doc": "d", "question": "Who painted the Mona Lisa?",
                     "passages": [{"number": 1, "title": "Berlin", "text": "Berlin is the capital of Germany.",
                                   "relevant": False}], "gold": REFUSAL, "answerable": False})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_sample_is_stratified_deterministic_and_prefix_stable(tmp_path):
    path = write_examples(tmp_path / "ex.jsonl")
    four = ge.load_examples(path, limit=4)
    assert [e.id for e in four] == [e.id for e in ge.load_examples(path, limit=4)]
    assert [e.id for e in four] == [e.id for e in ge.load_examples(path)[:4]]
    assert sorted(e.source for e in four) == ["alpha", "alpha", "beta", "beta"]
    assert len(ge.load_examples(path)) == 8


def test_bad_example_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x", "source": "s"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        ge.load_examples(path)


def test_main_runs_extractive_and_prints_tables(tmp_path, capsys):
    path = write_examples(tmp_path / "ex.jsonl")
    out = tmp_path / "out.json"
    reports = ge.main(["--examples", str(path), "--limit", "6", "--systems", "extractive,no-such-generator",
                       "--json", str(out)])
    printed = capsys.readouterr()
    assert "skipping no-such-generator" in printed.err
    assert "| extractive | 6 |" in printed.out
    assert "## By source" in printed.out and "| alpha | extractive | 3 |" in printed.out
    assert printed.out.rstrip().splitlines()[-1].startswith("machine:")

    [report] = reports
    s = report["summary"]
    assert s["n"] == 6
    for key in ("f1", "f1_answerable", "citation_accuracy", "well_formed", "verbatim_faithful",
                "refusal_answerable", "refusal_unanswerable"):
        assert 0.0 <= s[key] <= 1.0, key
    assert s["f1_answerable"] > 0.3  # the extractive answer quotes the Paris sentence (longer than gold)
    assert s["verbatim_faithful"] == 1.0  # it quotes verbatim by construction
    assert s["refusal_unanswerable"] == 1.0  # no passage sentence shares a word with the Mona Lisa question
    assert s["median_s"] >= 0 and s["mean_steps"] == 1.0
    saved = json.loads(out.read_text())
    assert len(saved["systems"][0]["predictions"]) == 6


def test_ar_limit_caps_autoregressive_systems_to_the_sample_prefix(tmp_path, capsys, monkeypatch):
    path = write_examples(tmp_path / "ex.jsonl")
    monkeypatch.setattr(ge, "AUTOREGRESSIVE", frozenset({"extractive"}))  # stand in for a slow AR system
    [report] = ge.main(["--examples", str(path), "--limit", "6", "--ar-limit", "2"])
    assert [p["id"] for p in report["predictions"]] == [e.id for e in ge.load_examples(path, limit=2)]
    assert "| extractive | 2 |" in capsys.readouterr().out
