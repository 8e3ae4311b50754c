"""Answer quality of RAG generators side by side, on any generator registered with `get_generator`.

    python benchmarks/generator_eval.py --examples FILE.jsonl [--limit N] [--ar-limit N]
        [--systems extractive,smollm2,sculpt,sculpt-naive] [--json OUT]

Input: one example per line, {"id", "source", "doc", "question", "passages": [{"number", "title", "text",
"relevant"}], "gold", "answerable"}; `relevant` marks passages holding evidence for the answer (the others
are hard distractors); `gold` is a reference answer with [n] markers, or exactly `generator.prompt.REFUSAL`.

The script is model-agnostic: a system is a generator name and options, built with `get_generator` (never
imported here), warmed up untimed, then asked each question with the example's passages. Metrics, per answer
(`text` is the final answer; the raw text is `raw_text`, before markers naming missing passages are dropped):

- answer F1: SQuAD token F1 (lowercase, punctuation and a/an/the removed) with [n] markers removed from both;
  a gold refusal scores 1 for a refusal and 0 otherwise; a refusal against an answerable gold scores 0.
  A refusal is an answer whose normalised text contains "passages do not contain answer" (REFUSAL), "do not
  contain answer", "does not contain answer" or "do(es) not contain this information" (validation.text, the
  same metrics the validation stage and `sculptrag eval` report).
- citation accuracy: answerable: >=1 cited passage and every cited passage relevant; unanswerable: a refusal
  citing nothing.
- well-formed: every marker in the raw text names a given passage, and a non-refusal has at least one.
- repeated-trigram rate: over all answers, word trigrams (markers removed, lowercased) that repeat an earlier
  trigram of the same answer / all trigrams.
- verbatim-faithful: a "quote" is an answer sentence (or line) of >=5 words with >=50% of its word 4-grams found in the
  passages; the answer is faithful when every quote is an exact substring of a passage (case and punctuation
  kept, whitespace collapsed, the sentence's final . ! ? not required). Answers with no quote are left out.

Per system: means of the above, refusal rates on answerable and unanswerable examples, median seconds per
answer and answer words (markers excluded) per second, and from the trace the mean steps and tokens per step.
--ar-limit runs autoregressive systems (slow on CPU) on the first N examples of the same sample.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel, ConfigDict, ValidationError  # noqa: E402

from generator.base import available_generators, get_generator  # noqa: E402
from pipeline.text import MARKER_RE, find_markers  # noqa: E402
from pipeline.types import GenerationRequest, GenerationResult, Passage  # noqa: E402
from pipeline.errors import ModelLoadError  # noqa: E402
from validation.text import is_refusal, strip_markers, token_f1  # noqa: E402 - the metrics validation uses too

# label -> (generator name, options); a label not listed here is tried as a generator name with no options
SYSTEMS: dict[str, tuple[str, dict]] = {
    "extractive": ("extractive", {}),
    "smollm2": ("smollm2", {}),
    "sculpt": ("sculpt", {}),
    "sculpt-naive": ("sculpt", {"sampler": "naive"}),
}
AUTOREGRESSIVE = frozenset({"smollm2", "hf-causal"})  # generator names that --ar-limit caps


# -- examples --------------------------------------------------------------------------------------------
class EvalPassage(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    title: str = ""
    text: str
    relevant: bool = False


class Example(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    doc: str = ""
    question: str
    passages: tuple[EvalPassage, ...]
    gold: str
    answerable: bool

    def request(self) -> GenerationRequest:
        return GenerationRequest(question=self.question, passages=tuple(
            Passage(number=p.number, title=p.title, text=p.text) for p in self.passages))


def load_examples(path: str | Path, limit: int | None = None, seed: int = 0) -> list[Example]:
    """Examples in a deterministic stratified order, the first `limit` of them when set.

    Within each source, answerable and unanswerable examples are shuffled (seeded by source) and interleaved
    in proportion; the sources are then interleaved in proportion to their sizes. So every prefix holds the
    sources (and, within each, the unanswerable share) in proportion, and the sample of N is the first N of
    the sample of any larger limit (which is how --ar-limit picks its subset).
    """
    examples = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            examples.append(Example.model_validate_json(line))
        except ValidationError as e:
            raise ValueError(f"{path}:{lineno} is not a valid example (see the module docstring): {e}") from e
    sources: dict[str, list[Example]] = defaultdict(list)
    for ex in sorted(examples, key=lambda ex: ex.id):
        sources[ex.source].append(ex)
    per_source = []
    for source, items in sorted(sources.items()):
        groups = [[ex for ex in items if ex.answerable], [ex for ex in items if not ex.answerable]]
        for group in groups:
            random.Random(f"{seed}:{source}").shuffle(group)
        per_source.append(_interleave(groups))
    ordered = _interleave(per_source)
    return ordered[:limit] if limit is not None else ordered


def _interleave(groups: Sequence[Sequence]) -> list:
    """All items, the i-th of a group of n placed at (i + 0.5) / n (ties: earlier group first)."""
    keyed = [((i + 0.5) / len(g), k, i) for k, g in enumerate(groups) for i in range(len(g))]
    return [groups[k][i] for _, k, i in sorted(keyed)]


# -- metrics (pure) --------------------------------------------------------------------------------------
WORD_RE = re.compile(r"\w+")
SENT_RE = re.compile(r"(?<=[.!?])\s+")


def citation_correct(result: GenerationResult, example: Example) -> bool:
    """Answerable: cites >=1 passage, all relevant. Unanswerable: a refusal citing nothing."""
    cited = {c.passage_number for c in result.citations}
    if not example.answerable:
        return is_refusal(result.text) and not cited
    relevant = {p.number for p in example.passages if p.relevant}
    return bool(cited) and cited <= relevant


def well_formed(result: GenerationResult, example: Example) -> bool:
    """Every raw marker names a given passage, and a non-refusal has at least one marker."""
    markers = find_markers(result.raw_text or result.text)
    given = {p.number for p in example.passages}
    if not markers and not is_refusal(result.text):
        return False
    return all(m in given for m in markers)


def repeated_ngram_rate(texts: Sequence[str], n: int = 3) -> float:
    """Word n-grams repeating an earlier n-gram of the same text, over all n-grams of all texts (0 if none)."""
    repeats = total = 0
    for text in texts:
        words = WORD_RE.findall(MARKER_RE.sub(" ", text).lower())
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return repeats / total if total else 0.0


def _four_grams(text: str) -> list[tuple[str, ...]]:
    words = WORD_RE.findall(text.lower())
    return [tuple(words[i:i + 4]) for i in range(len(words) - 3)]


def verbatim_faithful(text: str, passages: Sequence[str]) -> bool | None:
    """True when every quoted sentence is copied exactly, False when one is not, None when none is a quote.

    `passages` are the passage texts. Sentences end at . ! ? followed by a space, and at line breaks.
    """
    collapsed = [" ".join(p.split()) for p in passages]
    known = {g for p in collapsed for g in _four_grams(p)}
    verdict = None
    sentences = [s for line in text.splitlines() for s in SENT_RE.split(strip_markers(line))]
    for sentence in sentences:
        grams = _four_grams(sentence)
        if len(WORD_RE.findall(sentence)) < 5 or not grams:
            continue
        if sum(g in known for g in grams) / len(grams) < 0.5:
            continue  # the model's own words, not a quote
        core = sentence.rstrip().rstrip(".!?")
        verdict = any(core in p for p in collapsed)
        if not verdict:
            return False
    return verdict


# -- running ---------------------------------------------------------------------------------------------
def score(example: Example, result: GenerationResult, seconds: float) -> dict:
    """One prediction with its metrics, JSON-ready."""
    words = len(strip_markers(result.text).split())
    trace = result.trace
    steps = trace.steps if trace and trace.steps > 0 else None
    return {
        "id": example.id, "source": example.source, "answerable": example.answerable,
        "question": example.question, "gold": example.gold, "text": result.text, "raw_text": result.raw_text,
        "cited": [c.passage_number for c in result.citations],
        "f1": token_f1(result.text, example.gold),
        "citation_correct": citation_correct(result, example),
        "well_formed": well_formed(result, example),
        "refusal": is_refusal(result.text),
        "verbatim_faithful": verbatim_faithful(result.text, [p.text for p in example.passages]),
        "seconds": seconds, "words": words, "words_per_s": words / seconds if seconds > 0 else 0.0,
        "steps": steps,
        "tokens_per_step": (sum(trace.tokens_per_step) or trace.answer_tokens) / steps if steps else None,
    }


def run_system(label: str, name: str, options: dict, examples: Sequence[Example]) -> list[dict] | None:
    """Predictions of one system on `examples`, or None (with a message) when it cannot be built."""
    if name not in available_generators():
        print(f"skipping {label}: no generator named {name!r} is registered "
              f"(available: {', '.join(available_generators())})", file=sys.stderr)
        return None
    try:
        generator = get_generator(name, **options)
        generator.warm_up()
    except ModelLoadError as e:
        print(f"skipping {label}: {e}", file=sys.stderr)
        return None
    out = []
    for i, ex in enumerate(examples, 1):
        request = ex.request()
        start = time.perf_counter()
        result = generator.generate(request)
        seconds = time.perf_counter() - start
        out.append(score(ex, result, seconds))
        print(f"[{label}] {i}/{len(examples)} {seconds:.2f}s", file=sys.stderr)
    return out


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarize(preds: Sequence[dict]) -> dict:
    answerable = [p for p in preds if p["answerable"]]
    unanswerable = [p for p in preds if not p["answerable"]]
    faithful = [p["verbatim_faithful"] for p in preds if p["verbatim_faithful"] is not None]
    return {
        "n": len(preds),
        "f1": _mean(p["f1"] for p in preds),
        "f1_answerable": _mean(p["f1"] for p in answerable),
        "citation_accuracy": _mean(p["citation_correct"] for p in preds),
        "well_formed": _mean(p["well_formed"] for p in preds),
        "repeated_trigram_pct": 100 * repeated_ngram_rate([p["text"] for p in preds], 3),
        "verbatim_faithful": _mean(faithful), "answers_with_quotes": len(faithful),
        "refusal_answerable": _mean(p["refusal"] for p in answerable),
        "refusal_unanswerable": _mean(p["refusal"] for p in unanswerable),
        "median_s": statistics.median(p["seconds"] for p in preds) if preds else None,
        "median_words_per_s": statistics.median(p["words_per_s"] for p in preds) if preds else None,
        "mean_steps": _mean(p["steps"] for p in preds),
        "mean_tokens_per_step": _mean(p["tokens_per_step"] for p in preds),
    }


def by_source(preds: Sequence[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        groups[p["source"]].append(p)
    return {s: {"n": len(g), "f1": _mean(p["f1"] for p in g),
                "citation_accuracy": _mean(p["citation_correct"] for p in g)} for s, g in sorted(groups.items())}


# -- tables and CLI --------------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_table(reports: Sequence[dict]) -> str:
    headers = ("system", "n", "F1", "F1 (answerable)", "citation acc", "well-formed", "rep. 3-gram %",
               "verbatim faithful (answers)", "refuses answerable", "refuses unanswerable", "s/answer (median)",
               "words/s (median)", "steps (mean)", "tokens/step (mean)")
    rows = []
    for r in reports:
        s = r["summary"]
        rows.append((r["label"], str(s["n"]), _fmt(s["f1"]), _fmt(s["f1_answerable"]), _fmt(s["citation_accuracy"]),
                     _fmt(s["well_formed"]), _fmt(s["repeated_trigram_pct"], 1),
                     f"{_fmt(s['verbatim_faithful'])} ({s['answers_with_quotes']})", _fmt(s["refusal_answerable"]),
                     _fmt(s["refusal_unanswerable"]), _fmt(s["median_s"], 2), _fmt(s["median_words_per_s"], 1),
                     _fmt(s["mean_steps"], 1), _fmt(s["mean_tokens_per_step"], 2)))
    return markdown(headers, rows)


def source_table(reports: Sequence[dict]) -> str:
    rows = [(source, r["label"], str(m["n"]), _fmt(m["f1"]), _fmt(m["citation_accuracy"]))
            for r in reports for source, m in r["by_source"].items()]
    return markdown(("source", "system", "n", "F1", "citation acc"), sorted(rows, key=lambda row: row[0]))


def machine_note() -> str:
    import torch

    return f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, default=Path("runs/heldout.jsonl"),
                    help="JSONL file, one example per line (default: the bundled model's held-out split, built "
                         "from ../shared/data on first use)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data, to build the held-out split")
    ap.add_argument("--sculpt-path", type=Path, default=None,
                    help="evaluate this sculpt checkpoint folder instead of the bundled one")
    ap.add_argument("--limit", type=int, default=None, help="a stratified sample of N examples (default: all)")
    ap.add_argument("--ar-limit", type=int, default=None,
                    help="slow systems (autoregressive, and the naive diffusion sampler) answer only the first N "
                         "examples of the sample")
    ap.add_argument("--systems", default="extractive", help=f"comma-separated; known: {', '.join(SYSTEMS)}")
    ap.add_argument("--seed", type=int, default=0, help="seed of the stratified sample")
    ap.add_argument("--json", type=Path, default=None, help="write every prediction and metric here")
    args = ap.parse_args(argv)
    if not args.examples.is_file():
        if args.examples != Path("runs/heldout.jsonl"):
            ap.error(f"no examples file at {args.examples}")
        from generator.sculpt.training.data import heldout_examples, write_jsonl

        print(f"building the held-out split from {args.data} into {args.examples} ...", file=sys.stderr)
        write_jsonl(heldout_examples(args.data), args.examples)

    examples = load_examples(args.examples, args.limit, args.seed)
    reports = []
    for label in [s.strip() for s in args.systems.split(",") if s.strip()]:
        name, options = SYSTEMS.get(label, (label, {}))
        if name == "sculpt" and args.sculpt_path is not None:
            options = {**options, "model_path": str(args.sculpt_path)}
        slow = name in AUTOREGRESSIVE or options.get("sampler") == "naive"
        subset = examples[: args.ar_limit] if slow and args.ar_limit is not None else examples
        preds = run_system(label, name, options, subset)
        if preds is not None:
            reports.append({"label": label, "generator": name, "options": options, "summary": summarize(preds),
                            "by_source": by_source(preds), "predictions": preds})

    note = machine_note()
    if args.json:
        report = {"examples": str(args.examples), "machine": note, "systems": reports}
        args.json.write_text(json.dumps(report, indent=1))
    print(f"\n## Answer quality ({args.examples.name}, {len(examples)} examples)\n")
    print(summary_table(reports))
    print("\n## By source\n")
    print(source_table(reports))
    print(f"\n{note}")
    return reports


if __name__ == "__main__":
    main()
