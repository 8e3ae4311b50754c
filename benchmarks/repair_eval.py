"""Validation before and after repair, on the held-out RAG questions (the generator_eval examples).

    python benchmarks/repair_eval.py [--limit N] [--systems sculpt,smollm2] [--ar-limit N] [--rounds R] [--stress]

Each system answers each example's question from its 5 passages; the validation stage
(`validation.Validator`, the default overlap + embedding checker) judges the answer; a failing answer is
repaired by the pipeline's own loop (`pipeline.rag.validate_and_repair`: a generator with `repair`
remasks the failing sentences and denoises them again; any other generator answers again without the passages that only failing
sentences cite) and judged again, up to R rounds. Printed per system: the share of answers that pass / warn
/ fail before and after repair, answer F1 against gold of the answer as the generator wrote it and after
repair (repair must not buy a pass with a worse answer), how many answers were repaired, and the median seconds a repair round costs, next to the
median seconds of the first answer. Model-agnostic: the validator sees only the answer text and passages.

--stress appends to every answer that is not a refusal one sentence it cannot support: the first sentence of
the gold answer of the next example (another document), cited as passage [1], as a generator that drifted
would write it. Validation must fail it and repair must remove or replace it without losing the rest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator_eval import AUTOREGRESSIVE, SYSTEMS, load_examples, machine_note  # noqa: E402

from evaluation.metrics import token_f1  # noqa: E402
from evaluation.report import markdown  # noqa: E402
from generator.base import get_generator  # noqa: E402
from generator.citations import finalize_citations  # noqa: E402
from validation.text import is_refusal, strip_markers  # noqa: E402
from pipeline.rag import validate_and_repair  # noqa: E402
from validation.validate import Validator  # noqa: E402


def judge(validator: Validator, result, request) -> dict:
    markers = {c.marker: c.passage_number for c in result.citations}
    return validator.validate(result.text, [(p.number, p.text) for p in request.passages], markers=markers).to_dict()


def drifted(result, request, foreign: str):
    """The result with `foreign` appended as a sentence citing passage [1] (raw and shown text agree)."""
    raw = f"{result.raw_text} {foreign} [{request.passages[0].number}]"
    text, citations = finalize_citations(raw, request.passages)
    return result.model_copy(update={"raw_text": raw, "text": text, "citations": citations})


def run(label: str, examples, validator: Validator, rounds: int, stress: bool = False) -> dict:
    name, options = SYSTEMS.get(label, (label, {}))
    gen = get_generator(name, **options)
    gen.warm_up()
    rows = []
    for i, ex in enumerate(examples, 1):
        request = ex.request()
        t = time.perf_counter()
        result = gen.generate(request)
        first_s = time.perf_counter() - t
        f1_written = token_f1(result.text, ex.gold)
        if stress and not is_refusal(result.text):
            other = examples[i % len(examples)]
            foreign = strip_markers(other.gold).split(". ")[0].strip().rstrip(".") + "."
            result = drifted(result, request, foreign)
        result, report, rounds_done = validate_and_repair(gen, request, result,
                                                          lambda r: judge(validator, r, request), rounds)
        before = rounds_done[0]["before"] if rounds_done else report["status"]
        f1_before, repair_s = f1_written, [r["seconds"] for r in rounds_done]
        rows.append({"before": before, "after": report["status"], "f1_before": f1_before,
                     "f1_after": token_f1(result.text, ex.gold), "first_s": first_s, "repair_s": repair_s})
        print(f"[{label}] {i}/{len(examples)} {before} -> {report['status']}", file=sys.stderr)
    return {"label": label, "rows": rows}


def share(rows, key: str, status: str) -> str:
    return f"{sum(r[key] == status for r in rows) / len(rows):.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, default=Path("runs/heldout.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--systems", default="sculpt,smollm2")
    ap.add_argument("--ar-limit", type=int, default=12, help="autoregressive systems answer only the first N")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--stress", action="store_true", help="append an unsupported sentence to every answer first")
    args = ap.parse_args(argv)
    if not args.examples.is_file():
        ap.error(f"no examples at {args.examples}: run benchmarks/generator_eval.py once to build the held-out split")
    examples = load_examples(args.examples, args.limit)
    validator = Validator()
    validator.warm_up()
    table = []
    for label in [s.strip() for s in args.systems.split(",") if s.strip()]:
        name = SYSTEMS.get(label, (label, {}))[0]
        subset = examples[: args.ar_limit] if name in AUTOREGRESSIVE else examples
        rows = run(label, subset, validator, args.rounds, args.stress)["rows"]
        repaired = [r for r in rows if r["repair_s"]]
        table.append([
            label, str(len(rows)),
            " / ".join(share(rows, "before", s) for s in ("pass", "warn", "fail")),
            " / ".join(share(rows, "after", s) for s in ("pass", "warn", "fail")),
            f"{statistics.mean(r['f1_before'] for r in rows):.3f}", f"{statistics.mean(r['f1_after'] for r in rows):.3f}",
            str(len(repaired)),
            f"{statistics.median(s for r in repaired for s in r['repair_s']):.2f}" if repaired else "-",
            f"{statistics.median(r['first_s'] for r in rows):.2f}",
        ])
    stress = ", each answer + one unsupported sentence" if args.stress else ""
    print(f"\n## Validation before and after repair ({args.examples.name}, {args.rounds} round(s){stress})\n")
    print(markdown(["system", "n", "pass / warn / fail before", "pass / warn / fail after", "F1 before", "F1 after",
                    "repaired", "s per repair (median)", "s per answer (median)"], table))
    print(f"\n{machine_note()}")


if __name__ == "__main__":
    main()
