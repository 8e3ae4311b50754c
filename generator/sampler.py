"""The masked-diffusion sampler: small pure tensor functions and one denoising loop (`denoise_steps`).

It knows token ids only, never text: a `Denoiser` gives logits, `CitationConstraints` (optional) judge
token strings. The answer canvas (gen_length masks, or a template with fixed tokens) follows the prompt
and is filled in semi-autoregressive blocks. Each step: logits for the positions still in play, bans
(special tokens, neighbour repetition, EOS where a fixed token follows), a proposal x0 (argmax, or Gumbel
sampling in float64), a confidence per position, then commits: the scheduled top-k (linear schedule), or
every masked position above `threshold` (at least one). Then self-correction (edit/remask) and EOS fill.

Invariants: the prompt is never changed; fixed canvas tokens are never changed; no mask remains at the
end; temperature 0 with a non-random confidence is deterministic (seed unused).

EOS: a stop token (EOS/end-of-turn) is committed only at the first masked position of the canvas (else
the proposal is deferred, so the model cannot end the answer early from the far end of a block, where
instruct models put confident EOS), or when a position must be committed now. Once a stop token is
committed, every position after it becomes EOS (pad), so a short answer ends cleanly and its remaining
blocks cost nothing.

KV cache (Fast-dLLM prefix cache): at each block start a full forward refreshes the cache with the keys and
values of everything before the block; the block's other steps run only [block | everything after it]
against that cache. The cached prefix goes stale inside a block (it does not see the block change), which
is the approximation; the suffix is recomputed, not dropped, so the model still sees the answer length.
Dual cache (`dual_cache`): the suffix's keys and values are cached too, from the same block-start forward,
so a step runs only the block. An edit inside a cached part invalidates the cache (the next step refreshes it).

`reference_compat` hands the whole run to generator/reference.py, which reproduces the published LLaDA,
Dream and Fast-dLLM samplers step for step (docs/generators.md lists where and why ours differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError

from .constraints import CitationConstraints
from .denoisers.base import Denoiser, KVCache
from pipeline.types import DiffusionConfig

NEG_INF = float("-inf")
REPEAT_WINDOW = 2  # positions on each side whose committed tokens are penalised (repetition_penalty)


@dataclass
class SamplerOutput:
    tokens: torch.Tensor  # (B, G) the finished answer canvas (EOS-filled after the first stop token)
    steps: int = 0
    nfe: int = 0  # model calls (a CFG call runs conditional and unconditional rows in one batch)
    tokens_per_step: list[int] = field(default_factory=list)
    remasked: int = 0
    edited: int = 0
    # per row b: the steps it took part in (a row whose block is done waits, committing nothing), the
    # tokens it committed in each, its edits and remasks; what the row would have taken alone
    row_tokens_per_step: list[list[int]] = field(default_factory=list)
    row_remasked: list[int] = field(default_factory=list)
    row_edited: list[int] = field(default_factory=list)

    def count(self, active: torch.Tensor, committed: torch.Tensor, edited: torch.Tensor, remasked: torch.Tensor):
        """Record one step: (B,) rows still working, tokens each committed, edits, remasks."""
        active, committed = active.cpu(), committed.cpu()
        if not self.row_tokens_per_step:
            B = active.shape[0]
            self.row_tokens_per_step, self.row_remasked, self.row_edited = [[] for _ in range(B)], [0] * B, [0] * B
        self.steps, self.nfe = self.steps + 1, self.nfe + 1
        self.tokens_per_step.append(int(committed.sum()))
        self.edited, self.remasked = self.edited + int(edited.sum()), self.remasked + int(remasked.sum())
        for b in active.nonzero().flatten().tolist():
            self.row_tokens_per_step[b].append(int(committed[b]))
            self.row_edited[b] += int(edited[b])
            self.row_remasked[b] += int(remasked[b])

    def row(self, b: int) -> "SamplerOutput":
        """Row b's output as if it had been denoised alone (its steps, model calls and commits)."""
        if not self.row_tokens_per_step:  # no step recorded per row (the reference samplers): one row only
            if self.tokens.shape[0] != 1:
                raise ValueError("this output has no per-row record; only a one-row output has a row(0)")
            return self
        n = len(self.row_tokens_per_step[b])
        return SamplerOutput(self.tokens[b:b + 1], n, n, list(self.row_tokens_per_step[b]), self.row_remasked[b],
                             self.row_edited[b])


