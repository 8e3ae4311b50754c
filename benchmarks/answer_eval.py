"""The answer table of docs/benchmarks.md: old and new sculpt sampling and the extractive baseline, side by side.

    python benchmarks/answer_eval.py [--sets rgb,scifact,chunking_eval,business_docs,manuals] [--limit 30]
        [--offset N] [--k 8] [--json runs/answer_eval.json] [--systems sculpt-old,sculpt,extractive]
        [--model-path DIR [--model-path-for SET=DIR ...]]

Each set runs through `evaluation.runner.run_eval` twice: as users meet it (retrieval top-k, the pipeline's
validation, no repair) and as its unanswerable slice (noise level 1: the k best retrieved passages that are
not from a gold document, so no passage holds the answer). Systems:

- sculpt-old: the bundled checkpoint with the learned sentence selector deciding answer-or-refuse and which
  sentences to quote, whole sentences only, with the fast sampler (the behaviour before the relevance rule
  and the parallel sampler);
- sculpt: the same checkpoint with the relevance rule (generator/sculpt/relevance.py) and clause-level quotes;
- extractive: the baseline;
- sculpt-new (with `--model-path`): another checkpoint (a folder written by `sculptrag train-generator`) with
  the same sampling as sculpt. `--model-path-for SET=DIR` gives a set its own checkpoint, so that each set is
  answered by a checkpoint that never trained on its corpus (leave-one-corpus-out runs).

Per set and system: answer F1 and "answer contains" (answerable questions), ALCE citation precision and
recall (from the validation stage), refusals of answerable questions that were given a gold passage, refusals
on the unanswerable slice (and on the set's own unanswerable questions, where it has some), quotes that run
over a line break (a heading glued to a sentence) or end mid-word, repeated word trigrams, the validation
pass rate and the median generation time. Then the four `sculptrag demo` questions: is the expected fact in
the answer, and is it in a passage the answer cites.

`--offset` skips the first items of each set's seeded order: the relevance rule's threshold was chosen on
the first 50 of rgb and business_docs (see docs/benchmarks.md) and its code answer type on the first 30 of
manuals (60 questions), so by default each set reports the items after its dev half (DEV_HALF).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.base import register_generator  # noqa: E402
from generator.sculpt import build_sculpt  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402
from evaluation.metrics import mean as _mean  # noqa: E402
from evaluation.report import markdown, table  # noqa: E402
from pipeline.text import MARKER_RE  # noqa: E402

SYSTEMS = ("sculpt-old", "sculpt", "extractive")
DEV_HALF = {"manuals": 30}  # items of each set's seeded order that chose the rule (the rest: 50)
OLD = {"selector": "learned", "clauses": False, "sampler": "fast"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="rgb,scifact,chunking_eval,business_docs,manuals")
    ap.add_argument("--limit", type=int, default=30, help="questions per set, after --offset")
    ap.add_argument("--offset", type=int, default=None, help="default: each set's dev half (50; manuals 30)")
    ap.add_argument("--k", type=int, default=8, help="passages per question (the product default)")
    ap.add_argument("--json", type=Path, default=Path("runs/answer_eval.json"))
    ap.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated, of " + ", ".join(SYSTEMS) + " (a rule change needs only sculpt run again)")
    ap.add_argument("--model-path", help="also answer with this checkpoint (system sculpt-new)")
    ap.add_argument("--model-path-for", action="append", default=[], metavar="SET=DIR",
                    help="sculpt-new's checkpoint for one set (repeatable); the demo uses --model-path")
    args = ap.parse_args()
    register_generator("sculpt-old", lambda **kw: build_sculpt(**{**OLD, **kw}))
    systems = tuple(args.systems.split(",")) + (("sculpt-new",) if args.model_path else ())
    if unknown := set(systems) - set(SYSTEMS) - {"sculpt-new"}:
        ap.error(f"unknown systems: {', '.join(sorted(unknown))}")
    paths = {"demo": args.model_path, **dict(x.split("=", 1) for x in args.model_path_for)}
    current = {"set": "demo"}  # each run_eval builds its own pipeline, so sculpt-new is loaded per set
    if args.model_path:
        register_generator("sculpt-new", lambda **kw: build_sculpt(
            **{**kw, "model_path": paths.get(current["set"], args.model_path)}))
    settings = Settings()
    settings = settings.model_copy(update={"validation": settings.validation.model_copy(update={"repair_rounds": 0})})
    results: dict[str, dict] = {}
    for name in args.sets.split(","):
        current["set"] = name
        offset = args.offset if args.offset is not None else DEV_HALF.get(name, 50)
        ds = load_dataset(name, root=args.data, limit=offset + args.limit if name == "scifact" else None)
        ds = replace(ds, items=ds.items[offset: offset + args.limit])
        plain = run_eval(EvalRun(dataset=ds, generators=systems, k=args.k, settings=settings))
        unans = run_eval(EvalRun(dataset=ds, generators=systems, k=args.k, settings=settings, noise=(1.0,)))
        results[name] = {s: row(plain, unans, s) for s in systems}
        if args.model_path:
            results[name]["sculpt-new"]["checkpoint"] = paths.get(name, args.model_path)
        print_table(name, len(ds.items), results[name])
    current["set"] = "demo"
    results["demo"] = demo(settings, systems)
    print_demo(results["demo"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\n(json: {args.json})")


def row(plain: dict, unans: dict, system: str) -> dict:
    summary = plain["summary"][system]
    answers = [(r["answers"][system], r) for r in plain["items"] if system in r["answers"]]
    answerable = [a for a, r in answers if r["answerable"] and "error" not in a]
    sliced = [a for a, r in unans_rows(unans, system)]
    quotes = [q for a, r in answers if "error" not in a for q in quote_checks(a, r.get("passages", []))]
    return {
        "n": summary["n"],
        "f1": _mean(a["token_f1"] for a in answerable),
        "contains": _mean(a["contains_gold"] for a in answerable),
        "cit_precision": summary["citation_precision"], "cit_recall": summary["citation_recall"],
        "refuse_answerable_gold": summary.get("refusal_answerable_gold"),
        "refuse_unanswerable_slice": _mean(a["refusal"] for a in sliced),
        "refuse_unanswerable_own": summary["refusal_unanswerable"],
        "quotes_over_line": _mean(q["over_line"] for q in quotes),
        "quotes_mid_word": _mean(q["mid_word"] for q in quotes),
        "repeated_trigrams": repeated_trigrams([a["text"] for a, _ in answers if "error" not in a]),
        "pass": summary["pass"],
        "generate_median_s": summary["generate_median_s"],
    }


def unans_rows(report: dict, system: str):
    return [(r["answers"][system], r) for r in report["items"]
            if r.get("slice") == "noise=1" and system in r["answers"] and "error" not in r["answers"][system]]


def quote_checks(answer: dict, passages: list[dict]) -> list[dict]:
    """Each "quote [n]" piece of an answer, located in passage n: does its source span cross a line break, does
    it end inside a word. Pieces that are not verbatim (none, for these systems) are skipped."""
    texts = {p["number"]: p["text"] for p in passages}
    passage_of = {c["marker"]: c["passage"] for c in answer.get("citations", [])}
    out = []
    for m in re.finditer(r"\s*(.*?)\s*\[(\d+)\]", answer.get("text") or "", re.S):
        quote, n = m.group(1).strip(" ."), passage_of.get(int(m.group(2)))
        text = texts.get(n, "")
        pattern = r"\s+".join(re.escape(w) for w in quote.split())
        hit = re.search(pattern, text) if quote else None
        if hit is None:
            continue
        end = hit.end()
        out.append({"over_line": "\n" in hit.group(0),
                    "mid_word": end < len(text) and text[end].isalnum() and text[end - 1].isalnum()})
    return out


def repeated_trigrams(texts: list[str]) -> float | None:
    total = repeated = 0
    for text in texts:
        words = re.sub(r"\s*" + MARKER_RE.pattern, "", text).lower().split()
        seen = set()
        for g in zip(words, words[1:], words[2:]):
            total += 1
            repeated += g in seen
            seen.add(g)
    return repeated / total if total else None


def demo(settings: Settings, systems: tuple[str, ...] = SYSTEMS) -> dict:
    """The `sculptrag demo` questions over the bundled samples (a store of their own under runs/)."""
    from app.cli import SAMPLES
    from pipeline import ingest
    from pipeline.rag import RagPipeline

    s = settings.model_copy(update={"store_dir": Path("runs/answer-eval-demo"), "database_url": None})
    ingest([SAMPLES / "docs"], s, groups=s.default_groups)
    rag = RagPipeline(s)
    out: dict[str, list] = {}
    for system in systems:
        out[system] = []
        for item in json.loads((SAMPLES / "questions.json").read_text()):
            answer = rag.ask(item["question"], generator=system)
            cited = [answer.passages[c.passage_number - 1].text for c in answer.citations]
            fact = item["expect"].lower() in answer.text.lower()
            out[system].append({"question": item["question"], "answer": answer.text, "fact": fact,
                                "cited": fact and any(item["expect"].lower() in t.lower() for t in cited)})
    return out


COLUMNS = [("f1", "F1", "num"), ("contains", "contains", "num"), ("cit_precision", "cit.P", "num"),
           ("cit_recall", "cit.R", "num"), ("refuse_answerable_gold", "refuse ans+gold", "num"),
           ("refuse_unanswerable_slice", "refuse unans", "num"), ("refuse_unanswerable_own", "refuse own unans", "num"),
           ("quotes_over_line", "over line", "num"), ("quotes_mid_word", "mid-word", "num"),
           ("repeated_trigrams", "rep.3g", "num"), ("pass", "pass", "num"), ("generate_median_s", "gen s (med)", "num")]


def print_table(name: str, n: int, rows: dict) -> None:
    print(f"\n{name} ({n} questions)")
    print(markdown(*table(rows, COLUMNS, first="system")))


def print_demo(results: dict) -> None:
    print("\nsculptrag demo questions (expected fact in the answer / and in a cited passage)")
    for system, items in results.items():
        print(f"  {system}: fact {sum(i['fact'] for i in items)}/4, cited {sum(i['cited'] for i in items)}/4")


if __name__ == "__main__":
    main()
