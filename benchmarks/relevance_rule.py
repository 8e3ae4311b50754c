"""How the relevance rule's parts rank sentences and separate answerable from unanswerable questions.

    python benchmarks/relevance_rule.py [--sets rgb,business_docs,chunking_eval,scifact] [--items 100] [--k 8]
        [--cache runs/relrule.pkl]

For each set's first `--items` questions (seeded order; the first 50 are the dev half), the k passages a
user's question gets (noise level 0: gold passages first where retrieved) and the unanswerable slice (level
1: the k best passages from no gold document) are taken from `evaluation.runner.run_eval`; then every
sentence of those passages is scored once by each part of `generator/sculpt/relevance.py` (embedder cosine,
lexical cover, answer type, heading / header row, labelled row, nothing new, the learned selector's logit).
Variants of the rule are then compared without running the generator:
- top-1: among answerable questions with a gold passage and a sentence holding the answer (rgb and
  business_docs: an accepted answer string in it; scifact and chunking_eval: 80% of its words in the gold
  text), the share whose best-scored sentence holds it;
- refusal rates at thresholds t, answerable-with-gold / unanswerable slice (refuse: best score < t).
The generator's last steps need the passages' lines and are not applied here: for code questions
`relevance.defined_terms_answer` (a definition's first sentence scores at least what its line's later ones
do), and for every question a lead-in's loss and its list's lift (`relevance.listed_items_answer`).

With `--cache`, each set's scored records are kept in that pickle (the retrieval and the model's parts,
about 10 minutes a set), so a later run, or a script that tries a variant of the rule, skips the model. The
parts are kept as they were scored: after a change to generator/sculpt/relevance.py, start a new cache.
"""

from __future__ import annotations

import argparse
import pickle
import re
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.sculpt import build_sculpt  # noqa: E402
from generator.sculpt import relevance as R  # noqa: E402
from generator.sculpt.features import featurize, passage_windows  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.types import Passage  # noqa: E402
from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
W = 0.05  # relevance.LEARNED_WEIGHT
VARIANTS = {  # name: (use the table-row parts, the learned selector's share of a sentence x in record rec)
    "cos + cover + type": (False, lambda x, rec: 0.0),
    "+ 0.05 x learned": (False, lambda x, rec: W * x["learned"]),
    "+ header rows, labelled rows (the rule)": (True, lambda x, rec: W * x["learned"]),
    "the rule without the learned share": (True, lambda x, rec: 0.0),
    "the rule, logit relative to 'none'": (True, lambda x, rec: W * (x["learned"] - rec["none"])),
    "the rule, logit floored at -8": (True, lambda x, rec: W * max(x["learned"], -8.0)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="rgb,business_docs,chunking_eval,scifact")
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cache", type=Path, help="keep the scored records in this pickle; a later run with it skips the model")
    args = ap.parse_args()
    cached = pickle.loads(args.cache.read_bytes()) if args.cache and args.cache.exists() else {}
    settings = Settings()
    settings = settings.model_copy(update={"validation": settings.validation.model_copy(update={"repair_rounds": 0})})
    gen = None
    for name in args.sets.split(","):
        key = (name, args.items, args.k)
        if key not in cached:
            if gen is None:
                gen = build_sculpt()
                gen.warm_up()
            ds = load_dataset(name, limit=args.items if name == "scifact" else None)
            ds = replace(ds, items=ds.items[: args.items])
            report = run_eval(EvalRun(dataset=ds, generators=["extractive"], k=args.k, settings=settings,
                                      noise=(0.0, 1.0)))
            cached[key] = [score_parts(gen, rec) for rec in report["items"] if rec.get("passages")]
            if args.cache:
                args.cache.write_bytes(pickle.dumps(cached))
        records = cached[key]
        print(f"\n{name} ({args.items} questions, k={args.k})")
        print("| variant | top-1 | " + " | ".join(f"t={t}" for t in THRESHOLDS) + " |")
        print("|---|---|" + "---|" * len(THRESHOLDS))
        for variant, (tables, share) in VARIANTS.items():
            top1, refusals = evaluate(name, records, tables, share)
            print(f"| {variant} | {top1:.3f} | " + " | ".join(f"{a:.2f} / {u:.2f}" for a, u in refusals) + " |")


def score_parts(gen, rec: dict) -> dict:
    """The record with each passage sentence's relevance parts (relevance.parts) and learned selector logit."""
    model, tok = gen._model, gen._tokenizer
    windows = passage_windows(tok, [Passage(number=p["number"], text=p["text"]) for p in rec["passages"]],
                              model.cfg.max_passage_tokens, model.cfg.max_passages)
    batch = featurize(tok, model.cfg, [rec["question"]], [[p.text for p in windows]])
    memory = model.encode(batch)
    sid, select, index = batch.sentence[0], memory.select[0], memory.sent_index[0]
    keys, texts = R.sentence_texts(batch)
    learned = [float(select[index[int(np.flatnonzero(sid == key)[0])]]) for key in keys]
    found = R.parts(model.embed_hidden, tok, rec["question"], texts)
    return {**rec, "parts": [{**x, "text": t, "learned": lg} for x, t, lg in zip(found, texts, learned)],
            "none": float(select[-1]), "gold_given": rec["answers"]["extractive"].get("gold_given")}


def score(x: dict, rec: dict, tables: bool, share) -> float:
    return R.combine(x, tables) + share(x, rec)


def holds(set_name: str, rec: dict, text: str) -> bool:
    if set_name in ("rgb", "business_docs", "manuals"):
        return any(a and a.lower() in text.lower() for a in (rec.get("aliases") or [rec["gold_answer"]]))
    gold, words = set(re.findall(r"\w+", rec["gold_answer"].lower())), re.findall(r"\w+", text.lower())
    return len(words) >= 4 and sum(w in gold for w in words) / len(words) >= 0.8


def evaluate(set_name: str, records: list[dict], tables: bool, share):
    top1, answerable, unanswerable = [], [], []
    for rec in records:
        scores = [score(x, rec, tables, share) for x in rec["parts"]]
        if not scores:
            continue
        best = max(scores)
        if rec["answerable"] and rec["gold_given"]:
            answerable.append(best)
            if any(holds(set_name, rec, x["text"]) for x in rec["parts"]):
                top1.append(holds(set_name, rec, rec["parts"][scores.index(best)]["text"]))
        elif not rec["answerable"]:
            unanswerable.append(best)
    share = lambda xs, t: sum(x < t for x in xs) / max(len(xs), 1)  # noqa: E731
    return (statistics.mean(top1) if top1 else float("nan"),
            [(share(answerable, t), share(unanswerable, t)) for t in THRESHOLDS])


if __name__ == "__main__":
    main()
