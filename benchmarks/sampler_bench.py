"""Sampler speed side by side: naive (full forward per step) vs prefix KV cache vs dual cache vs cache +
threshold decoding (Fast-dLLM), in one run.

CPU (default): a small random-weight LLaDA-shaped model, a ~1,000-token RAG prompt built from
../shared/data/qa/rgb (tokenized by a byte-level BPE trained on the spot), a 128-token answer. Prints NFE,
wall time (median of --repeats), tokens/s, speed-up over naive, and answer agreement with naive (the fraction
of answer positions equal), on the timed prompt and on --agreement-prompts other questions.

--gpu: a LLaDA-8B-shaped model (d_model 4096, 32 layers, vocab 126464) with random bf16 weights on CUDA,
a 1,024-token prompt, a 256-token answer, the same modes (benchmarks/gpu_lane.py runs it with the parity
fixtures and batch throughput in one call). --dry-run shrinks either mode to a toy size (on CPU) to check
the code path.

Random weights make near-uniform, unconfident predictions: agreement and threshold speed-ups here are NOT
what a trained model gives (Fast-dLLM reports 78.5 vs 79.3% GSM8K with cache + threshold on LLaDA-8B). The
NFE and cost-per-step numbers are real. The cache is never exact in a bidirectional model, even for the
prompt alone: from the second layer on, the prompt's keys and values depend on the answer tokens it attends
to, so a cached step sees them as they were at the block start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.denoisers.blocks import NativeDenoiser  # noqa: E402
from generator.denoisers.llada import LLaDAConfig, LLaDAModelLM  # noqa: E402
from generator.prompt import render_prompt  # noqa: E402
from generator.sampler import diffusion_generate  # noqa: E402
from pipeline.types import DiffusionConfig, Passage  # noqa: E402

RGB = ROOT.parent / "shared" / "data" / "qa" / "rgb" / "en_fact.json"
MODES = {  # name -> DiffusionConfig fields
    "naive": dict(use_cache=False),
    "prefix cache": dict(use_cache=True),
    "dual cache": dict(use_cache=True, dual_cache=True),
    "prefix cache + threshold 0.9": dict(use_cache=True, threshold=0.9),
    "dual cache + threshold 0.9": dict(use_cache=True, dual_cache=True, threshold=0.9),
}
SPECIALS = ["<|pad|>", "<|eos|>", "<|mask|>"]
QK_SCALE = 4.0


def rgb_rows() -> list[dict]:
    if not RGB.is_file():
        sys.exit(f"shared data not found at {RGB}; the bench builds its RAG prompt from it")
    return [json.loads(line) for line in RGB.read_text().splitlines() if line.strip()]


def train_tokenizer(rows: list[dict], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [t for r in rows for t in (r["query"], *r["positive"], *r["negative"])]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def rag_prompt(tok, row: dict, rows: list[dict], target: int) -> list[int]:
    """render_prompt over the row's passages, padded with other rows' passages to ~target tokens."""
    texts = list(row["positive"]) + list(row["negative"])
    others = (t for r in rows if r is not row for t in r["negative"])
    while True:
        passages = [Passage(number=i + 1, text=t) for i, t in enumerate(texts)]
        ids = tok.encode(render_prompt(row["query"], passages) + "\nAnswer:").ids
        if len(ids) >= target:
            return ids[-target:] if len(ids) > target * 1.1 else ids
        texts.append(next(others))


def build_model(config: LLaDAConfig, device, dtype, head_scale: float, mask_id: int, eos_id: int, seed: int = 0):
    """Random weights shaped so that the model is not degenerate: unit embeddings, 1/sqrt(fan_in) projections,
    q/k scaled up (sharp, position-dependent attention; with diffuse attention every masked position sees the
    same average and a random model writes one token everywhere), the head scaled by `head_scale`. Built on
    the meta device and materialised on `device` in `dtype`: an 8B model never exists in float32."""
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = LLaDAModelLM(config, dtype=dtype)
    model = model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 if name.endswith("wte.weight") else p.shape[1] ** -0.5, generator=gen)
            else:
                p.fill_(1.0)  # norm weights
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(QK_SCALE)
        model.model.transformer.ff_out.weight.mul_(head_scale)
    return NativeDenoiser(model, None, mask_id=mask_id, eos_id=eos_id, pad_id=eos_id, stop_ids=(eos_id,),
                          special_ids=(), max_length=config.max_sequence_length)


def timed(den, prompt: torch.Tensor, cfg: DiffusionConfig) -> tuple[float, object]:
    if den.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = diffusion_generate(den, prompt, None, cfg)
    if den.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def run_all(den, prompt: torch.Tensor, configs: dict[str, DiffusionConfig], repeats: int) -> dict[str, dict]:
    """Repeats interleaved across modes (A B C A B C ...), so load on a shared machine hits every mode alike."""
    times: dict[str, list[float]] = {name: [] for name in configs}
    outs = {}
    for _ in range(repeats):
        for name, cfg in configs.items():
            t, outs[name] = timed(den, prompt, cfg)
            times[name].append(t)
    return {name: {"tokens": outs[name].tokens[0].cpu(), "nfe": outs[name].nfe,
                   "wall": statistics.median(times[name]),
                   "tps": outs[name].tokens.shape[1] / statistics.median(times[name])} for name in configs}


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a == b).float().mean())


HEADERS = ("mode", "NFE", "wall s (median)", "tokens/s", "x naive", "agree w/ naive", "agree (other prompts)")


def table(title: str, rows: list[tuple], headers: tuple[str, ...] = HEADERS) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in headers:
            t.add_column(h, justify="left" if h in ("mode", "part", "setting", "result") else "right")
        for r in rows:
            t.add_row(*[str(c) for c in r])
        Console(width=160).print(t)
    except ImportError:
        print(title)
        print(" | ".join(headers))
        for r in rows:
            print(" | ".join(str(c) for c in r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="LLaDA-8B-shaped random bf16 model on CUDA")
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on CPU, to check the code path")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--agreement-prompts", type=int, default=3)
    ap.add_argument("--block-length", type=int, default=0, help="override the block length (0: 32)")
    ap.add_argument("--head-scale", type=float, default=4.0, help="multiply the output head (sharper beliefs)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default; 1 is steadier on a shared machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = rgb_rows()
    if args.gpu:
        if not args.dry_run and not torch.cuda.is_available():
            sys.exit("--gpu needs CUDA (use --dry-run to check the code path on CPU)")
        device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        if args.dry_run:
            config = LLaDAConfig(d_model=64, n_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=1024,
                                 embedding_size=1024, max_sequence_length=4096)
            prompt_len, gen, block = 256, 64, 32
        else:  # LLaDA-8B-Instruct's published shape
            config = LLaDAConfig()
            prompt_len, gen, block = 1024, 256, 32
        # LLaDA-8B-Instruct's published mask/EOS ids (126336, 126081), kept at the same distance from the end of
        # the vocabulary in the dry-run's toy vocabulary; the bench has no tokenizer to read them from
        mask_id, eos_id = config.vocab_size - 128, config.vocab_size - 383
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(0, mask_id - 1, (1, prompt_len), generator=g)
                   for _ in range(1 + args.agreement_prompts)]
        steps = gen
    else:
        device, dtype = torch.device("cpu"), torch.float32
        tok = train_tokenizer(rows, 4096 if not args.dry_run else 512)
        V = tok.get_vocab_size()
        if args.dry_run:
            config = LLaDAConfig(d_model=64, n_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=V,
                                 embedding_size=V, max_sequence_length=2048)
            target, gen, block = 300, 32, 16
        else:
            config = LLaDAConfig(d_model=128, n_heads=4, n_layers=4, mlp_hidden_size=344, vocab_size=V,
                                 embedding_size=V, max_sequence_length=2048)
            target, gen, block = 1000, 128, 32
        mask_id, eos_id = tok.token_to_id("<|mask|>"), tok.token_to_id("<|eos|>")
        prompts = [torch.tensor([rag_prompt(tok, r, rows, target)]) for r in rows[: 1 + args.agreement_prompts]]
        steps = gen // 2  # two tokens per step in the fixed-schedule modes
    den = build_model(config, device, dtype, args.head_scale, mask_id, eos_id)

    block = args.block_length or block
    base = DiffusionConfig(gen_length=gen, block_length=block, steps=steps, temperature=0.0)
    configs = {name: base.model_copy(update=kw) for name, kw in MODES.items()}
    results = run_all(den, prompts[0], configs, args.repeats)
    others = {name: [diffusion_generate(den, p, None, cfg).tokens[0].cpu() for p in prompts[1:]]
              for name, cfg in configs.items()}
    naive = results["naive"]
    out = []
    for name, r in results.items():
        other = [agreement(a, b) for a, b in zip(others[name], others["naive"])]
        out.append((name, r["nfe"], f"{r['wall']:.2f}", f"{r['tps']:.1f}", f"{naive['wall'] / r['wall']:.2f}",
                    f"{agreement(r['tokens'], naive['tokens']):.2f}",
                    f"{statistics.mean(other):.2f}" if other else "-"))
    params = sum(p.numel() for p in den.model.parameters())
    where = f"{device.type}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
                                f", {torch.get_num_threads()} threads")
    title = (f"{params / 1e6:.1f}M-param random LLaDA-shaped model on {where}, {dtype}: prompt "
             f"{prompts[0].shape[1]} tokens, answer {gen}, block {block}, steps {steps} "
             f"(threshold mode: until done), repeats {args.repeats}")
    table(title, out)


if __name__ == "__main__":
    main()