@dataclass
class StepEvent:
    step: int
    canvas: torch.Tensor  # (B, G) answer tokens after this step, mask id where still masked
    changed: torch.Tensor  # (B, G) bool: positions that changed in this step
    masked: int
    done: bool = False
    output: SamplerOutput | None = None
    active: torch.Tensor | None = None  # (B,) bool: rows that took part in this step (None: all)


# -- pure helpers ----------------------------------------------------------------------------------------
def add_gumbel_noise(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None):
    """Logits + T * Gumbel noise in float64, so argmax samples softmax(logits / T); T = 0: logits as they are."""
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    return logits - temperature * torch.log(-torch.log(u.clamp_(min=1e-300)))


def top_p_logits(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """(..., V) logits with every token outside the nucleus (the most probable tokens whose probability first
    reaches top_p; the top token always stays) set to the dtype's lowest value, as Dream's sampler does."""
    if top_p is None or top_p >= 1:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    drop = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1) > top_p
    drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses top_p
    drop[..., 0] = False
    return logits.masked_fill(torch.zeros_like(drop).scatter_(-1, order, drop), torch.finfo(logits.dtype).min)


def get_num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, L) masked positions -> (B, steps) tokens to commit per step: linear, remainder first."""
    n = mask_index.sum(dim=1, keepdim=True)  # (B, 1)
    out = (n // steps).repeat(1, steps)
    return out + (torch.arange(steps, device=n.device) < n % steps).long()


def num_to_commit(masked: torch.Tensor, steps_left: int) -> torch.Tensor:
    """(B,) masked counts -> (B,) commits this step: ceil(masked / steps_left), the same linear schedule as
    get_num_transfer_tokens when nothing is remasked, and one that adapts when something is."""
    return (masked + steps_left - 1) // steps_left


def confidence(logits: torch.Tensor, x0: torch.Tensor, kind: str, generator=None) -> torch.Tensor:
    """(B, W, V), (B, W) -> (B, W) confidence in [0, 1]: p(x0), top1 - top2, exp(-entropy), or random."""
    if kind == "random":
        return torch.rand(x0.shape, device=x0.device, generator=generator)
    probs = F.softmax(logits.float(), dim=-1)
    if kind == "probability":
        return probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if kind == "margin":
        top = probs.topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]
    if kind == "entropy":
        return torch.exp(-torch.special.entr(probs).sum(-1))  # 1 / perplexity: 1 when certain
    raise ConfigError(f"unknown confidence {kind!r}; use probability, margin, entropy or random")


def select_topk(conf: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, W) confidence (-inf = not eligible), (B,) counts -> (B, W) bool: the k most confident per row."""
    kmax = int(k.max()) if k.numel() else 0
    sel = torch.zeros_like(conf, dtype=torch.bool)
    if kmax == 0:
        return sel
    idx = conf.topk(min(kmax, conf.shape[1]), dim=1).indices  # (B, kmax)
    sel.scatter_(1, idx, torch.arange(idx.shape[1], device=conf.device) < k[:, None])
    return sel & (conf > NEG_INF)


def select_threshold(conf: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, W) -> (B, W) bool: every eligible position above threshold, and at least the most confident."""
    sel = conf > threshold
    best = conf.argmax(dim=1, keepdim=True)
    sel.scatter_(1, best, (conf.gather(1, best) > NEG_INF) | sel.gather(1, best))
    return sel


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: u + (s + 1)(c - u)."""
    return uncond + (scale + 1.0) * (cond - uncond)


