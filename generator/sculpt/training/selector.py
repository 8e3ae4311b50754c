"""Retrain the sentence selector alone, on the frozen features of a trained checkpoint (`sculptrag train-selector`).

The answer-or-refuse decision and the first quote's choice add a learned share, relevance.LEARNED_WEIGHT x the
selector's logit, to the zero-shot relevance of each sentence. A whole training run (train.py) moves every weight
and needs a GPU for a full schedule: a step at batch 32 takes ~30 s on two CPU cores. The selector is two small
heads on the memory the encoder writes (`select_mlp` over each sentence's mean state, `none_mlp` over the most
answer-like passage summary), so it can be retrained on broad text where a laptop can:

1. The parent checkpoint's encoder reads each training example once, without gradients (~0.17 s an example on
   two cores), and what the heads read is kept (`SculptModel.select_inputs`, in float16).
2. The heads, started from the parent's, train for `epochs` passes over those features (~3 s each here), on the
   same loss as in training (-log mass on the gold sentences, or on "none": targets.selector_nll), or with
   `objective` "binary" / "both" on each sentence's logit alone as well (`selector_objective`).
3. Every other weight is the parent's, bit for bit: the decoder that writes, copies and cites is the parent's, and
   only the selector's logits move (which sentence a quote opens, and whether to answer).

Corpora are weighted by n^-1/2 of their item counts (`balance`), so that scifact's 3,000 claims do not set the
logits' level for manuals and filings. The features are cached in the run folder (selector_features_train.pt and
_heldout.pt, under the parent, exclusions, draws and seed), so trying other head settings costs seconds. A checkpoint written here
needs its own answer threshold: choose it with `python benchmarks/answer_decision.py --model-path DIR`.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checkpoint import build_model, bundled_checkpoint, checkpoint_meta, save_checkpoint
from ..model import SculptConfig, SculptModel
from .data import HELDOUT, SOURCES, TRAIN, Item, corpus_of, sample_examples, without
from .targets import selector_gold, selector_nll
from .train import cosine_decay, example_batch, load_items, start_from

log = logging.getLogger(__name__)


@dataclass
class SelectorConfig:
    data_root: str = "../shared/data"
    out: str = "runs/selector"
    init_from: str = "bundled"  # the parent checkpoint: its encoder writes the features, its heads are the start
    exclude: tuple[str, ...] = ()  # corpora left out (leave-one-corpus-out, as train.py)
    sources: tuple[str, ...] = SOURCES
    draws: int = 1  # examples drawn per item (each its own passages and order)
    epochs: int = 40  # chosen on the dev halves of sets never trained on (docs/benchmarks.md, thirty-fourth round)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    balance: float = 0.5  # corpus weight n^-balance (0: every example alike)
    objective: str = "softmax"  # "softmax" (training's: mass on the gold sentences or "none"), "binary" (each
    # sentence's logit alone: gold or not, as the relevance rule reads it), or "both" (their sum)
    k_min: int = 2
    k_max: int = 5
    unanswerable_share: float = 0.15
    seed: int = 0
    threads: int | None = None
    encode_batch: int = 32


@dataclass
class Features:
    """What the selector heads read, per example: its sentences' mean states (rows offsets[i]:offsets[i+1] of
    `means`), its best passage summary, which of its sentences are gold (`gold`, aligned with `means`), whether
    "none" is gold, and its corpus."""
    means: torch.Tensor
    offsets: torch.Tensor
    best: torch.Tensor
    gold: torch.Tensor
    none: torch.Tensor
    corpus: list[str]

    def __len__(self) -> int:
        return len(self.corpus)

    def rows(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A padded minibatch: (means (B, S, d), counts (B, S): 1 real / 0 padding, best (B, d), gold (B, S + 1))."""
        sizes = [int(self.offsets[i + 1] - self.offsets[i]) for i in idx]
        S, d = max(sizes), self.means.shape[1]
        means = torch.zeros(len(idx), S, d)
        counts = torch.zeros(len(idx), S)
        gold = torch.zeros(len(idx), S + 1, dtype=torch.bool)
        for b, (i, n) in enumerate(zip(idx, sizes)):
            a = int(self.offsets[i])
            means[b, :n] = self.means[a:a + n].float()
            counts[b, :n] = 1
            gold[b, :n] = self.gold[a:a + n]
            gold[b, S] = self.none[i]
        return means, counts, self.best[idx].float(), gold


