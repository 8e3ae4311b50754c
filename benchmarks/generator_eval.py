"""Answer quality of RAG generators side by side, on any generator registered with `get_generator`.

    python benchmarks/generator_eval.py --examples FILE.jsonl [--limit N] [--ar-limit N]
        [--systems extractive,smollm2,sculpt,sculpt-naive] [--json OUT]

Input: one example per line, {"id", "source", "doc", "question", "passages": [{"number", "title", "text",
"relevant"}], "gold", "answerable"}; `relevant` marks passages holding evidence for the answer (the others
are hard distractors); `gold` is a reference answer with [n] markers, or exactly `generator.prompt.REFUSAL`.

The script is model-agnostic: a system is a generator name and options, built with `get_generator` (never
imported here), warmed up untimed, then asked each question with the example's passages. Metrics (all from
evaluation.metrics, the summary as evaluation.report tables it), per answer (`text` is the final answer; the raw text is `raw_text`, before markers naming missing passages are dropped):

- answer F1: SQuAD token F1 (lowercase, punctuation and a/an/the removed) with [n] markers removed from both;
  a gold refusal scores 1 for a refusal and 0 otherwise; a refusal against an answerable gold scores 0.
  A refusal is an answer whose normalised text contains "passages do not contain answer" (REFUSAL), "do not
  contain answer", "does not contain answer" or "do(es) not contain this information" (validation.text's
  rules, as the validation stage and `sculptrag eval` use them).
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
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel, ConfigDict, ValidationError  # noqa: E402

from evaluation.metrics import (  # noqa: E402
    citation_correct, is_refusal, mean, summarize_predictions, token_f1, verbatim_faithful, well_formed,
)
from evaluation.report import fmt, markdown, table  # noqa: E402
from generator.base import available_generators, get_generator  # noqa: E402
from pipeline.errors import ModelLoadError  # noqa: E402
from pipeline.types import GenerationRequest, GenerationResult, Passage  # noqa: E402
from validation.text import strip_markers  # noqa: E402

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
        "citation_correct": citation_correct(result, {p.number for p in example.passages if p.relevant},
                                             example.answerable),
        "well_formed": well_formed(result, {p.number for p in example.passages}),
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


def by_source(preds: Sequence[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        groups[p["source"]].append(p)
    return {s: {"n": len(g), "f1": mean(p["f1"] for p in g),
                "citation_accuracy": mean(p["citation_correct"] for p in g)} for s, g in sorted(groups.items())}


# -- tables and CLI --------------------------------------------------------------------------------------
COLUMNS = [("n", "n", "int"), ("f1", "F1", "num"), ("f1_answerable", "F1 (answerable)", "num"),
           ("citation_accuracy", "citation acc", "num"), ("well_formed", "well-formed", "num"),
           ("repeated_trigram_pct", "rep. 3-gram %", ".1f"),
           ("verbatim_faithful", "verbatim faithful (answers)",
            lambda s: f"{fmt(s['verbatim_faithful'], 'num')} ({s['answers_with_quotes']})"),
           ("refusal_answerable", "refuses answerable", "num"), ("refusal_unanswerable", "refuses unanswerable", "num"),
           ("median_s", "s/answer (median)", ".2f"), ("median_words_per_s", "words/s (median)", ".1f"),
           ("mean_steps", "steps (mean)", ".1f"), ("mean_tokens_per_step", "tokens/step (mean)", ".2f")]


def summary_table(reports: Sequence[dict]) -> str:
    return markdown(*table({r["label"]: r["summary"] for r in reports}, COLUMNS, first="system"))


def source_table(reports: Sequence[dict]) -> str:
    rows = [[source, r["label"], str(m["n"]), fmt(m["f1"], "num"), fmt(m["citation_accuracy"], "num")]
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
            reports.append({"label": label, "generator": name, "options": options, "summary": summarize_predictions(preds),
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
