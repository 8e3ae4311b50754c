"""The GPU lane: on a CUDA machine, in one call and under 8 minutes, one table (issue 19).

    scripts/gpu_check.sh            (= PYTHONPATH=. python3 benchmarks/gpu_lane.py; installs nothing)

Rows:
- parity: the golden fixtures (../shared/data/parity, or --parity DIR) through our loaders and sampler on
  CUDA in float32 (as on CPU: logits within 1e-3, ids, trajectories and NFE exact; the torch_cpu_rng and
  informational cases draw from the CUDA generator there, so they are counted apart) and in bfloat16 (ids
  may differ: their agreement with the reference is reported; the fixtures' tiny models are built to be
  sensitive, so that rounding their weights to bf16 alone moves logits by up to 2.7: a floor, not what a
  trained model shows).
- speed: an LLaDA-8B-shaped model (LLaDA-8B-Instruct's config: d_model 4096, 32 layers, 32 heads, MLP 12288,
  vocab 126464) with random bf16 weights, built on the meta device and materialised on CUDA; a 1,024-token
  prompt, 256-token answers, block 32, 128 steps: naive vs prefix cache vs dual cache vs dual cache +
  threshold 0.9 (NFE, median wall time, tokens/s), then batch 1/8/32 throughput with the dual cache; each
  cached mode eager and with CUDA graphs (a block's cached steps replay one captured graph; the default on
  CUDA), the graphs' ids checked against eager's.
--tiny runs the same code on CPU at toy sizes (tests/generator/test_gpu_lane.py does, so the lane is known
to work before a GPU is at hand). --budget-s skips, and says so, whatever would start after the budget.
Random weights are unconfident: the threshold row commits about one token per step here, unlike a trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generator.denoisers.llada import LLaDAConfig  # noqa: E402
from generator.parity import FAMILIES, compare, load_cases, load_model, load_tensors, run_case  # noqa: E402
from pipeline.types import DiffusionConfig  # noqa: E402
from sampler_bench import build_model, table, timed  # noqa: E402

HEADERS = ("part", "setting", "batch", "NFE", "wall s", "tokens/s", "result")
SPEED_MODES = {
    "naive": dict(use_cache=False),
    "prefix cache": dict(use_cache=True),
    "dual cache": dict(use_cache=True, dual_cache=True),
    "dual cache + threshold 0.9": dict(use_cache=True, dual_cache=True, threshold=0.9),
}
# the cached modes run twice: eager, then with each block's cached steps replayed as one CUDA graph (the
# default on CUDA); the graph run's ids are compared with the eager run's
GRAPHED = ("prefix cache", "dual cache", "dual cache + threshold 0.9")


def parity_folder(given: str | None) -> Path | None:
    """--parity, else $SCULPTRAG_SHARED_DATA/parity, ../shared/data/parity, ./shared/data/parity."""
    candidates = [Path(given)] if given else []
    if os.environ.get("SCULPTRAG_SHARED_DATA"):
        candidates.append(Path(os.environ["SCULPTRAG_SHARED_DATA"]) / "parity")
    candidates += [ROOT.parent / "shared" / "data" / "parity", ROOT / "shared" / "data" / "parity"]
    return next((c for c in candidates if (c / "llada" / "cases.json").is_file()), None)


def parity_rows(folder: Path, device: str, dtype: str) -> list[tuple]:
    """One row per family: how many cases match the reference on `device` in `dtype`."""
    rows = []
    cases = load_cases(folder)
    for family in FAMILIES:
        tensors = load_tensors(folder, family)
        den = load_model(folder, family, device=device, dtype=dtype)
        t0 = time.perf_counter()
        exact = rng = rng_total = same_ids = 0
        agreement, worst_logit, failed = [], 0.0, []
        own = [c for c in cases if c.family == family]
        for case in own:
            report = compare(case, run_case(den, case, tensors), tensors)
            worst_logit = max(worst_logit, report.get("max_abs_logit", 0.0))
            if "id_agreement" in report:
                agreement.append(report["id_agreement"])
                same_ids += report["id_agreement"] == 1.0
            if case.determinism == "exact":
                exact += not report["problems"]
                failed += [case.name] if report["problems"] else []
            else:
                rng_total += 1
                rng += not report["problems"]
        n_exact = sum(c.determinism == "exact" for c in own)
        if dtype == "float32":
            result = f"exact {exact}/{n_exact}, RNG-dependent {rng}/{rng_total}, max |dlogit| {worst_logit:.1e}"
            if failed:
                result += f"; differ: {', '.join(failed[:4])}{' ...' if len(failed) > 4 else ''}"
        else:  # the fixtures' models are sensitive by design: bf16 rounding alone flips decisions
            result = (f"id agreement {statistics.mean(agreement):.3f} (all ids equal in {same_ids}/"
                      f"{len(agreement)} generation cases), max |dlogit| {worst_logit:.1e}")
        rows.append((f"parity {device} {dtype}", family, "-", "-", f"{time.perf_counter() - t0:.1f}", "-", result))
    return rows



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes on CPU: checks every code path without a GPU")
    ap.add_argument("--parity", default=None, help="the parity fixtures' folder (default: ../shared/data/parity)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per mode (median)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no row after this many seconds")
    ap.add_argument("--json", default=None, help="also write the rows to this file, as a list of objects")
    args = ap.parse_args()
    start = time.perf_counter()
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("the GPU lane needs CUDA; use --tiny to check its code paths on CPU")
    device = "cpu" if args.tiny else "cuda"
    if args.tiny:
        torch.set_num_threads(1)  # steadier on a shared CPU; the toy model gains nothing from more
    rows: list[tuple] = []

    def over_budget(what: str) -> bool:
        if time.perf_counter() - start > args.budget_s:
            rows.append((what, "-", "-", "-", "-", "-", f"skipped: past the {args.budget_s:.0f} s budget"))
            return True
        return False

    folder = parity_folder(args.parity)
    for dtype in ("float32", "bfloat16"):
        if folder is None:
            rows.append((f"parity {device} {dtype}", "-", "-", "-", "-", "-",
                         "fixtures not found: pass --parity DIR (../shared/data/parity)"))
        elif not over_budget(f"parity {device} {dtype}"):
            rows += parity_rows(folder, device, dtype)

    if args.tiny:
        config = LLaDAConfig(d_model=64, n_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=1024,
                             embedding_size=1024, max_sequence_length=4096)
        prompt_len, gen, block, steps, batches, dtype = 64, 32, 8, 16, (1, 2), torch.float32
    else:  # LLaDA-8B-Instruct's published shape
        config = LLaDAConfig()
        prompt_len, gen, block, steps, batches, dtype = 1024, 256, 32, 128, (1, 8, 32), torch.bfloat16
    # LLaDA-8B-Instruct's mask/EOS ids (126336, 126081), kept at the same distance from the vocabulary's end
    mask_id, eos_id = config.vocab_size - 128, config.vocab_size - 383
    t0 = time.perf_counter()
    den = build_model(config, torch.device(device), dtype, 4.0, mask_id, eos_id)
    params = sum(p.numel() for p in den.model.parameters())
    rows.append(("speed", f"random LLaDA-shaped {params / 1e9:.2f}B, {str(dtype).split('.')[-1]}", "-", "-",
                 f"{time.perf_counter() - t0:.1f}", "-", "built on meta, materialised on " + device))
    g = torch.Generator().manual_seed(0)
    prompts = {b: torch.randint(0, mask_id - 1, (b, prompt_len), generator=g).to(device) for b in batches}
    base = DiffusionConfig(gen_length=gen, block_length=block, steps=steps, temperature=0.0)
    timed(den, prompts[1], base.model_copy(update={"gen_length": block, "steps": 4}))  # warm-up (kernels, allocator)
    graphs = device == "cuda"  # CUDA graphs exist only there (--tiny runs the eager rows)
    for name, kw in SPEED_MODES.items():
        cfg = base.model_copy(update=kw)
        eager = None
        for graphed in (False, True) if graphs and name in GRAPHED else (False,):
            label = name + (" + CUDA graphs" if graphed else "")
            if over_budget(f"speed: {label}"):
                continue
            den.cuda_graphs = graphed
            runs = [timed(den, prompts[1], cfg) for _ in range(args.repeats)]
            wall, out = statistics.median(t for t, _ in runs), runs[-1][1]
            note = f"prompt {prompt_len}, answer {gen}, block {block}, steps {steps}"
            if not graphed:
                eager = (wall, out)
            elif eager is not None:
                note = (f"{eager[0] / wall:.2f}x eager; ids " +
                        ("equal to eager's" if torch.equal(out.tokens, eager[1].tokens) else
                         f"agree with eager's on {(out.tokens == eager[1].tokens).float().mean():.3f}"))
            rows.append(("speed", label, 1, out.nfe, f"{wall:.2f}", f"{gen / wall:.1f}", note))
    for b in batches:
        for graphed in (False, True) if graphs else (False,):
            label = "dual cache" + (" + CUDA graphs" if graphed else "")
            if over_budget(f"throughput: {label}, batch {b}"):
                continue
            den.cuda_graphs = graphed
            wall, out = timed(den, prompts[b], base.model_copy(update=SPEED_MODES["dual cache"]))
            rows.append(("throughput", label, b, out.nfe, f"{wall:.2f}", f"{b * gen / wall:.1f}",
                         f"{b} answers of {gen} tokens"))
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    table(f"GPU lane on {where}, torch {torch.__version__}: {time.perf_counter() - start:.0f} s in all",
          rows, headers=HEADERS)
    if args.json:
        Path(args.json).write_text(json.dumps([dict(zip(HEADERS, r)) for r in rows], indent=1))


if __name__ == "__main__":
    main()