def extract(model: SculptModel, tokenizer, items: list[Item], cfg: SelectorConfig, draw: int) -> Features:
    """One example per item (seeded by draw), read by the frozen model: the selector heads' inputs and targets."""
    means, best, gold, none, corpus, sizes = [], [], [], [], [], []
    device = next(model.parameters()).device
    for at in range(0, len(items), cfg.encode_batch):
        rng = random.Random(f"{cfg.seed}/draw/{draw}/{at}")
        batch, targets, exs = example_batch(tokenizer, model.cfg, sample_examples(
            items[at:at + cfg.encode_batch], rng, (cfg.k_min, cfg.k_max), cfg.unanswerable_share))
        with torch.no_grad():
            tensors = batch.to(device)
            memory = model.encode(tensors)
            m, counts, b, _ = model.select_inputs(memory.states, memory.summary, tensors.sentence, tensors.passage_ok)
            g = selector_gold(memory, targets.to(device), tokenizer.vocab_size)
        for i in range(len(exs)):
            real = counts[i] > 0
            means.append(m[i][real].to(torch.float16).cpu())
            gold.append(g[i, :-1][real].cpu())
            none.append(bool(g[i, -1]))
            best.append(b[i].to(torch.float16).cpu())
            corpus.append(corpus_of(exs[i].source))
            sizes.append(int(real.sum()))
        log.info("draw %d: %d of %d items read", draw, min(at + cfg.encode_batch, len(items)), len(items))
    d = model.cfg.hidden
    return Features(torch.cat(means) if means else torch.zeros(0, d, dtype=torch.float16),
                    torch.tensor([0, *sizes]).cumsum(0), torch.stack(best) if best else torch.zeros(0, d),
                    torch.cat(gold) if gold else torch.zeros(0, dtype=torch.bool), torch.tensor(none, dtype=torch.bool),
                    corpus)


def features(model: SculptModel, tokenizer, items: list[Item], cfg: SelectorConfig, name: str
             ) -> tuple[Features, float | None]:
    """`extract` for every draw, cached in the run folder under what determines it; and the seconds that reading
    took (when it was done, for a cached one)."""
    key = {"parent": cfg.init_from, "exclude": sorted(cfg.exclude), "draws": cfg.draws, "seed": cfg.seed,
           "k": [cfg.k_min, cfg.k_max], "unanswerable": cfg.unanswerable_share, "items": len(items), "set": name}
    path = Path(cfg.out) / f"selector_features_{name}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        if cached["key"] == key:
            return cached["features"], cached.get("seconds")
    started = time.perf_counter()
    parts = [extract(model, tokenizer, items, cfg, draw) for draw in range(cfg.draws if name == TRAIN else 1)]
    sizes = torch.cat([p.offsets.diff() for p in parts])
    out = Features(torch.cat([p.means for p in parts]), torch.cat([torch.zeros(1, dtype=sizes.dtype), sizes.cumsum(0)]),
                   torch.cat([p.best for p in parts]), torch.cat([p.gold for p in parts]),
                   torch.cat([p.none for p in parts]), [c for p in parts for c in p.corpus])
    tmp = path.with_suffix(".tmp")
    seconds = round(time.perf_counter() - started, 1)
    torch.save({"key": key, "features": out, "seconds": seconds}, tmp)
    tmp.replace(path)
    return out, seconds


def corpus_weights(corpus: list[str], balance: float) -> torch.Tensor:
    """Per example, n_c^-balance for its corpus c, scaled to a mean of 1."""
    n = Counter(corpus)
    w = torch.tensor([n[c] ** -balance for c in corpus])
    return w / w.mean()


def selector_objective(logits: torch.Tensor, counts: torch.Tensor, gold: torch.Tensor, objective: str) -> torch.Tensor:
    """Per example: the softmax loss (`selector_nll`), or the mean binary cross-entropy of each real sentence's
    logit against whether it is gold, or both. The relevance rule adds LEARNED_WEIGHT x a sentence's own logit to
    its score and compares the best with one threshold across requests, so a logit's level, not only its rank
    within the request, is what the decision reads; the softmax leaves that level free."""
    if objective not in ("softmax", "binary", "both"):
        raise ValueError(f"objective must be softmax, binary or both, not {objective!r}")
    loss = torch.zeros(logits.shape[0])
    if objective in ("softmax", "both"):
        loss = loss + selector_nll(logits, gold)
    if objective in ("binary", "both"):
        real = counts > 0
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, :-1].masked_fill(~real, 0.0), gold[:, :-1].float(), reduction="none")
        loss = loss + (bce * real).sum(1) / real.sum(1).clamp(min=1)
    return loss


def evaluate(model: SculptModel, feats: Features) -> dict[str, float]:
    """Mean selector loss, and how often the top column is gold (a sentence of the answer, or "none")."""
    if not len(feats):
        return {}
    loss = top = 0.0
    with torch.no_grad():
        for at in range(0, len(feats), 256):
            idx = list(range(at, min(at + 256, len(feats))))
            means, counts, best, gold = feats.rows(idx)
            logits = model.select_logits(means, counts, best)
            loss += float(selector_nll(logits, gold).sum())
            top += float(gold.gather(1, logits.argmax(1, keepdim=True)).sum())
    return {"loss": round(loss / len(feats), 4), "top1": round(top / len(feats), 4)}


