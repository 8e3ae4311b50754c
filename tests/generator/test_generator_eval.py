"""benchmarks/generator_eval.py: the stratified sample and the script end to end (its metrics: tests/evaluation/test_metrics.py)."""

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
