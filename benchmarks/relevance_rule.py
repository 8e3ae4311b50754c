"""How the relevance rule's parts rank sentences and separate answerable from unanswerable questions.

    python benchmarks/relevance_rule.py [--sets rgb,business_docs,chunking_eval,scifact] [--items 100] [--k 8]
        [--cache runs/relrule.pkl] [--calibrate] [--model-path DIR]

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
do), and for every question a lead-in's loss and its list's lift (`relevance.listed_items_answer`), and a
definition's later sentences read with its term (`relevance.definition_heads`), and a sentence that leans on
the one before it read after it (`relevance.dependent_heads`).

With `--calibrate` (and two sets or more), a learned answer-or-refuse decision is tried against the rule's
threshold, leave one set out: a logistic regression over features of a question's scored sentences
(`FEATURES`: the best score, its margin over the second, the best sentence's parts, the learned selector's
"none" logit, how much of the question's words and numbers the best sentence's passage holds) is fitted on
the dev halves of the other sets (answerable with a gold passage: answer; unanswerable slice: refuse), its
cut set where it refuses 8% of their answerable questions, and scored on the held-out set's dev half.

With `--cache`, each set's scored records are kept in that pickle (the retrieval and the model's parts,
about 10 minutes a set), so a later run, or a script that tries a variant of the rule, skips the model. The
parts are kept as they were scored: after a change to generator/sculpt/relevance.py, start a new cache.
With `--model-path` and a cache, only the learned selector's logits are scored again, with that checkpoint
(no retrieval and no zero-shot parts: a few minutes for the five sets): how checkpoints compare as rankers,
and in the rule, on the same passages. "the learned selector alone" ranks by its logit only.
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
    "the rule, 0.2 x learned": (True, lambda x, rec: 0.2 * x["learned"]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="rgb,business_docs,chunking_eval,scifact")
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cache", type=Path, help="keep the scored records in this pickle; a later run with it skips the model")
    ap.add_argument("--calibrate", action="store_true", help="also try a learned answer-or-refuse decision, leave one set out")
    ap.add_argument("--model-path", help="score the learned selector with this checkpoint (a folder written by "
                    "`sculptrag train-generator`) instead of the bundled one; cached records keep their other parts")
    args = ap.parse_args()
    cached = pickle.loads(args.cache.read_bytes()) if args.cache and args.cache.exists() else {}
    checkpoint = build_sculpt(model_path=args.model_path) if args.model_path else None
    if checkpoint is not None:
        checkpoint.warm_up()
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
        if checkpoint is not None:
            records = cached[key] = [{**rec, **learned_parts(checkpoint, rec)} for rec in records]
        print(f"\n{name} ({args.items} questions, k={args.k}, learned selector: {args.model_path or 'bundled'})")
        print("| variant | top-1 | " + " | ".join(f"t={t}" for t in THRESHOLDS) + " |")
        print("|---|---|" + "---|" * len(THRESHOLDS))
        for variant, (tables, share) in VARIANTS.items():
            top1, refusals = evaluate(name, records, tables, share)
            print(f"| {variant} | {top1:.3f} | " + " | ".join(f"{a:.2f} / {u:.2f}" for a, u in refusals) + " |")
        top1, _ = evaluate(name, records, None, lambda x, rec: x["learned"])
        print(f"| the learned selector alone | {top1:.3f} | " + " | ".join("-" for _ in THRESHOLDS) + " |")

    if args.calibrate:
        calibration_table({name: cached[(name, args.items, args.k)] for name in args.sets.split(",")})


DEV = {"rgb": 50, "business_docs": 50, "manuals": 30, "chunking_eval": 50, "scifact": 50}  # dev halves
NUMBER = re.compile(r"\b\d[\d,.]*\b")
FEATURES = {  # name: what it reads from a question's features (calibration_features)
    "score": ("best",),
    "score + none": ("best", "none"),
    "score + none + question words and numbers in the best passage": ("best", "none", "asked_in_passage",
                                                                      "numbers_in_passage"),
    "all": ("best", "margin", "cos", "cover", "typed", "learned", "none", "max_cos", "max_cover",
            "asked_in_passage", "asked_anywhere", "numbers_in_sentence", "numbers_in_passage", "has_number"),
}


def calibration_features(rec: dict) -> dict | None:
    """What a learned answer-or-refuse decision may read of one record (None: no sentence)."""
    if not rec["parts"]:
        return None
    tables, share = VARIANTS["+ header rows, labelled rows (the rule)"]
    scores = [score(x, rec, tables, share) for x in rec["parts"]]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    top = rec["parts"][order[0]]
    second = scores[order[1]] if len(order) > 1 else scores[order[0]] - 1.0
    sentence = top["text"].lower()
    passage = next((p["text"].lower() for p in rec["passages"] if sentence[:60] in p["text"].lower()), sentence)
    everything = " ".join(p["text"] for p in rec["passages"]).lower()
    asked, numbers = R.terms(rec["question"]), set(NUMBER.findall(rec["question"]))
    share = lambda xs, text: sum(x in text for x in xs) / len(xs) if xs else 1.0  # noqa: E731
    return {"best": scores[order[0]], "margin": scores[order[0]] - second, "cos": top["cos"], "cover": top["cover"],
            "typed": top["typed"], "learned": top["learned"], "none": rec["none"],
            "max_cos": max(x["cos"] for x in rec["parts"]), "max_cover": max(x["cover"] for x in rec["parts"]),
            "asked_in_passage": share(asked, passage), "asked_anywhere": share(asked, everything),
            "numbers_in_sentence": share(numbers, sentence), "numbers_in_passage": share(numbers, passage),
            "has_number": float(bool(numbers))}


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, rounds: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, classes weighted to balance, by Newton
    steps; x is standardised by the caller."""
    x = np.hstack([x, np.ones((len(x), 1))])
    weight = np.where(y == 1, len(y) / (2 * max(y.sum(), 1)), len(y) / (2 * max((1 - y).sum(), 1)))
    w = np.zeros(x.shape[1])
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (weight * (p - y)) + l2 * np.r_[w[:-1], 0.0]
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0.0])
        w -= np.linalg.solve(hess, grad)
    return w


