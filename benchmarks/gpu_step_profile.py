"""Where a cached denoising step's time goes on CUDA: one table, in one call (the GPU lane's follow-up).

    PYTHONPATH=. python3 benchmarks/gpu_step_profile.py          (--tiny: toy sizes on CPU, no graph rows)

The GPU lane measured the LLaDA-8B-shaped model's dual-cache steps at ~34 ms each at batch 1, where the
work is 32 new positions over a 1,280-position cache: ~0.5 TFLOP and ~16 GB of weights read, a few ms on an
H200. This splits one such step (the model's forward over the block, the dual cache of a 1,024-token prompt
and a 256-token answer given) into:
- eager, synchronised: the step as the sampler runs it (median of --steps);
- eager, issue only: the same forwards queued without waiting; when this is as long as the synchronised
  step, the host (Python, kernel launches) and not the GPU sets the pace;
- GPU busy: the sum of the step's kernel times from torch.profiler, with the top kernels;
- CUDA graph replay: the same forward captured once and replayed as the sampler does on CUDA (same inputs,
  same cache); its output is compared with eager's. The gap between this and eager is what launch overhead
  costs.
at batch 1 and 32. Random weights: the cost per step is real, the tokens mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generator.denoisers.base import positions_from_mask  # noqa: E402
from generator.denoisers.blocks import _StepGraph  # noqa: E402
from generator.denoisers.llada import LLaDAConfig  # noqa: E402
from pipeline.types import DiffusionConfig  # noqa: E402
from sampler_bench import build_model, table, timed  # noqa: E402

HEADERS = ("batch", "measure", "ms per step", "note")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def device_us(event) -> float:
    """An event's own device time in microseconds (`self_device_time_total`; `self_cuda_time_total` before)."""
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)


def profile_row(den, ids, cache, b: int) -> tuple:
    """The sum of one step's kernel times (the GPU busy), with its four largest kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        den.forward(ids, None, cache)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if device_us(e) > 0]
    top = sorted(events, key=lambda e: -device_us(e))[:4]
    return (b, "GPU busy (profiler)", f"{sum(map(device_us, events)) / 1e3:.2f}",
            "; ".join(f"{e.key[:38]} {device_us(e) / 1e3:.1f}" for e in top))


def graph_row(den, ids, cache, b: int, ref: torch.Tensor, eager_ms: float, steps: int) -> tuple:
    """The same step as the sampler replays it on CUDA (`blocks._StepGraph`: captured once, then inputs copied
    in, replayed, logits copied out; median of `steps`), its logits against eager's."""
    P, T = cache.length, ids.shape[1]
    positions = positions_from_mask(None, ids.shape[0], P + T + cache.suffix_length, ids.device)[:, P:P + T]
    try:
        graph = _StepGraph(den.model, ids, positions, None, cache)
        out = graph.replay(ids, positions, None)
        torch.cuda.synchronize()
        diff = (out - ref).abs().max().item()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            graph.replay(ids, positions, None)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    except Exception as exc:  # capture refused: say why, keep the other rows
        return (b, "CUDA graph replay", "-", f"capture failed: {exc!r}"[:120])
    replay = statistics.median(times) * 1e3
    return (b, "CUDA graph replay", f"{replay:.2f}", f"{eager_ms / replay:.2f}x eager; max |logit - eager| {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes on CPU (checks the code paths)")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("needs CUDA; use --tiny on CPU")
    device = "cpu" if args.tiny else "cuda"
    if args.tiny:
        config = LLaDAConfig(d_model=64, n_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=1024,
                             embedding_size=1024, max_sequence_length=4096)
        prompt_len, gen, block, batches, dtype = 64, 32, 8, (1, 2), torch.float32
    else:
        config = LLaDAConfig()
        prompt_len, gen, block, batches, dtype = 1024, 256, 32, (1, 32), torch.bfloat16
    mask_id, eos_id = config.vocab_size - 128, config.vocab_size - 383
    den = build_model(config, torch.device(device), dtype, 4.0, mask_id, eos_id)
    den.cuda_graphs = False  # the eager step is what is profiled; the graph rows turn graphs on themselves
    cfg = DiffusionConfig(gen_length=gen, block_length=block, steps=gen // 2, temperature=0.0, use_cache=True,
                          dual_cache=True)
    rows = []
    g = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.randint(0, mask_id - 1, (b, prompt_len + gen), generator=g).to(device)
        x[:, prompt_len:] = mask_id
        _, cache = den.prefill(x, None, prompt_len, prompt_len + block)
        ids = x[:, prompt_len:prompt_len + block].contiguous()
        for _ in range(3):
            den.forward(ids, None, cache)
        times = []
        for _ in range(args.steps):
            sync(device)
            t0 = time.perf_counter()
            ref = den.forward(ids, None, cache)
            sync(device)
            times.append(time.perf_counter() - t0)
        eager = statistics.median(times) * 1e3
        rows.append((b, "eager, synchronised", f"{eager:.2f}", f"median of {args.steps}"))
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            den.forward(ids, None, cache)
        issue = (time.perf_counter() - t0) / args.steps * 1e3
        sync(device)
        rows.append((b, "eager, issue only", f"{issue:.2f}", "host time to queue one step"))
        if device == "cuda":
            rows += [profile_row(den, ids, cache, b), graph_row(den, ids, cache, b, ref, eager, args.steps)]
        del cache, ref
        timed(den, x[:, :prompt_len], cfg.model_copy(update={"gen_length": block, "steps": 4}))
        wall, result = timed(den, x[:, :prompt_len], cfg)
        rows.append((b, "whole sampler step", f"{wall / result.nfe * 1e3:.2f}",
                     f"diffusion_generate, {result.nfe} steps, cache refreshes and sampling included"))
        if device == "cuda":  # the sampler as shipped on CUDA: each block's cached steps replay one graph
            den.cuda_graphs = True
            wall_g, out_g = timed(den, x[:, :prompt_len], cfg)
            den.cuda_graphs = False
            same = torch.equal(out_g.tokens, result.tokens)
            rows.append((b, "whole sampler step, CUDA graphs", f"{wall_g / out_g.nfe * 1e3:.2f}",
                         f"{wall / wall_g:.2f}x eager; ids {'equal to' if same else 'differ from'} eager's"))
        if device == "cuda":
            torch.cuda.empty_cache()
    where = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    table(f"One dual-cache denoising step, LLaDA-shaped, prompt {prompt_len}, answer {gen}, block {block}, "
          f"on {where}", rows, headers=HEADERS)


if __name__ == "__main__":
    main()
