"""Train the bundled answer model (generator/sculpt/model.py) with the masked-diffusion objective.

`sculptrag train-generator --out DIR` builds the items from ../shared/data (training/data.py), then for
each batch: draws one example per item (random k passages: relevant + hard distractors, random order, 15%
made unanswerable), masks each answer slot with probability t ~ U(1/slots, 1) per example, and minimises
the negative log-likelihood of the gold slot (copy / cite / word / EOS) on the masked slots, weighted by 1/t
(the LLaDA/MDLM bound). The prompt (question + passages) is never masked: it is the encoder's input.

Each step also trains the sentence selector (targets.selector_loss): the gold answer's sentences, or "none".

Batches are a pure function of (seed, step): the item order is a seeded permutation per epoch and each
batch draws its examples from its own seeded RNG, so `workers` processes can build batches ahead of the
optimizer (featurizing is Python work; a GPU step is faster than one process can feed it) and a resumed
run sees exactly the batches it would have seen. On CUDA the forward pass runs under bf16 autocast.

`exclude` leaves corpora out (leave-one-corpus-out: a model to be chosen on them, data.without), and
`init_from` starts from a trained checkpoint's weights instead of the base encoder's (continued training,
the way a 2-core CPU can train in hours: a step at batch 32 takes ~30 s there, ~60 ms on an H100).

Resumable: DIR/state.pt (weights, optimizer, step) is written every `save_every` steps and at
the end; rerunning the same command continues from it. The exported checkpoint (DIR/model.safetensors,
config.json, meta.json with data counts, steps, seed, hardware and time) is what `SculptGenerator` loads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import pickle
import platform
import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pipeline.device import resolve_device
from pipeline.spawn import main_script_hidden

from ..checkpoint import build_model, load_tokenizer, save_checkpoint
from ..features import featurize
from ..model import SculptConfig, SculptModel
from ..space import MASK, OutputSpace
from .data import HELDOUT, SOURCES, TRAIN, Example, Item, build_items, sample_examples, without
from .targets import answer_targets, selector_loss

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
    workers: int | None = None  # processes building batches ahead (0: in the training process; None: 0 on CPU, up to 8 on CUDA)
    select_weight: float = 1.0  # weight of the sentence-selector loss
    sources: tuple[str, ...] = SOURCES  # what the items are built from (data.build_items)
    exclude: tuple[str, ...] = ()  # corpora left out of training (data.CORPORA): leave-one-corpus-out runs
    init_from: str | None = None  # start from this checkpoint's weights ("bundled": the shipped one), not from the base


def load_items(cfg: TrainConfig) -> dict[str, list[Item]]:
    """Build the items once and cache them next to the run (the synthetic questions take ~2 min)."""
    cache = Path(cfg.out) / "items.pkl"
    if cache.is_file():
        with cache.open("rb") as f:
            return pickle.load(f)
    items = build_items(Path(cfg.data_root), cfg.sources)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(items, f)
    return items


def _lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return cosine_decay((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))


def cosine_decay(progress: float) -> float:
    """The learning-rate factor at `progress` (0 to 1) of a schedule: cosine from 1 down to 10% of the peak."""
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def diffusion_loss(model: SculptModel, tokenizer, batch, targets: torch.Tensor, generator: torch.Generator,
                   select_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Masked-diffusion loss of one batch (mask ratio t per row, NLL on masked slots weighted by 1/t) plus
    `select_weight` times the sentence-selector loss."""
    B, L = targets.shape
    device = targets.device
    t = torch.rand(B, generator=generator).to(device).clamp(min=1.0 / L)
    masked = torch.rand(B, L, generator=generator).to(device) < t[:, None]
    none = ~masked.any(1)
    if none.any():  # every row trains on at least one slot
        masked[none, torch.randint(0, L, (int(none.sum()),), generator=generator).to(device)] = True
    canvas = torch.where(masked, torch.full_like(targets, MASK), targets)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with autocast:
        memory = model.encode(batch)
        logp = model(canvas, memory)
    nll = -logp.gather(2, targets[..., None]).squeeze(-1)
    loss = (nll * masked / t[:, None]).sum() / (B * L)
    select = selector_loss(memory, targets, model.vocab_size)
    with torch.no_grad():
        hit = (logp.argmax(-1) == targets) & masked
        stats = {"acc": float(hit.sum() / masked.sum()), "nll": float((nll * masked).sum() / masked.sum()),
                 "select": float(select)}
    return loss + select_weight * select, stats


_WORKER: dict = {}


def _use(train_items: list[Item], cfg: TrainConfig, model_cfg: SculptConfig, tokenizer) -> None:
    """What make_batch reads, in this process."""
    _WORKER.update(items=train_items, cfg=cfg, model_cfg=model_cfg, tokenizer=tokenizer, orders={})