def calibration_table(records: dict[str, list[dict]]) -> None:
    """Leave one set out: the rule's threshold (0.5) against a learned decision, on each held-out dev half."""
    rows = []  # (set, answer?, features)
    for name, recs in records.items():
        order = list(dict.fromkeys(r["id"] for r in recs))
        dev = set(order[:DEV.get(name, 50)])
        for rec in recs:
            label = 1 if rec["answerable"] and rec["gold_given"] else 0 if not rec["answerable"] else None
            f = calibration_features(rec) if rec["id"] in dev and label is not None else None
            if f is not None:
                rows.append((name, label, f))
    print("\nleave one set out: refusals of answerable questions with a gold passage / of the unanswerable slice,"
          " on the held-out set's dev half")
    print("| decision | " + " | ".join(records) + " | mean |")
    print("|---|" + "---|" * (len(records) + 1))
    rule = [[r for r in rows if r[0] == name] for name in records]
    cells = [(np.mean([r[2]["best"] < 0.5 for r in rs if r[1] == 1]), np.mean([r[2]["best"] < 0.5 for r in rs if r[1] == 0]))
             for rs in rule]
    print("| the rule (best score < 0.5) | " + " | ".join(f"{a:.2f} / {u:.2f}" for a, u in cells)
          + f" | {np.mean([c[0] for c in cells]):.2f} / {np.mean([c[1] for c in cells]):.2f} |")
    for label, names in FEATURES.items():
        cells = []
        for held in records:
            train = [r for r in rows if r[0] != held]
            test = [r for r in rows if r[0] == held]
            xt = np.array([[r[2][f] for f in names] for r in train])
            mu, sd = xt.mean(0), xt.std(0) + 1e-9
            yt = np.array([r[1] for r in train], dtype=float)
            w = logistic((xt - mu) / sd, yt)
            prob = lambda rs: 1 / (1 + np.exp(-(np.hstack([(np.array([[r[2][f] for f in names] for r in rs]) - mu) / sd,  # noqa: E731
                                                            np.ones((len(rs), 1))]) @ w)))
            answer = np.sort(prob([r for r in train if r[1] == 1]))
            cut = answer[int(0.08 * len(answer))]
            p = prob(test)
            y = np.array([r[1] for r in test])
            cells.append(((p[y == 1] < cut).mean(), (p[y == 0] < cut).mean()))
        print(f"| learned: {label} | " + " | ".join(f"{a:.2f} / {u:.2f}" for a, u in cells)
              + f" | {np.mean([c[0] for c in cells]):.2f} / {np.mean([c[1] for c in cells]):.2f} |")


def selector_logits(gen, rec: dict) -> tuple[list[str], list[float], float]:
    """The record's passage sentences as the featurizer splits them, the learned selector's logit of each, and its
    "none" logit, from `gen`'s model."""
    model, tok = gen._model, gen._tokenizer
    windows = passage_windows(tok, [Passage(number=p["number"], text=p["text"]) for p in rec["passages"]],
                              model.cfg.max_passage_tokens, model.cfg.max_passages)
    batch = featurize(tok, model.cfg, [rec["question"]], [[p.text for p in windows]])
    memory = model.encode(batch)
    sid, select, index = batch.sentence[0], memory.select[0], memory.sent_index[0]
    keys, texts = R.sentence_texts(batch)
    return texts, [float(select[index[int(np.flatnonzero(sid == key)[0])]]) for key in keys], float(select[-1])


def learned_parts(gen, rec: dict) -> dict:
    """A scored record's learned parts again, from another checkpoint (the other parts are kept)."""
    texts, learned, none = selector_logits(gen, rec)
    assert texts == [x["text"] for x in rec["parts"]], "the cached sentences are not this featurizer's"
    return {"parts": [{**x, "learned": lg} for x, lg in zip(rec["parts"], learned)], "none": none}


def score_parts(gen, rec: dict) -> dict:
    """The record with each passage sentence's relevance parts (relevance.parts) and learned selector logit."""
    texts, learned, none = selector_logits(gen, rec)
    found = R.parts(gen._model.embed_hidden, gen._tokenizer, rec["question"], texts)
    return {**rec, "parts": [{**x, "text": t, "learned": lg} for x, t, lg in zip(found, texts, learned)],
            "none": none, "gold_given": rec["answers"]["extractive"].get("gold_given")}


def score(x: dict, rec: dict, tables: bool | None, share) -> float:
    """The rule's parts (with or without the table-row ones; None: none at all) plus the learned share."""
    return (0.0 if tables is None else R.combine(x, tables)) + share(x, rec)


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