def neighbour_penalty(logits, canvas, w0: int, penalty: float, exempt: torch.Tensor, window: int = REPEAT_WINDOW):
    """Subtract log(penalty) from the logit of each token committed within `window` positions of a position.

    logits (B, W, V) cover canvas positions [w0, w0 + W); canvas (B, G) holds committed tokens (the mask id
    and the `exempt` ids, e.g. EOS, are never penalised)."""
    B, W, _ = logits.shape
    G = canvas.shape[1]
    pos = torch.arange(W, device=logits.device) + w0
    for d in [d for d in range(-window, window + 1) if d]:
        src = pos + d
        valid = (src >= 0) & (src < G)
        tok = canvas[:, src.clamp(0, G - 1)]  # (B, W)
        ok = valid & ~torch.isin(tok, exempt)
        logits.scatter_add_(-1, tok.unsqueeze(-1), (-math.log(penalty) * ok).unsqueeze(-1).to(logits.dtype))
    return logits


def dedupe_adjacent(select: torch.Tensor, x0: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """(B, W) bool: of two neighbours committing the same token in one step ("diagnosed diagnosed"), the
    less confident one (to be deferred, or given its next-best token when it must be committed now)."""
    same = select[:, 1:] & select[:, :-1] & (x0[:, 1:] == x0[:, :-1])  # (B, W-1)
    right_weaker = conf[:, 1:] <= conf[:, :-1]
    weaker = torch.zeros_like(select)
    weaker[:, 1:] |= same & right_weaker
    weaker[:, :-1] |= same & ~right_weaker
    return weaker


def resolve_repeats(select, x0, conf, logits, must):
    """Apply dedupe_adjacent: defer the weaker repeat, or (rows that `must` commit) use its next-best token."""
    weaker = dedupe_adjacent(select, x0, conf)
    second = logits.scatter(-1, x0.unsqueeze(-1), NEG_INF).argmax(-1)  # (B, W) best token other than x0
    x0 = torch.where(weaker & must[:, None], second, x0)
    return select & ~(weaker & ~must[:, None]), x0


def fill_after_stop(canvas: torch.Tensor, stop_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """(B, G): every position after the first stop token becomes eos_id."""
    is_stop = torch.isin(canvas, stop_ids).long()
    after = (is_stop.cumsum(1) - is_stop) > 0
    return torch.where(after, torch.full_like(canvas, eos_id), canvas)


def corrections(probs, current, editable, remaskable, edit_ok, config: DiffusionConfig, budget):
    """Self-correction of committed tokens, from (B, W, V) probs and (B, W) current tokens.

    Edit (LLaDA2.1 draft-and-edit): where the model's top token differs from the committed one and has
    p > edit_threshold (and `edit_ok` (B, V) allows that top token in that row), replace it. Remask
    (ReMDM-style): where the committed token's current probability fell below remask_threshold, mask it
    again, at most `budget` (B,) per row, least confident first. Returns (edit (B, W) bool, edit tokens
    (B, W), remask (B, W) bool).
    """
    top_p, top_tok = probs.max(-1)
    edit = torch.zeros_like(editable)
    if config.edit_threshold is not None:
        edit = editable & (top_tok != current) & (top_p > config.edit_threshold) & edit_ok.gather(1, top_tok)
    remask = torch.zeros_like(editable)
    if config.remask_threshold is not None:
        p_cur = probs.gather(-1, current.unsqueeze(-1)).squeeze(-1)
        low = remaskable & ~edit & (p_cur < config.remask_threshold)
        remask = select_topk(torch.where(low, -p_cur, NEG_INF), budget)
    return edit, top_tok, remask


def plan_blocks(gen_length: int, block_length: int, steps: int, threshold: float | None):
    """[(start, end, step budget)] per block: steps split evenly; in threshold mode the block size."""
    n = math.ceil(gen_length / block_length)
    per = max(1, steps // n)
    spans = [(i * block_length, min((i + 1) * block_length, gen_length)) for i in range(n)]
    return [(a, b, (b - a) if threshold is not None else per) for a, b in spans]


def model_logits(den: Denoiser, x, attn, P: int, block: tuple[int, int], cache: KVCache | None,
                 config: DiffusionConfig):
    """Logits for answer positions [w0, w0 + W) -> ((B, W, V), w0, cache), aligned for shifted models.

    No cache (or a block start): full forward, w0 = 0, W = G, and when caching is on the cache is rebuilt:
    the keys/values of everything before the block [c0, c1) (and, dual cache, after it). With a cache: only
    [block | after] runs (prefix cache) or only the block (dual cache); w0 = c0."""
    c0, c1 = block
    shift = int(den.shift_logits)
    xx, aa = x, attn
    if config.cfg_scale > 0:  # unconditional rows: the prompt replaced by masks (padding left alone)
        ux = x.clone()
        real = attn[:, :P].bool() if attn is not None else torch.ones_like(ux[:, :P], dtype=torch.bool)
        ux[:, :P] = torch.where(real, den.mask_id, ux[:, :P])
        xx, aa = torch.cat([x, ux]), (torch.cat([attn, attn]) if attn is not None else None)
    if cache is None:
        caching = config.use_cache and den.supports_cache
        n = P + c0 - shift  # a shifted model also runs the position before the block: it predicts c0
        suffix = P + c1 if caching and config.dual_cache and P + c1 < x.shape[1] else None
        if caching and (n > 0 or suffix is not None):  # (denoisers without a dual cache take 3 arguments)
            raw, cache = den.prefill(xx, aa, n) if suffix is None else den.prefill(xx, aa, n, suffix)
        else:
            raw, cache = den.forward(xx, aa), None
        if shift:  # hidden i-1 predicts position i
            raw = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
        raw, w0 = raw[:, P:], 0
    else:
        raw = den.forward(xx[:, cache.length:x.shape[1] - cache.suffix_length], aa, cache)
        raw, w0 = (raw[:, :-1] if shift else raw), c0
    if config.cfg_scale > 0:
        cond, uncond = raw.chunk(2)
        raw = cfg_combine(cond, uncond, config.cfg_scale)
    return raw, w0, cache


# -- the loop --------------------------------------------------------------------------------------------
@dataclass
class _Setup:
    x: torch.Tensor  # (B, P+G) prompt | canvas
    attn: torch.Tensor | None  # (B, P+G) or None
    P: int
    fixed: torch.Tensor  # (B, G) template tokens, never changed
    ban: torch.Tensor  # (B, V) never generated: special ids, the mask, illegal markers (per row's passages)
    stops: torch.Tensor  # (S,) ids that end the answer
    no_stop: torch.Tensor  # (B, G) a fixed token follows: a stop token here would cut it off
    neutral: torch.Tensor  # (B, V) tokens self-correction may touch (all, or the constraint-neutral ones)
    edit_ok: torch.Tensor  # (B, V) tokens an edit may write


def denoise_steps(
    denoiser: Denoiser,
    prompt_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    config: DiffusionConfig | None = None,
    *,
    canvas: torch.Tensor | None = None,
    constraints: CitationConstraints | None = None,
    block_length: int | None = None,
) -> Iterator[StepEvent]:
    """Denoise the answer after (B, P) `prompt_ids`; yield a StepEvent per step, the last one with done=True.

    `attention_mask` (B, P) marks left padding; `canvas` (B, G) starts the answer from a template (mask id
    where free, other tokens fixed; default: config.gen_length masks); `block_length` overrides the config's.

    Rows are independent, so a row's answer and its `SamplerOutput.row(b)` are what it gets alone: left
    padding leaves each row the positions it has alone (denoisers number positions from the first real
    token), each row draws its randomness from its own generator seeded with config.seed, a row whose block
    is done waits (no commit, no edit, no draw), and the cache is refreshed only for a change that a row
    still working in the block would see. (One exception: with edit_threshold, an edit inside one working
    row's cached prefix refreshes the cache of every working row.) `constraints` may be a RowConstraints,
    one CitationConstraints per row, for rows that cite different passages.
    """
    cfg = config or DiffusionConfig()
    if cfg.reference_compat is not None:
        from .reference import reference_steps  # here: reference builds on this module's helpers

        yield from reference_steps(denoiser, prompt_ids, attention_mask, cfg, canvas, constraints, block_length)
        return
    s = _prepare(denoiser, prompt_ids, attention_mask, cfg, canvas, constraints)
    x, P, mask_id = s.x, s.P, denoiser.mask_id
    G = x.shape[1] - P
    gens = None if cfg.seed is None else [torch.Generator(device=x.device).manual_seed(cfg.seed) for _ in x]
    out = SamplerOutput(tokens=x[:, P:])
    for c0, c1, budget in plan_blocks(G, block_length or cfg.block_length, cfg.steps, cfg.threshold):
        cache = None
        for left in range(budget, 0, -1):  # steps left in this block, this one included
            ans = x[:, P:].clone()  # (B, G)
            masked = ans == mask_id
            in_block = torch.zeros_like(masked)
            in_block[:, c0:c1] = True
            active = (masked & in_block).any(1)  # (B,) rows with masks left in this block
            if not active.any():
                break
            logits, w0, cache = model_logits(denoiser, x, s.attn, P, (c0, c1), cache, cfg)  # (B, W, V)
            w = slice(w0, w0 + logits.shape[1])  # the answer positions the logits cover
            logits = _apply_bans(logits, ans, w, s, cfg, mask_id)
            x0, conf = _propose(logits, s, cfg, gens, active)  # (B, W) proposals and their confidence
            todo = (masked & in_block)[:, w]
            eligible = todo & ~_deferred(x0, masked, w0, s, ans, constraints, mask_id, todo)
            must = (todo.any(1) & ~eligible.any(1)) | (left == 1)  # (B,) rows that must commit now
            conf = torch.where(torch.where(must[:, None], todo, eligible), conf, NEG_INF)
            if cfg.threshold is None or left == 1:
                sel = select_topk(conf, num_to_commit(todo.sum(1), left))
            else:
                sel = select_threshold(conf, cfg.threshold)
            if cfg.repetition_penalty > 1:
                sel, x0 = resolve_repeats(sel, x0, conf, logits, must)
            if constraints is not None:
                x0, sel = constraints.commit(x0, sel, ans, w0, mask_id, logits, must)
            new = ans.clone()
            new[:, w] = torch.where(sel, x0, ans[:, w])
            edited, remasked = _correct(new, ans, sel, logits, w, (c0, c1), left, s, cfg, mask_id, active)
            new = fill_after_stop(new, s.stops, denoiser.eos_id)
            changed = new != ans
            x[:, P:] = new
            stale = changed[:, :c0].any(1) | (changed[:, c1:].any(1) & cfg.dual_cache)  # (B,)
            if (stale & (new[:, c0:c1] == mask_id).any(1)).any():
                cache = None  # a change inside a cached part (an edit, an EOS fill) a working row sees: refresh
            out.count(active, (masked & (new != mask_id)).sum(1), edited, remasked)
            yield StepEvent(out.steps, new, changed, int((new == mask_id).sum()), active=active)
    out.tokens = x[:, P:].clone()
    yield StepEvent(out.steps, out.tokens, torch.zeros_like(out.tokens, dtype=torch.bool), 0, True, out)


def diffusion_generate(denoiser: Denoiser, prompt_ids: torch.Tensor, attention_mask=None, config=None,
                       **kw) -> SamplerOutput:
    """Run `denoise_steps` to the end and return its SamplerOutput."""
    for event in denoise_steps(denoiser, prompt_ids, attention_mask, config, **kw):
        if event.done:
            return event.output
    raise RuntimeError("denoise_steps ended without a final event")  # unreachable


def remask_spans(answer: torch.Tensor, spans, mask_id: int, lengths=None) -> torch.Tensor:
    """(G,) answer ids -> (G',) canvas with each [start, end) token span replaced by masks (`lengths[i]`
    masks instead of end - start when given). Spans must not overlap."""
    spans = sorted((int(a), int(b), i) for i, (a, b) in enumerate(spans))
    parts, prev = [], 0
    for a, b, i in spans:
        if not 0 <= a <= b <= answer.numel() or a < prev:
            raise ValueError(f"span ({a}, {b}) is out of range or overlaps another (answer has {answer.numel()})")
        n = b - a if lengths is None else int(lengths[i])
        parts += [answer[prev:a], torch.full((n,), mask_id, dtype=answer.dtype, device=answer.device)]
        prev = b
    return torch.cat(parts + [answer[prev:]])


def infill(denoiser: Denoiser, prompt_ids: torch.Tensor, answer: torch.Tensor, spans, config=None, *,
           lengths=None, constraints: CitationConstraints | None = None) -> SamplerOutput:
    """Remask token spans of a finished (G,) answer and re-denoise only them (one block, rest fixed)."""
    canvas = remask_spans(answer, spans, denoiser.mask_id, lengths)[None]  # (1, G')
    return diffusion_generate(denoiser, prompt_ids, None, config, canvas=canvas, constraints=constraints,
                              block_length=canvas.shape[1])


def _prepare(den: Denoiser, prompt_ids, attention_mask, cfg: DiffusionConfig, canvas, constraints) -> _Setup:
    if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
        raise ConfigError(f"prompt_ids must be (batch, length) with length > 0, got {tuple(prompt_ids.shape)}")
    dev = den.device
    B, P = prompt_ids.shape
    if canvas is None:
        canvas = torch.full((B, cfg.gen_length), den.mask_id, dtype=torch.long)
    if canvas.dim() != 2 or canvas.shape[0] != B:
        raise ConfigError(f"canvas must be (batch={B}, length), got {tuple(canvas.shape)}")
    if attention_mask is not None and attention_mask.shape != prompt_ids.shape:
        raise ConfigError(f"attention_mask {tuple(attention_mask.shape)} must match prompt_ids {(B, P)}")
    x = torch.cat([prompt_ids.to(dev), canvas.to(dev)], dim=1).long()
    if den.max_length is not None and x.shape[1] > den.max_length:
        raise ConfigError(f"prompt ({P}) + answer ({canvas.shape[1]}) tokens exceed the model's "
                          f"{den.max_length}; use fewer passages or a shorter gen_length")
    attn = None
    if attention_mask is not None:
        attn = torch.cat([attention_mask.to(dev), torch.ones_like(canvas, device=dev)], dim=1).long()
    V = den.vocab_size
    fixed = x[:, P:] != den.mask_id
    stops = torch.tensor(den.stop_ids, dtype=torch.long, device=dev)
    ban = torch.zeros(V, dtype=torch.bool, device=dev)
    never = [i for i in (*den.special_ids, den.mask_id) if i < V and i not in den.stop_ids]
    ban[torch.tensor(never, dtype=torch.long, device=dev)] = True
    if cfg.logits_eos_inf:
        ban[den.eos_id] = True
    if den.tokenizer is not None:
        ban[len(den.tokenizer):] = True  # padded embedding rows past the tokenizer are not tokens
    ban = ban.expand(B, V).clone()
    neutral = torch.ones(B, V, dtype=torch.bool, device=dev)
    if constraints is not None:  # (V,) for a CitationConstraints, (B, V) for a RowConstraints
        ban |= constraints.static_ban.to(dev)
        neutral = constraints.neutral.to(dev).expand(B, V).clone()
    fixed_after = (fixed & ~torch.isin(x[:, P:], stops)).flip(1).long().cumsum(1).flip(1)  # (B, G) at or after
    no_stop = torch.cat([fixed_after[:, 1:], torch.zeros_like(fixed_after[:, :1])], dim=1) > 0
    edit_ok = ~ban & neutral
    edit_ok[:, stops] = False
    return _Setup(x, attn, P, fixed, ban, stops, no_stop, neutral, edit_ok)


def _apply_bans(logits, ans, w: slice, s: _Setup, cfg: DiffusionConfig, mask_id: int):
    """Static bans, no stop token before a fixed token, and the neighbour repetition penalty."""
    logits = logits.masked_fill(s.ban[:, None, :], NEG_INF)
    stop_cols = logits[..., s.stops].masked_fill(s.no_stop[:, w, None], NEG_INF)
    logits[..., s.stops] = stop_cols
    if cfg.repetition_penalty > 1:
        exempt = torch.cat([s.stops, torch.tensor([mask_id], device=s.stops.device)])
        logits = neighbour_penalty(logits, ans, w.start, cfg.repetition_penalty, exempt)
    return logits


def _propose(logits, s: _Setup, cfg: DiffusionConfig, gens: list[torch.Generator] | None, active):
    """(B, W) proposals x0 (argmax, or a Gumbel sample) and their confidence. With per-row generators, each
    working row draws from its own, in the order and shapes it would alone; rows that wait draw nothing."""
    conf_logits = _confidence_logits(logits, s, cfg)
    draws = cfg.temperature > 0 or cfg.confidence == "random"
    if gens is None or not draws:  # nothing drawn, or torch's global generator (seed None): the whole batch
        gen = None if gens is None else gens[0]
        x0 = add_gumbel_noise(_nucleus(logits, cfg), cfg.temperature, gen).argmax(-1)
        return x0, confidence(conf_logits, x0, cfg.confidence, gen)
    x0 = logits.argmax(-1)
    conf = torch.zeros(x0.shape, dtype=torch.float32, device=x0.device)
    for b in active.nonzero().flatten().tolist():
        r = slice(b, b + 1)
        x0[r] = add_gumbel_noise(_nucleus(logits[r], cfg), cfg.temperature, gens[b]).argmax(-1)
        conf[r] = confidence(conf_logits[r], x0[r], cfg.confidence, gens[b])
    return x0, conf


def _nucleus(logits, cfg: DiffusionConfig):
    """top_p applies to sampling only, on softmax(logits / T)."""
    if cfg.top_p is None or cfg.temperature == 0:
        return logits
    return top_p_logits(logits / cfg.temperature, cfg.top_p) * cfg.temperature


def _confidence_logits(logits, s: _Setup, cfg: DiffusionConfig):
    """The logits confidence is computed from: with confidence_eos_eot_inf, stop tokens left out, so a
    position whose proposal is a stop token gets confidence 0 and commits last."""
    return logits.index_fill(-1, s.stops, NEG_INF) if cfg.confidence_eos_eot_inf else logits


def _deferred(x0, masked, w0: int, s: _Setup, ans, constraints, mask_id: int, todo) -> torch.Tensor:
    """(B, W) proposals to postpone: a stop token not at the first masked position, or a rule breaker."""
    first = masked.long().argmax(1)  # (B,) first masked answer position
    pos = torch.arange(x0.shape[1], device=x0.device) + w0
    out = torch.isin(x0, s.stops) & (pos[None] != first[:, None])
    if constraints is not None:
        out |= constraints.violations(x0, ans, w0, mask_id, todo & ~out)
    return out


def _correct(new, ans, sel, logits, w: slice, block, left: int, s: _Setup, cfg: DiffusionConfig, mask_id: int,
             active: torch.Tensor):
    """Apply edits and remasks to `new` (B, G) in place (rows still `active` only); return the (B,) counts of
    edits and remasks."""
    if cfg.edit_threshold is None and cfg.remask_threshold is None:
        zero = torch.zeros(new.shape[0], dtype=torch.long)
        return zero, zero
    cur = new[:, w]  # (B, W)
    pos = torch.arange(cur.shape[1], device=cur.device) + w.start
    editable = (ans[:, w] != mask_id) & ~s.fixed[:, w] & ~torch.isin(cur, s.stops) & s.neutral.gather(1, cur)
    editable &= active[:, None]
    remaskable = editable & ((pos >= block[0]) & (pos < block[1]))[None] & (left > 1)
    budget = (sel.sum(1) - 1).clamp(min=0)  # remask fewer than were committed: every step makes progress
    edit, top, remask = corrections(F.softmax(logits, -1), cur, editable, remaskable, s.edit_ok, cfg, budget)
    new[:, w] = torch.where(remask, mask_id, torch.where(edit, top, cur))
    return edit.sum(1).cpu(), remask.sum(1).cpu()
