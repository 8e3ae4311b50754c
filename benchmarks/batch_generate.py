"""Batched denoising side by side: answers/s and per-request latency when concurrent requests are denoised
together (`generate_batch`) against one at a time (`generate`), in one run, for the bundled sculpt model and
for the LLaDA-shaped model of benchmarks/sampler_bench.py.

A burst of --requests requests is served in waves of b (b = 1, 4, 16). One at a time answers a wave's
requests one after another (a request's latency: its own time plus that of the wave's requests before it);
batched answers the whole wave with one `generate_batch` call (each request's latency: that call).
answers/s = requests / total time. One-at-a-time times are measured per request, batched ones per wave call,
each the median of --repeats; each wave runs one way and then the other, back to back, so load on a shared
machine hits both alike. "same answers":
the share of batched answers whose text equals the one-at-a-time answer (the contract says 1.00).

sculpt: the shipped checkpoint on RGB questions (../shared/data/qa/rgb) with 5 passages each. LLaDA-shaped:
sampler_bench's random-weight model and BPE tokenizer (its `build_model`, `train_tokenizer`), ~1,000-token
prompts of RGB passages, a 128-token answer in blocks of 32, 64 steps, prefix cache. Random weights decide
nothing about quality here; the cost per step is real. --quick shrinks both to a smoke run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generator.base import Generator  # noqa: E402
from pipeline.types import DiffusionConfig, GenerationRequest, GenerationResult, Passage  # noqa: E402
from sampler_bench import build_model, rgb_rows, table, train_tokenizer  # noqa: E402

HEADERS = ("model", "wave", "mode", "answers/s", "p50 latency s", "p95 latency s", "x one at a time",
           "same answers")


def sculpt_setup(rows: list[dict], n: int, quick: bool) -> tuple[Generator, list[GenerationRequest]]:
    from generator.sculpt import SculptGenerator

    gen = SculptGenerator(device="cpu")
    gen.warm_up()
    k = 3 if quick else 5
    requests = [GenerationRequest(question=r["query"], passages=tuple(
        Passage(number=i + 1, text=t) for i, t in enumerate((list(r["positive"]) + list(r["negative"]))[:k])))
        for r in rows[:n]]
    return gen, requests


def llada_setup(rows: list[dict], n: int, quick: bool) -> tuple[Generator, list[GenerationRequest]]:
    from transformers import PreTrainedTokenizerFast

    from generator.denoisers.llada import LLaDAConfig
    from generator.diffusion import DiffusionGenerator

    tok = train_tokenizer(rows, 512 if quick else 4096)
    V = tok.get_vocab_size()
    if quick:  # sampler_bench --dry-run's toy sizes
        config = LLaDAConfig(d_model=64, n_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=V, embedding_size=V,
                             max_sequence_length=2048)
        target, sampling = 300, DiffusionConfig(gen_length=32, block_length=16, steps=16)
    else:  # sampler_bench's CPU model
        config = LLaDAConfig(d_model=128, n_heads=4, n_layers=4, mlp_hidden_size=344, vocab_size=V, embedding_size=V,
                             max_sequence_length=2048)
        target, sampling = 1000, DiffusionConfig(gen_length=128, block_length=32, steps=64)
    den = build_model(config, torch.device("cpu"), torch.float32, 4.0, tok.token_to_id("<|mask|>"),
                      tok.token_to_id("<|eos|>"))
    den.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|eos|>",
                                            mask_token="<|mask|>")
    gen = DiffusionGenerator(denoiser=den, config=sampling, name="llada-shaped")
    return gen, [long_request(gen, r, rows, target) for r in rows[:n]]


def long_request(gen, row: dict, rows: list[dict], target: int) -> GenerationRequest:
    """The row's question over its passages, then other rows' passages, until the prompt has ~target tokens."""
    texts = list(row["positive"]) + list(row["negative"])
    others = (t for r in rows if r is not row for t in r["negative"])
    while True:
        request = GenerationRequest(question=row["query"],
                                    passages=tuple(Passage(number=i + 1, text=t) for i, t in enumerate(texts)))
        if len(gen.encode_prompt(request)) >= target:
            return request
        texts.append(next(others))


def measure(gen, requests: list[GenerationRequest], waves: list[int], repeats: int) -> list[dict]:
    """Rows of the table for one model: one at a time and batched, per wave size. Each wave runs one at a
    time and then batched, back to back, so a shared machine's load hits both alike."""
    n = len(requests)
    single = {b: [[] for _ in requests] for b in waves}  # per request: its times alone
    batched = {b: [[] for _ in range(0, n, b)] for b in waves}  # per wave: its batch call's times
    alone: list[GenerationResult] = [gen.generate(r) for r in requests]  # also warms lazy state up
    together: dict[int, list[GenerationResult]] = {b: [] for b in waves}
    for _ in range(repeats):
        for b in waves:
            together[b] = []
            for w, start in enumerate(range(0, n, b)):
                for i in range(start, min(start + b, n)):
                    t0 = time.perf_counter()
                    gen.generate(requests[i])
                    single[b][i].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                together[b] += gen.generate_batch(requests[start:start + b])
                batched[b][w].append(time.perf_counter() - t0)
    out = []
    for b in waves:
        t_single = [statistics.median(t) for t in single[b]]
        t_wave = [statistics.median(t) for t in batched[b]]
        seq_latency = [sum(t_single[start:i + 1]) for start in range(0, n, b) for i in range(start, min(start + b, n))]
        batch_latency = [t_wave[w] for w, start in enumerate(range(0, n, b)) for _ in range(start, min(start + b, n))]
        seq_rate, batch_rate = n / sum(t_single), n / sum(t_wave)
        same = sum(a.text == c.text for a, c in zip(alone, together[b])) / n
        for mode, rate, latency, x, agree in (("one at a time", seq_rate, seq_latency, 1.0, None),
                                               ("batched", batch_rate, batch_latency, batch_rate / seq_rate, same)):
            out.append({"model": gen.name, "wave": b, "mode": mode, "answers_per_s": rate,
                        "p50_s": float(np.percentile(latency, 50)), "p95_s": float(np.percentile(latency, 95)),
                        "speedup": x, "same_answers": agree})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4 requests, waves 1, 2, 4, toy LLaDA")
    ap.add_argument("--models", default="sculpt,llada", help="comma-separated: sculpt, llada")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default; 1 is steadier on a shared machine)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 4 if args.quick else args.requests
    waves = [1, 2, 4] if args.quick else [b for b in (1, 4, 16) if b <= n]
    rows = rgb_rows()
    setups = {"sculpt": sculpt_setup, "llada": llada_setup}
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in setups:
            sys.exit(f"unknown model {name!r}; use {', '.join(setups)}")
        gen, requests = setups[name](rows, n, args.quick)
        results += measure(gen, requests, waves, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    title = (f"Batched vs one-at-a-time generation on cpu, {torch.get_num_threads()} threads: {n} requests in "
             f"waves of {', '.join(map(str, waves))}, median of {args.repeats}")
    table(title, [(r["model"], r["wave"], r["mode"], f"{r['answers_per_s']:.2f}", f"{r['p50_s']:.2f}",
                   f"{r['p95_s']:.2f}", f"{r['speedup']:.2f}",
                   "-" if r["same_answers"] is None else f"{r['same_answers']:.2f}") for r in results], HEADERS)


if __name__ == "__main__":
    main()
