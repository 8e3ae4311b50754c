"""The bundled model's samplers side by side, on the passages of real evaluation questions, in one process.

    python benchmarks/sculpt_samplers.py [--sets rgb,business_docs,manuals] [--limit 100] [--k 8]

For each set's first --limit questions, the k passages `sculptrag eval` gives them (noise level 0: gold
passages first where retrieved; taken from `run_eval` with the extractive generator, so no sculpt time is
spent there) are answered by each system, the systems taking turns question by question:
- sculpt: the default (relevance rule, clause-level quotes, parallel sampler: a span's drafts in one canvas
  row, accepted when the model gives them `accept` probability);
- sculpt-fast: the same with the fast sampler (a canvas row per draft; exact: the one-slot-per-step answer);
- sculpt-old: the checkpoint's earlier behaviour (learned selector, whole sentences, fast sampler).
Per system: median and 90th percentile generation seconds over all questions (models loaded and warmed up
first), the median as a multiple of sculpt-old's, mean model calls and canvas rows per answer, answer tokens
per second, and the answers identical to sculpt-fast's (raw text, citations included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402
from generator.sculpt import build_sculpt  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.types import GenerationRequest, Passage  # noqa: E402

SYSTEMS = {"sculpt": {}, "sculpt-fast": {"sampler": "fast"},
           "sculpt-old": {"selector": "learned", "clauses": False, "sampler": "fast"}}


def requests(sets: list[str], limit: int, k: int) -> list[GenerationRequest]:
    settings = Settings()
    settings = settings.model_copy(update={"validation": settings.validation.model_copy(update={"repair_rounds": 0})})
    out = []
    for name in sets:
        ds = load_dataset(name, limit=limit if name == "scifact" else None)
        ds = replace(ds, items=ds.items[:limit])
        report = run_eval(EvalRun(dataset=ds, generators=["extractive"], k=k, settings=settings))
        out += [GenerationRequest(question=r["question"], passages=tuple(
            Passage(number=p["number"], text=p["text"], section=p.get("section") or "") for p in r["passages"]))
            for r in report["items"] if r.get("passages")]
    return out


def request_options(description: str) -> argparse.Namespace:
    """--sets, --limit and --k: which evaluation requests `requests` builds (also benchmarks/sculpt_runtimes.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--sets", default="rgb,business_docs,manuals")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--k", type=int, default=8)
    return ap.parse_args()


def main() -> None:
    args = request_options(__doc__.split("\n")[0])
    reqs = requests(args.sets.split(","), args.limit, args.k)
    base = build_sculpt()
    base.warm_up()
    gens = {name: base.with_options(**opts) for name, opts in SYSTEMS.items()}
    model, rows = base._model, []
    real = model.forward_many

    def counted(canvases, memories, only=None):
        rows.append(sum(c.shape[0] for c in canvases))
        return real(canvases, memories, only)

    model.forward_many = counted
    for gen in gens.values():
        gen.generate(reqs[0])
    stats = {name: {"s": [], "calls": [], "rows": [], "tokens": [], "raw": []} for name in gens}
    for request in reqs:
        for name, gen in gens.items():
            rows.clear()
            t0 = time.perf_counter()
            result = gen.generate(request)
            s = stats[name]
            s["s"].append(time.perf_counter() - t0)
            s["calls"].append(len(rows))
            s["rows"].append(sum(rows))
            s["tokens"].append(result.trace.answer_tokens)
            s["raw"].append(result.raw_text)
    old = statistics.median(stats["sculpt-old"]["s"])
    print(f"\n{len(reqs)} questions ({args.sets}, first {args.limit} each, k={args.k})\n")
    print("| system | median s | p90 s | x sculpt-old | model calls | canvas rows | answer tokens/s | same as sculpt-fast |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in stats.items():
        med, p90 = statistics.median(s["s"]), statistics.quantiles(s["s"], n=10)[-1]
        same = sum(a == b for a, b in zip(s["raw"], stats["sculpt-fast"]["raw"])) / len(reqs)
        print(f"| {name} | {med:.3f} | {p90:.3f} | {med / old:.2f} | {statistics.mean(s['calls']):.2f} | "
              f"{statistics.mean(s['rows']):.1f} | {sum(s['tokens']) / sum(s['s']):.1f} | {same:.3f} |")


if __name__ == "__main__":
    main()