def train_selector(cfg: SelectorConfig) -> Path:
    """Read the examples with the parent, retrain its selector heads, export the checkpoint to cfg.out."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    items = load_items(cfg)  # (the same items cache as train.py: DIR/items.pkl)
    model, tokenizer = build_model(SculptConfig())
    start_from(model, cfg.init_from)
    model.eval()  # (the heads have no dropout: eval mode throughout)
    train_items, held_items = without(items[TRAIN], cfg.exclude), without(items[HELDOUT], cfg.exclude)
    train, read_train = features(model, tokenizer, train_items, cfg, TRAIN)
    held, read_held = features(model, tokenizer, held_items, cfg, HELDOUT)
    started = time.perf_counter()
    before = {"train": evaluate(model, train), "heldout": evaluate(model, held)}
    heads = [*model.select_mlp.parameters(), *model.none_mlp.parameters()]  # (the features are leaves: nothing
    opt = torch.optim.AdamW(heads, lr=cfg.lr, weight_decay=cfg.weight_decay)  # else gets a gradient)
    weights = corpus_weights(train.corpus, cfg.balance)
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total, step = cfg.epochs * per_epoch, 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        for at in range(0, len(order), cfg.batch_size):
            idx = order[at:at + cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = cfg.lr * cosine_decay(step / total)
            means, counts, best, gold = train.rows(idx)
            loss = (selector_objective(model.select_logits(means, counts, best), counts, gold, cfg.objective)
                    * weights[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        log.info("epoch %d: train %s, held out %s", epoch + 1, evaluate(model, train), evaluate(model, held))
    after = {"train": evaluate(model, train), "heldout": evaluate(model, held)}
    parent = bundled_checkpoint() if cfg.init_from == "bundled" else Path(cfg.init_from)
    selector = {"parent": cfg.init_from, "train_config": asdict(cfg),
                "train_items": dict(Counter(i.source for i in train_items)), "left_out": list(cfg.exclude),
                "heldout_items": dict(Counter(i.source for i in held_items)),
                "examples": len(train), "sentences": int(train.offsets[-1]), "before": before, "after": after,
                "read_seconds": None if read_train is None else read_train + (read_held or 0.0),
                "train_seconds": round(time.perf_counter() - started, 1),
                "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "torch": torch.__version__, "threads": torch.get_num_threads()}
    meta = {key: value for key, value in checkpoint_meta(parent).items()
            if not key.startswith("answer_threshold")}  # (and its note)
    save_checkpoint(model, out, {**meta, "selector": selector})  # (the parent's threshold is not this one's)
    card = (parent / "README.md").read_text() if (parent / "README.md").is_file() else ""
    (out / "README.md").write_text(card.rstrip() + "\n\n" + selector_card(selector))
    return out


def selector_card(meta: dict) -> str:
    """How a checkpoint's selector was retrained (after its parent's card), with the command that remakes it."""
    c = meta["train_config"]
    default = SelectorConfig()
    flags = "".join(f" --{name.replace('_', '-')} {c[name]}" for name in ("draws", "epochs", "lr", "balance", "objective", "seed")
                    if c[name] != getattr(default, name)) + "".join(f" --exclude {x}" for x in meta["left_out"])
    items = ", ".join(f"{k} {v}" for k, v in sorted(meta["train_items"].items()))
    held = ", ".join(f"{k} {v}" for k, v in sorted(meta["heldout_items"].items()))
    b, a = meta["before"], meta["after"]
    shown = lambda x: f"{x['loss']} / {x['top1']}" if x else "-"  # noqa: E731 (no held-out items: -)
    read = ("read once by the parent" if meta["read_seconds"] is None
            else f"read once by the parent in {meta['read_seconds'] / 60:.0f} minutes")
    left = f"\n- Corpora left out: {', '.join(meta['left_out'])} (chosen on, never trained on)." if meta["left_out"] else ""
    return f"""## The sentence selector, retrained
The parent checkpoint above (`{meta["parent"]}`), with its sentence selector's two heads (`select_mlp`, `none_mlp`)
retrained on frozen features (generator/sculpt/training/selector.py). Every other weight is the parent's.
- Command: `sculptrag train-selector --init-from {meta["parent"]}{flags}`
- {meta["examples"]} examples ({c["draws"]} per training item; {c["k_min"]}-{c["k_max"]} passages each, relevant +
  BM25 hard distractors, {int(c["unanswerable_share"] * 100)}% made unanswerable), {meta["sentences"]} sentences,
  {read} (plus the held-out items); the heads then trained {c["epochs"]} epochs ({c["objective"]} objective,
  AdamW, lr {c["lr"]}, cosine to 10%, batch {c["batch_size"]}, corpus weight n^-{c["balance"]}) in
  {meta["train_seconds"] / 60:.0f} minutes, on {meta["cpus"]} CPUs ({meta["threads"]} threads, torch {meta["torch"]}).
- Training items: {items}.{left}
- Held-out items (split by source document): {held}.
- Selector loss / top-1 (the top column gold), parent -> this: training {shown(b["train"])} -> {shown(a["train"])};
  held out {shown(b["heldout"])} -> {shown(a["heldout"])}.
- Its answer threshold is chosen with `python benchmarks/answer_decision.py --model-path DIR` on corpora left out of
  training, and written to meta.json as `answer_threshold`.
"""
