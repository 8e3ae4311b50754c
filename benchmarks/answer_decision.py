"""How well the sculpt generator's answer-or-refuse decision separates answerable from unanswerable questions.

    python benchmarks/answer_decision.py [--sets rgb,business_docs,manuals,lib-a,lib-b,lib-c,lib-d,lib-f]
        [--half dev|held] [--model-path DIR] [--told-share S] [--thresholds 0.3,0.4,0.5,0.6,0.7]
        [--json runs/answer_decision.json]

The sets are the ones the bundled checkpoint never trained on, each on its dev half: rgb and business_docs their
first 50 questions, manuals its first 30, library sets a and b all their questions, and library sets c, d and f
their case halves (ids 01-16 and 33-36); `--half held` takes the other halves of c, d and f, which no choice may
be made on. Set e is never read. Every question is asked with the k=8 passages `sculptrag eval` gives it, and each
answerable one again with distractor-only passages (the eval's noise level 1: its gold documents left out), which
makes it unanswerable. The decision score of a request is its best sentence score with the learned selector's
share, less UNTYPED for a sentence without the kind of value asked for (`relevance.decision_score`): the number
the generator compares with its answer threshold (`generator/sculpt/relevance.py`); it is read by wrapping
`relevance.decision_score` while the generator answers ("bare": the same without the learned share, in the JSON
rows). A question that tells a situation first reads the sampling's `told_share` of the learned share (0.5;
`--told-share` measures another).

Printed, per set, pooled, and pooled by the question's shape (one sentence, or a user's situation told before
the question: `relevance.question_sentences`): the AUC of the decision score (answerable questions against
unanswerable questions and slices), and at each threshold t: answerable refused / unanswerable refused /
answerable answered with a gold fact.
The generator answers at the lowest t, so a refusal at a higher t is exact (the generator's own refusals, e.g. a
name no passage holds, plus score < t); the facts at a higher t count the answers given at the lowest, whose
further quotes may differ where the threshold also cuts them (the generator's cut is max(min(threshold,
quote_floor), top - margin)). This is how a checkpoint's `answer_threshold` is chosen (docs/benchmarks.md: the
largest that refuses at most 10% of the pooled answerable questions, printed last on a 0.01 grid from the lowest t)
and how a change to the relevance rule is judged on its separation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import library_manuals as LM  # noqa: E402
from answer_eval import DEV_HALF  # noqa: E402
from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402
from generator.base import register_generator  # noqa: E402
from generator.sculpt import build_sculpt  # noqa: E402
from generator.sculpt import relevance  # noqa: E402
from pipeline.config import Settings  # noqa: E402

SETS = "rgb,business_docs,manuals,lib-a,lib-b,lib-c,lib-d,lib-f"


def case_half(item_id: str) -> bool:
    """Library sets c, d and f: the questions chosen on (dev) are ids 01-16 and 33-36; the rest are held out."""
    n = int(item_id[1:])
    return n <= 16 or 33 <= n <= 36


def dataset(name: str, half: str):
    """(dataset, store folder or None) for a set's half."""
    if name.startswith("lib-"):
        s = name[4:]
        if s == "e":
            raise SystemExit("set e is kept for the blind judgement: never run it")
        if s == "a":
            if half != "dev":
                raise SystemExit("set a has no held-out half")
            return load_dataset(LM.QUESTIONS, corpus=LM.corpus()), Path("runs/eval-stores/library-manuals")
        listed = LM.SETS[s]
        ds = load_dataset(listed.with_suffix(".jsonl"),
                          corpus=LM.listed_corpus(listed, Path("runs/eval-corpora") / f"library-manuals-{s}"))
        if s in "cdf":
            ds = replace(ds, items=[it for it in ds.items if case_half(it.id) == (half == "dev")])
        elif half != "dev":
            raise SystemExit(f"set {s} has no held-out half")
        return ds, Path("runs/eval-stores") / f"library-manuals-{s}"
    if half != "dev":
        raise SystemExit(f"{name}: only the library sets c, d and f have a held-out half here")
    ds = load_dataset(name)
    return replace(ds, items=ds.items[:DEV_HALF.get(name, 50)]), None


def auc(pos: list[float], neg: list[float]) -> float:
    p, n = np.array(pos), np.array(neg)
    if not len(p) or not len(n):
        return float("nan")
    return float(((p[:, None] > n[None]) + 0.5 * (p[:, None] == n[None])).mean())