def _init_worker(items_path: str, cfg: TrainConfig, model_cfg: SculptConfig, single_thread: bool = True) -> None:
    """A batch-building process: its own copy of the items and the tokenizer (no model weights)."""
    if single_thread:
        torch.set_num_threads(1)
    with open(items_path, "rb") as f:
        items = pickle.load(f)
    _use(without(items[TRAIN], cfg.exclude), cfg, model_cfg, load_tokenizer(model_cfg.base_model))


def _order(n: int, seed: int, epoch: int, cache: dict) -> list[int]:
    if epoch not in cache:
        order = list(range(n))
        random.Random(f"{seed}/epoch/{epoch}").shuffle(order)
        cache.clear()
        cache[epoch] = order
    return cache[epoch]


def make_batch(step: int) -> tuple:
    """The training batch of `step`: (Batch, targets); examples whose evidence truncation cut off are left out."""
    items, cfg, model_cfg, tok = _WORKER["items"], _WORKER["cfg"], _WORKER["model_cfg"], _WORKER["tokenizer"]
    cache = _WORKER["orders"]
    n = len(items)
    take = []
    for j in range(cfg.batch_size):
        g = step * cfg.batch_size + j
        take.append(items[_order(n, cfg.seed, g // n, cache)[g % n]])
    rng = random.Random(f"{cfg.seed}/step/{step}")
    batch, targets, _ = example_batch(tok, model_cfg, sample_examples(take, rng, (cfg.k_min, cfg.k_max),
                                                                      cfg.unanswerable_share))
    return batch, targets


def example_batch(tok, model_cfg: SculptConfig, exs: list[Example]) -> tuple:
    """(Batch, targets, examples) of `exs`, leaving out the answerable ones whose evidence truncation cut off
    (no target to learn)."""
    vocab = tok.vocab_size
    for _ in range(2):
        batch = featurize(tok, model_cfg, [e.question for e in exs], [[p.text for p in e.passages] for e in exs])
        targets = answer_targets(tok, model_cfg, vocab, batch,
                                 [[(s.passage, s.start, s.end) for s in e.segments] for e in exs])
        space = OutputSpace.of(vocab, batch.shape)
        keep = [i for i, e in enumerate(exs) if not e.answerable or space.is_copy(targets[i]).any()]
        if len(keep) == len(exs):
            break
        exs = [exs[i] for i in keep]
    return batch, targets, exs


class _Batches:
    """Batches for steps start, start+1, ... built in `workers` processes (a bounded window ahead) or inline."""

    def __init__(self, cfg: TrainConfig, model_cfg: SculptConfig, items: dict, tokenizer, items_path: Path,
                 start: int, workers: int) -> None:
        self.next_step = start
        self.pool = None
        self.pending: deque = deque()
        if workers > 0:
            with main_script_hidden():  # a driver script read from stdin would make every worker fail to start
                self.pool = mp.get_context("spawn").Pool(workers, _init_worker, (str(items_path), cfg, model_cfg))
        else:
            _use(without(items[TRAIN], cfg.exclude), cfg, model_cfg, tokenizer)
        self.window = 3 * max(1, workers)

    def get(self) -> tuple:
        if self.pool is None:
            self.next_step += 1
            return make_batch(self.next_step - 1)
        while len(self.pending) < self.window:
            self.pending.append(self.pool.apply_async(make_batch, (self.next_step,)))
            self.next_step += 1
        return self.pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training; returns the folder holding the exported checkpoint."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    items = load_items(cfg)
    model_cfg = SculptConfig()
    torch.manual_seed(cfg.seed)
    model, tokenizer = build_model(model_cfg)
    if cfg.init_from and not (out / "state.pt").is_file():
        start_from(model, cfg.init_from)
    model.to(device).train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    enc_params = [p for n, p in named if n.startswith("encoder.")]
    new_params = [p for n, p in named if not n.startswith("encoder.") and n != "continue_bonus"]
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.encoder_lr},
                             {"params": new_params, "lr": cfg.lr},
                             {"params": [model.continue_bonus], "lr": cfg.bonus_lr, "weight_decay": 0.0}],
                            weight_decay=cfg.weight_decay)
    base_lrs = [cfg.encoder_lr, cfg.lr, cfg.bonus_lr]
    gen = torch.Generator().manual_seed(cfg.seed)
    step, seconds = 0, 0.0
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        step, seconds = state["step"], state["seconds"]
        gen.set_state(state["gen"])
        log.info("resumed from step %d", step)

    def save_state() -> None:
        tmp = out / "state.pt.tmp"
        torch.save({"model": model.trainable_state(), "opt": opt.state_dict(), "step": step, "seconds": seconds,
                    "gen": gen.get_state()}, tmp)
        tmp.replace(state_path)

    started = time.perf_counter()
    workers = cfg.workers if cfg.workers is not None else (min(8, (os.cpu_count() or 2) - 2) if device.type == "cuda" else 0)
    batches = _Batches(cfg, model_cfg, items, tokenizer, out / "items.pkl", step, max(0, workers))
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step")
    ema = None
    try:
        while step < cfg.steps:
            batch, targets = batches.get()
            for group, base in zip(opt.param_groups, base_lrs):
                group["lr"] = base * _lr_at(step, cfg)
            t0 = time.perf_counter()
            loss, stats = diffusion_loss(model, tokenizer, batch.to(device), targets.to(device), gen, cfg.select_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            seconds += time.perf_counter() - t0
            step += 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", acc=f"{stats['acc']:.2f}", sel=f"{stats['select']:.2f}")
            if step % 10 == 0:
                log.info("step %d loss %.4f acc %.3f nll %.3f select %.3f (%.1f min)", step, ema, stats["acc"],
                         stats["nll"], stats["select"], (time.perf_counter() - started) / 60)
            out_of_time = (cfg.max_minutes is not None and time.perf_counter() - started > cfg.max_minutes * 60) or \
                (cfg.stop_at is not None and step >= cfg.stop_at)
            if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
                save_state()
                export(model, out, cfg, items, step, seconds, device)
            if out_of_time:
                log.warning("stopping at step %d of %d (--max-minutes / --stop-at); rerun to resume", step, cfg.steps)
                break
    finally:
        batches.close()
        bar.close()
    return out


def start_from(model: SculptModel, folder: str) -> None:
    """Put a checkpoint's trained weights into a freshly built model (continued training): every trainable
    weight must come from it, and its config must be this model's."""
    from safetensors.torch import load_file

    from ..checkpoint import bundled_checkpoint, checkpoint_config

    path = bundled_checkpoint() if folder == "bundled" else Path(folder)
    if checkpoint_config(path) != model.cfg:
        raise ValueError(f"{path} was trained with another model config; continued training needs the same one")
    state = load_file(str(path / "model.safetensors"))
    want = model.trainable_state()
    if set(state) != set(want):
        raise ValueError(f"{path} does not hold this model's trainable weights (differs in "
                         f"{sorted(set(state) ^ set(want))[:4]})")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    log.info("starting from the weights of %s", path)


def export(model: SculptModel, out: Path, cfg: TrainConfig, items: dict, step: int, seconds: float,
           device: torch.device) -> Path:
    """Write the loadable checkpoint with a record of how it was made."""
    from collections import Counter

    meta = {
        "steps": step, "train_seconds": round(seconds, 1), "train_config": asdict(cfg),
        "train_items": dict(Counter(i.source for i in without(items[TRAIN], cfg.exclude))),
        "left_out": list(cfg.exclude),
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
    left, init = meta.get("left_out") or [], c.get("init_from")
    default = TrainConfig()
    flags = "".join(f" --{name.replace('_', '-')} {c[name]}" for name in ("lr", "encoder_lr", "warmup")
                    if c.get(name, getattr(default, name)) != getattr(default, name)) \
        + (f" --device {c['device']}" if c["device"] != "auto" else "") + (f" --init-from {init}" if init else "") \
        + "".join(f" --exclude {corpus}" for corpus in left)
    started = (f" Training continued from the checkpoint `{init}` (its weights, not the base model's, were the start)."
               if init else "")
    left_out = f"\n- Corpora left out of training: {', '.join(left)} (chosen on, never trained on)." if left else ""
    return f"""# sculpt: the bundled answer model

A copy-aware masked-diffusion answer model (architecture: `generator/sculpt/model.py`; samplers:
`generator/sculpt/generator.py`). Base: all-MiniLM-L6-v2 from the `{SculptConfig().base_model}` package (embeddings
and layers 0-2 frozen, not stored here); this folder holds the fine-tuned layers 3-5, the decoder and heads.{started}

## How it was made
- Command: `sculptrag train-generator --steps {c["steps"]}{stop} --seed {c["seed"]} --batch-size {c["batch_size"]}{flags}`
  (items built from the shared data folder, cached in the run folder as items.pkl; {meta["steps"]} optimizer
  steps; batches depend only on the seed and the step, so a resumed run is the same run).
- Objective: masked diffusion over the answer slots (ratio t ~ U(1/slots, 1), NLL on masked slots / t),
  plus {c.get("select_weight", 1.0)} x the sentence-selector loss (-log mass on the gold sentences, or on "none");
  AdamW, lr {c["lr"]} (new layers), {c["encoder_lr"]} (encoder), {c["bonus_lr"]} (continuation bonus),
  {c["warmup"]} warm-up steps then cosine to 10%; batch {c["batch_size"]}; {c["k_min"]}-{c["k_max"]} passages per
  example (relevant + BM25 hard distractors, shuffled), {int(c["unanswerable_share"] * 100)}% made unanswerable.
- Training items: {items}.{left_out}
- Held-out items (never trained on; split by source document): {held}.
- Hardware: {meta["device"]} ({meta["cpus"]} CPUs, torch {meta["torch"]}, {meta["threads"]} threads);
  {meta["train_seconds"] / 60:.0f} minutes of optimizer steps.
"""
