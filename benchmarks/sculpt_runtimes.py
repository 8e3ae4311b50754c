"""The bundled model's two runtimes side by side: numpy (the CPU default, no torch import) against torch.

    python benchmarks/sculpt_runtimes.py [--sets rgb,business_docs,manuals] [--limit 100] [--k 8]

The requests are sculpt_samplers.py's: each set's first --limit questions with the k passages `sculptrag
eval` gives them. Each runtime loads the bundled checkpoint in this process (load seconds, torch's import
included for torch, measured first), then answers every request, the two taking turns question by question.
Per runtime: load seconds, median and 90th percentile generation seconds (warm), the median as a multiple
of torch's, and the answers identical to torch's (raw text, citations included). A cold `sculptrag ask`
pays the import and the load once (benchmarks/cold_start.py); a service pays them at start and then the
warm time per answer.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sculpt_samplers import request_options, requests  # noqa: E402

from generator.sculpt import build_sculpt  # noqa: E402


def main() -> None:
    args = request_options(__doc__.split("\n")[0])
    gens, load = {}, {}
    for runtime in ("numpy", "torch"):  # numpy first: its load must not find torch imported already
        t0 = time.perf_counter()
        gens[runtime] = build_sculpt(runtime=runtime)
        gens[runtime].warm_up()
        load[runtime] = time.perf_counter() - t0
    reqs = requests(args.sets.split(","), args.limit, args.k)
    for gen in gens.values():
        gen.generate(reqs[0])
    times = {name: [] for name in gens}
    raw = {name: [] for name in gens}
    for request in reqs:
        for name, gen in gens.items():
            t0 = time.perf_counter()
            result = gen.generate(request)
            times[name].append(time.perf_counter() - t0)
            raw[name].append(result.raw_text)
    ref = statistics.median(times["torch"])
    print(f"\n{len(reqs)} questions ({args.sets}, first {args.limit} each, k={args.k})\n")
    print("| runtime | load s | median s | p90 s | x torch | same answer as torch |")
    print("|---|---|---|---|---|---|")
    for name in gens:
        med, p90 = statistics.median(times[name]), statistics.quantiles(times[name], n=10)[-1]
        same = sum(a == b for a, b in zip(raw[name], raw["torch"]))
        print(f"| {name} | {load[name]:.2f} | {med:.3f} | {p90:.3f} | {med / ref:.2f} | {same}/{len(reqs)} |")
    for q, a, b in zip(reqs, raw["numpy"], raw["torch"]):
        if a != b:
            print(f"\n{q.question}\n  numpy: {a[:300]}\n  torch: {b[:300]}")


if __name__ == "__main__":
    main()
