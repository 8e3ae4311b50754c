"""Train the bundled answer model (generator/sculpt.py) with the masked-diffusion objective.

`sculptrag train-generator --out DIR` builds the items from ../shared/data (generator/data.py), then for
each batch: draws one example per item (random k passages: relevant + hard distractors, random order, 15%
made unanswerable), masks each answer slot with probability t ~ U(1/slots, 1) per example, and minimises
the negative log-likelihood of the gold slot (copy / cite / word / EOS) on the masked slots, weighted by 1/t
(the LLaDA/MDLM bound). The prompt (question + passages) is never masked: it is the encoder's input.

Resumable: DIR/state.pt (weights, optimizer, step, RNG states) is written every `save_every` steps and at
the end; rerunning the same command continues from it. The exported checkpoint (DIR/model.safetensors,
config.json, meta.json with data counts, steps, seed, hardware and time) is what `SculptGenerator` loads.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .data import HELDOUT, TRAIN, Item, build_items, sample_examples
from .sculpt import SculptConfig, SculptModel, answer_targets, build_model, featurize, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data_root: str = "../shared/data"
    out: str = "runs/sculpt"
    steps: int = 900
    batch_size: int = 8
    lr: float = 5e-4  # new layers
    encoder_lr: float = 1e-4  # fine-tuned encoder layers
    bonus_lr: float = 1e-2  # the two span-continuation scalars
    warmup: int = 50
    weight_decay: float = 0.01
    k_min: int = 2
    k_max: int = 5
    unanswerable_share: float = 0.15
    seed: int = 0
    save_every: int = 50
    max_minutes: float | None = None  # stop early (and save) after this long; the run stays resumable
    stop_at: int | None = None  # stop (and save) at this step; the schedule still spans `steps`
    device: str = "auto"
    threads: int | None = None


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def load_items(cfg: TrainConfig) -> dict[str, list[Item]]:
    """Build the items once and cache them next to the run (the synthetic questions take ~2 min)."""
    cache = Path(cfg.out) / "items.pkl"
    if cache.is_file():
        with cache.open("rb") as f:
            return pickle.load(f)
    items = build_items(Path(cfg.data_root))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(items, f)
    return items


def _lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def diffusion_loss(model: SculptModel, tokenizer, batch, targets: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, dict]:
    """Masked-diffusion loss of one batch: mask ratio t per row, NLL on masked slots weighted by 1/t."""
    B, L = targets.shape
    device = targets.device
    t = torch.rand(B, generator=generator).to(device).clamp(min=1.0 / L)
    masked = torch.rand(B, L, generator=generator).to(device) < t[:, None]
    none = ~masked.any(1)
    if none.any():  # every row trains on at least one slot
        masked[none, torch.randint(0, L, (int(none.sum()),), generator=generator).to(device)] = True
    canvas = torch.where(masked, torch.full_like(targets, -1), targets)
    memory = model.encode(batch)
    logp = model(canvas, memory)
    nll = -logp.gather(2, targets[..., None]).squeeze(-1)
    loss = (nll * masked / t[:, None]).sum() / (B * L)
    with torch.no_grad():
        hit = (logp.argmax(-1) == targets) & masked
        stats = {"acc": float(hit.sum() / masked.sum()), "nll": float((nll * masked).sum() / masked.sum())}
    return loss, stats


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training; returns the folder holding the exported checkpoint."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    items = load_items(cfg)
    train_items = items[TRAIN]
    model_cfg = SculptConfig()
    torch.manual_seed(cfg.seed)
    model, tokenizer = build_model(model_cfg)
    model.to(device).train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    enc_params = [p for n, p in named if n.startswith("encoder.")]
    new_params = [p for n, p in named if not n.startswith("encoder.") and n != "continue_bonus"]
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.encoder_lr},
                             {"params": new_params, "lr": cfg.lr},
                             {"params": [model.continue_bonus], "lr": cfg.bonus_lr, "weight_decay": 0.0}],
                            weight_decay=cfg.weight_decay)
    base_lrs = [cfg.encoder_lr, cfg.lr, cfg.bonus_lr]
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, seconds, queue = 0, 0.0, []
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        step, seconds, queue = state["step"], state["seconds"], state["queue"]
        rng.setstate(state["rng"])
        gen.set_state(state["gen"])
        log.info("resumed from step %d", step)

    def save_state() -> None:
        tmp = out / "state.pt.tmp"
        torch.save({"model": model.trainable_state(), "opt": opt.state_dict(), "step": step, "seconds": seconds,
                    "queue": queue, "rng": rng.getstate(), "gen": gen.get_state()}, tmp)
        tmp.replace(state_path)

    started = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step")
    ema = None
    while step < cfg.steps:
        if len(queue) < cfg.batch_size:  # a new epoch: fresh distractor draws and order for every item
            order = list(range(len(train_items)))
            rng.shuffle(order)
            queue.extend(order)
        take, queue = queue[: cfg.batch_size], queue[cfg.batch_size:]
        exs = sample_examples([train_items[i] for i in take], rng, (cfg.k_min, cfg.k_max), cfg.unanswerable_share)
        batch = featurize(tokenizer, model_cfg, [e.question for e in exs], [[p.text for p in e.passages] for e in exs])
        targets = answer_targets(tokenizer, model_cfg, model.vocab_size, batch,
                                 [[(s.passage, s.start, s.end) for s in e.segments] for e in exs])
        keep = [i for i, e in enumerate(exs) if not e.answerable or (targets[i] >= model.vocab_size).any()]
        if len(keep) < len(exs):  # evidence cut off by truncation: no target to learn
            exs = [exs[i] for i in keep]
            batch = featurize(tokenizer, model_cfg, [e.question for e in exs],
                              [[p.text for p in e.passages] for e in exs])
            targets = answer_targets(tokenizer, model_cfg, model.vocab_size, batch,
                                     [[(s.passage, s.start, s.end) for s in e.segments] for e in exs])
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * _lr_at(step, cfg)
        t0 = time.perf_counter()
        loss, stats = diffusion_loss(model, tokenizer, batch.to(device), targets.to(device), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        seconds += time.perf_counter() - t0
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}", acc=f"{stats['acc']:.2f}", nll=f"{stats['nll']:.2f}")
        if step % 10 == 0:
            log.info("step %d loss %.4f acc %.3f nll %.3f", step, ema, stats["acc"], stats["nll"])
        out_of_time = (cfg.max_minutes is not None and time.perf_counter() - started > cfg.max_minutes * 60) or \
            (cfg.stop_at is not None and step >= cfg.stop_at)
        if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
            save_state()
            export(model, out, cfg, items, step, seconds, device)
        if out_of_time:
            log.warning("stopping at step %d of %d (--max-minutes / --stop-at); rerun to resume", step, cfg.steps)
            break
    bar.close()
    return out


def export(model: SculptModel, out: Path, cfg: TrainConfig, items: dict, step: int, seconds: float,
           device: torch.device) -> Path:
    """Write the loadable checkpoint with a record of how it was made."""
    from collections import Counter

    meta = {
        "steps": step, "train_seconds": round(seconds, 1), "train_config": asdict(cfg),
        "train_items": dict(Counter(i.source for i in items[TRAIN])),
        "heldout_items": dict(Counter(i.source for i in items[HELDOUT])),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    was_training = model.training
    model.eval()
    save_checkpoint(model, out, meta)
    (out / "README.md").write_text(model_card(meta))
    model.train(was_training)
    return out


def model_card(meta: dict) -> str:
    """How this checkpoint was made, in words a reviewer can check and a command that remakes it."""
    c = meta["train_config"]
    items = ", ".join(f"{k} {v}" for k, v in sorted(meta["train_items"].items()))
    held = ", ".join(f"{k} {v}" for k, v in sorted(meta["heldout_items"].items()))
    stop = f" --stop-at {meta['steps']}" if meta["steps"] < c["steps"] else ""
    return f"""# sculpt: the bundled answer model