def collect(name: str, half: str, settings: Settings) -> list[dict]:
    """One row per request of the "sculpt-decision" generator: answerable, the decision score, the same score
    without the learned share ("bare", the zero-shot rule alone), the best sentence's score whatever value it gives
    ("best": the decision score before `relevance.decision_score`), whether the question tells a situation first
    (several sentences), its refusal, whether the answer holds a gold fact, and the answer's text."""
    scores: dict[str, float] = {}
    bare: dict[str, float] = {}
    best: dict[str, float] = {}  # the best sentence's score, whatever it gives
    plain, decide = relevance.sentence_relevances, relevance.decision_score

    def recording(hidden, tokenizer, batch, question, titles=frozenset(), shares=(None,), sections=None, seen=None):
        out = plain(hidden, tokenizer, batch, question, titles, (*shares, None), sections, seen)
        if shares[0] is not None:  # the first share is the learned one (the generator's call)
            bare[question] = decide(batch, question, out[-1])
        return out[:len(shares)]

    def deciding(batch, question, score):  # the decision's score, as the generator reads it
        scores[question], best[question] = decide(batch, question, score), float(score.max())
        return scores[question]

    ds, store = dataset(name, half)
    answerable = {it.id for it in ds.items if it.answerable}
    rows = []
    relevance.sentence_relevances, relevance.decision_score = recording, deciding
    try:
        for noise in (None, (1.0,)):
            scores.clear()
            bare.clear()
            best.clear()
            kw = {"store_dir": store} if store else {}
            report = run_eval(EvalRun(dataset=ds, generators=("sculpt-decision",), k=8, settings=settings,
                                      noise=noise, **kw))
            for r in report["items"]:
                if noise and (r.get("slice") != "noise=1" or r.get("id") not in answerable):
                    continue  # the slice of an answerable question (an unanswerable one is asked once, plain)
                a = r["answers"].get("sculpt-decision", {})
                rows.append({"set": name, "id": r.get("id"), "slice": bool(noise),
                             "answerable": bool(r["answerable"]) and not noise,
                             "score": scores.get(r["question"], float("-inf")),
                             "bare": bare.get(r["question"], float("-inf")),
                             "best": best.get(r["question"], float("-inf")),
                             "told": len(relevance.question_sentences(r["question"])) > 1,
                             "refused": bool(a.get("refusal")), "fact": bool(a.get("contains_gold")),
                             "text": a.get("text", "")})
    finally:
        relevance.sentence_relevances, relevance.decision_score = plain, decide
    return rows


def refused(r: dict, t: float) -> bool:
    """A row's request refused at threshold t: by the generator itself (which answered at the lowest t) or by t."""
    return r["refused"] or r["score"] < t


def line(label: str, rows: list[dict], thresholds: list[float]) -> str:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    cells = []
    for t in thresholds:
        cells.append(f"{sum(refused(r, t) for r in ans)} / {sum(refused(r, t) for r in una)} / "
                     f"{sum(r['fact'] and not refused(r, t) for r in ans)}")
    return (f"| {label} | {len(ans)} | {len(una)} | {auc([r['score'] for r in ans], [r['score'] for r in una]):.3f} | "
            + " | ".join(cells) + " |")


def rule(rows: list[dict], lowest: float, share: float = 0.10) -> str:
    """The documented threshold rule over the pooled rows: the largest t (0.01 steps from the lowest, where the
    generator answered) that refuses at most `share` of the answerable questions."""
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    chosen = None
    for t in np.round(np.arange(lowest, lowest + 2.0, 0.01), 2):
        if sum(refused(r, t) for r in ans) <= share * len(ans):
            chosen = float(t)
    if chosen is None:
        return f"threshold rule: no t from {lowest:g} refuses at most {share:.0%} of the answerable questions"
    a, u = sum(refused(r, chosen) for r in ans), sum(refused(r, chosen) for r in una)
    return (f"threshold rule (the largest t refusing at most {share:.0%} of the answerable): t={chosen:g}, "
            f"answerable refused {a}/{len(ans)}, unanswerable refused {u}/{len(una)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=SETS)
    ap.add_argument("--half", choices=("dev", "held"), default="dev")
    ap.add_argument("--model-path", help="a sculpt checkpoint folder (default: the bundled one)")
    ap.add_argument("--told-share", type=float, help="the sampling's told_share (default: its own, 0.5)")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--json", type=Path, default=Path("runs/answer_decision.json"))
    args = ap.parse_args()
    thresholds = sorted(float(t) for t in args.thresholds.split(","))
    settings = Settings()
    settings = settings.model_copy(update={"validation": settings.validation.model_copy(update={"repair_rounds": 0})})
    options = {"answer_threshold": thresholds[0], **({"model_path": args.model_path} if args.model_path else {}),
               **({"told_share": args.told_share} if args.told_share is not None else {})}
    register_generator("sculpt-decision", lambda **kw: build_sculpt(**{**kw, **options}))
    rows: list[dict] = []
    for name in args.sets.split(","):
        rows += collect(name, args.half, settings)
        print(f"{name}: {sum(r['set'] == name for r in rows)} requests", file=sys.stderr, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{args.half} halves; cells: answerable refused / unanswerable refused / answerable answered with a fact")
    print("| set | answerable | unanswerable | AUC | " + " | ".join(f"t={t:g}" for t in thresholds) + " |")
    print("|---|---|---|---|" + "---|" * len(thresholds))
    for name in args.sets.split(","):
        print(line(name, [r for r in rows if r["set"] == name], thresholds))
    print(line("all", rows, thresholds))
    print(line("all: questions of one sentence", [r for r in rows if not r["told"]], thresholds))
    print(line("all: a situation told first", [r for r in rows if r["told"]], thresholds))
    print(rule(rows, thresholds[0]))
    print(f"(json: {args.json})")


if __name__ == "__main__":
    main()