A copy-aware masked-diffusion answer model (architecture: `generator/sculpt.py`; samplers:
`generator/bundled.py`). Base: all-MiniLM-L6-v2 from the `{SculptConfig().base_model}` package (embeddings
and layers 0-2 frozen, not stored here); this folder holds the fine-tuned layers 3-5, the decoder and heads.

## How it was made
- Command: `sculptrag train-generator --steps {c["steps"]}{stop} --seed {c["seed"]} --batch-size {c["batch_size"]}`
  (data from `{c["data_root"]}`; {meta["steps"]} optimizer steps).
- Objective: masked diffusion over the answer slots (ratio t ~ U(1/slots, 1), NLL on masked slots / t);
  AdamW, lr {c["lr"]} (new layers), {c["encoder_lr"]} (encoder), {c["bonus_lr"]} (continuation bonus),
  {c["warmup"]} warm-up steps then cosine to 10%; batch {c["batch_size"]}; {c["k_min"]}-{c["k_max"]} passages per
  example (relevant + BM25 hard distractors, shuffled), {int(c["unanswerable_share"] * 100)}% made unanswerable.
- Training items: {items}.
- Held-out items (never trained on; split by source document): {held}.
- Hardware: {meta["device"]} ({meta["cpus"]} CPUs, torch {meta["torch"]}, {meta["threads"]} threads);
  {meta["train_seconds"] / 60:.0f} minutes of optimizer steps.
"""
