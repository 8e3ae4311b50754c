"""Reference-compatible sampling: the published masked-diffusion samplers, step for step, over a Denoiser.

`DiffusionConfig.reference_compat` names the family; the rest of the config picks the variant, as the
references themselves do (note that `use_cache` defaults to True: set it False for generate.py and
diffusion_generate):

  'llada'  no threshold, no cache -> ML-GSAI/LLaDA generate.py `generate` (CFG, padding, 'random' remasking,
                                     logits_eos_inf, confidence_eos_eot_inf)
           a threshold or a cache -> NVlabs/Fast-dLLM llada/generate.py `generate`, `generate_with_prefix_cache`,
                                     `generate_with_dual_cache`
  'dream'  no threshold, no cache -> Dream's `diffusion_generate` (alg maskgit_plus / topk_margin / entropy /
                                     origin = confidence probability / margin / entropy / random)
           a threshold, no cache  -> Fast-dLLM dream/model/generation_utils.py, alg 'confidence_threshold'
           a cache (prefix, dual) -> Fast-dLLM dream/model/generation_utils_block.py

Every rule that decides an output is kept, quirks included (docs/generators.md lists them and how the default
sampler differs). This mode proves that the native models compute what the published ones compute
(tests/generator/test_parity.py, against fixtures made by the unmodified reference code) and reproduces
published numbers. Randomness is drawn in the references' order and shapes from a generator seeded with
`config.seed`, which on CPU is the stream `torch.manual_seed(seed)` gives the reference (seed None: torch's
global generator, as the references use). Combinations no reference defines are refused, not guessed.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError

from .denoisers.base import Denoiser
from .sampler import (
    NEG_INF,
    SamplerOutput,
    StepEvent,
    _prepare,
    cfg_combine,
    get_num_transfer_tokens,
    plan_blocks,
    top_p_logits,
)
from pipeline.types import DiffusionConfig

DREAM_EPS = 1e-3  # DreamGenerationConfig's default `eps`: the last timestep of Dream's schedule


class _Run:
    """What a reference loop works on: the canvas x (B, L) (prompt | answer), padding, counted model calls, RNG."""

    def __init__(self, den: Denoiser, x: torch.Tensor, attn: torch.Tensor | None, P: int, cfg: DiffusionConfig,
                 block_length: int) -> None:
        self.den, self.x, self.attn, self.P, self.cfg, self.block_length = den, x, attn, P, cfg, block_length
        self.gen = torch.Generator(device=x.device).manual_seed(cfg.seed) if cfg.seed is not None else None
        self.cache = None
        self.nfe = 0

    def full(self, ids: torch.Tensor, attn: torch.Tensor | None, keep: int | None = None,
             suffix: int | None = None) -> torch.Tensor:
        """Full forward -> (B', L, V) raw logits; with `keep`, cache the keys/values of [0, keep) (and [suffix, L))."""
        self.nfe += 1
        if keep is None:
            return self.den.forward(ids, attn)
        if suffix is None:
            logits, self.cache = self.den.prefill(ids, attn, keep)
        else:
            logits, self.cache = self.den.prefill(ids, attn, keep, suffix)
        return logits

    def cached(self, a: int, b: int) -> torch.Tensor:
        """Forward of x[:, a:b] against the cache (prefix [0, a), and suffix [b, L) for a dual cache)."""
        self.nfe += 1
        return self.den.forward(self.x[:, a:b], self.attn, self.cache)

    def rand(self, *shape: int, dtype=torch.float32) -> torch.Tensor:
        return torch.rand(shape, dtype=dtype, device=self.x.device, generator=self.gen)


def reference_steps(den: Denoiser, prompt_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    cfg: DiffusionConfig, canvas: torch.Tensor | None = None, constraints=None,
                    block_length: int | None = None) -> Iterator[StepEvent]:
    """`denoise_steps` for `cfg.reference_compat`: a StepEvent per model call, the last one with done=True."""
    if constraints is not None:
        raise ConfigError("reference_compat reproduces the published samplers, which have no citation "
                          "constraints; run it without constraints")
    s = _prepare(den, prompt_ids, attention_mask, cfg, canvas, None)
    run = _Run(den, s.x, s.attn, s.P, cfg, block_length or cfg.block_length)
    _check(run)
    loop = _llada(run) if cfg.reference_compat == "llada" else _dream(run)
    P, mask_id = run.P, den.mask_id
    out = SamplerOutput(tokens=run.x[:, P:].clone())
    prev = out.tokens
    for _ in loop:  # each item: one model call done and its tokens committed to run.x
        new = run.x[:, P:].clone()
        out.steps, out.nfe = out.steps + 1, run.nfe
        out.tokens_per_step.append(int(((prev == mask_id) & (new != mask_id)).sum()))
        yield StepEvent(out.steps, new, new != prev, int((new == mask_id).sum()))
        prev = new
    out.tokens, out.nfe = run.x[:, P:].clone(), run.nfe
    yield StepEvent(out.steps, out.tokens, torch.zeros_like(out.tokens, dtype=torch.bool),
                    int((out.tokens == mask_id).sum()), True, out)


# -- LLaDA: generate.py, and Fast-dLLM's generate / generate_with_prefix_cache / generate_with_dual_cache ---
def _llada(run: _Run) -> Iterator[None]:
    cfg, x, P, mask_id = run.cfg, run.x, run.P, run.den.mask_id
    L = x.shape[1]
    fast = cfg.threshold is not None or cfg.use_cache  # Fast-dLLM's loops; otherwise the official generate
    prompt_index = x != mask_id  # generate.py's CFG masks all of these: the prompt, padding included
    for c0, c1, per in plan_blocks(L - P, run.block_length, cfg.steps, None):
        c0, c1 = P + c0, P + c1
        schedule = get_num_transfer_tokens(x[:, c0:c1] == mask_id, per)  # (B, per)
        for i in itertools.count():
            if not fast and i == per:
                break
            a, b = 0, L  # the positions the logits cover
            if cfg.cfg_scale > 0:
                ux = x.clone()
                ux[prompt_index] = mask_id
                twice = torch.cat([run.attn, run.attn]) if run.attn is not None else None
                cond, uncond = run.full(torch.cat([x, ux]), twice).chunk(2)
                logits = cfg_combine(cond, uncond, cfg.cfg_scale)
            elif i == 0 or not cfg.use_cache:
                logits = run.full(x, run.attn, c0 if cfg.use_cache else None, c1 if cfg.dual_cache else None)
            else:
                a, b = c0, (c1 if cfg.dual_cache else L)
                logits = run.cached(a, b)
                if cfg.temperature > 0 and not cfg.dual_cache:
                    _gumbel(logits, cfg.temperature, run)  # generate_with_prefix_cache's unused call still draws
            x0, conf = _llada_proposals(logits, run, fast)  # (B, W) each
            masked = x[:, a:b] == mask_id
            masked[:, c1 - a:] = False  # later blocks wait
            conf = torch.where(masked, conf, NEG_INF)
            k = masked.sum(1) if cfg.threshold is not None else schedule[:, i]
            sel = _select(conf, k, cfg.threshold)
            x[:, a:b][sel] = x0[sel]
            yield
            if fast and not (x[:, c0:c1] == mask_id).any():
                break


def _llada_proposals(logits: torch.Tensor, run: _Run, fast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, W, V) logits -> proposals x0 and their confidence, (B, W) each, as generate.py computes them."""
    cfg, den = run.cfg, run.den
    if cfg.logits_eos_inf:
        logits[..., den.eos_id] = NEG_INF
    noisy = _gumbel(logits, cfg.temperature, run)
    x0 = noisy.argmax(-1)
    if cfg.confidence_eos_eot_inf:
        # generate.py: `logits_with_noise[:, :, EOS] = logits[:, :, EoT] = -inf`, after the argmax. At
        # temperature 0 both names are one tensor, so EOS and EoT both leave the softmax; above 0 only EoT does
        logits[..., [i for i in den.stop_ids if i != den.eos_id]] = NEG_INF
        noisy[..., den.eos_id] = NEG_INF
    if cfg.confidence == "random":
        return x0, run.rand(*x0.shape)
    p = F.softmax(logits.to(torch.float64) if fast else logits, dim=-1)  # Fast-dLLM: float64; generate.py: as is
    return x0, p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)


def _gumbel(logits: torch.Tensor, temperature: float, run: _Run) -> torch.Tensor:
    """generate.py's add_gumbel_noise: exp(logits) / (-log u)^T in float64 (argmax samples softmax(l / T));
    temperature 0 returns `logits` itself."""
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    return logits.exp() / (-torch.log(run.rand(*logits.shape, dtype=torch.float64))) ** temperature


def _select(conf: torch.Tensor, k: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """(B, W) confidence, (B,) counts -> (B, W) bool: per row the k most confident (torch.topk, as the
    references); with a threshold the first always, the others only if confidence >= threshold."""
    sel = torch.zeros_like(conf, dtype=torch.bool)
    for j in range(conf.shape[0]):
        vals, idx = conf[j].topk(int(k[j]))
        keep = torch.ones_like(vals, dtype=torch.bool) if threshold is None else vals >= threshold
        keep[:1] = True
        sel[j, idx[keep]] = True
    return sel


# -- Dream: diffusion_generate, and Fast-dLLM's no-cache threshold and block samplers ----------------------
def _dream(run: _Run) -> Iterator[None]:
    if run.cfg.use_cache:
        return _dream_blocks(run)
    return _dream_threshold(run) if run.cfg.threshold is not None else _dream_generate(run)


def _shift(logits: torch.Tensor) -> torch.Tensor:
    """Dream's alignment: hidden state i-1 predicts position i; the first position keeps its own logits."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def _dream_sample(logits: torch.Tensor, run: _Run, kind: str = "probability"):
    """Dream's sample_tokens (top_k unset): (..., V) logits -> (confidence, x0), each (...)."""
    if run.cfg.temperature > 0:
        logits = logits / run.cfg.temperature
    probs = torch.softmax(top_p_logits(logits, run.cfg.top_p), dim=-1)
    confidence, x0 = probs.max(dim=-1)
    if run.cfg.temperature > 0 and probs.numel():  # torch.distributions.Categorical(probs).sample()
        flat = probs.reshape(-1, probs.shape[-1])
        x0 = torch.multinomial(flat / flat.sum(-1, keepdim=True), 1, True, generator=run.gen).reshape(x0.shape)
        confidence = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if kind == "margin":
        top = probs.topk(2, dim=-1).values
        confidence = top[..., 0] - top[..., 1]
    elif kind == "entropy":
        confidence = (probs * torch.log(probs + 1e-10)).sum(-1)  # negative entropy
    return confidence, x0


def _commit_topk(x: torch.Tensor, conf: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor, k: int, mask_id: int):
    """Dream's commit: per row the k most confident of (B, W) `conf` (-inf elsewhere) take their x0."""
    idx = conf.topk(k).indices  # (B, k)
    proposal = torch.full_like(x, mask_id)
    proposal[masked] = x0
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(idx)
    x[rows, idx] = proposal[rows, idx]


def _dream_generate(run: _Run) -> Iterator[None]:
    """Dream's diffusion_generate: one block, float32 timesteps, k = int(masks * (1 - s/t)) (batch average)."""
    cfg, x, mask_id = run.cfg, run.x, run.den.mask_id
    B, steps = x.shape[0], cfg.steps
    timesteps = torch.linspace(1, DREAM_EPS, steps + 1, device=x.device)
    kind = {"probability": "probability", "margin": "margin", "entropy": "entropy"}.get(cfg.confidence)
    for i in range(steps):
        masked = x == mask_id
        logits = _shift(run.full(x, run.attn))[masked]  # (N, V) in row-major order of the masks
        t, s = timesteps[i], timesteps[i + 1]
        if kind is None:  # alg 'origin': each mask revealed with probability 1 - s/t
            p_transfer = 1 - s / t if i < steps - 1 else 1
            x0 = torch.full_like(x[masked], mask_id)
            reveal = run.rand(x0.shape[0]) < p_transfer
            x0[reveal] = _dream_sample(logits[reveal], run)[1]
            x[masked] = x0
        else:
            conf, x0 = _dream_sample(logits, run, kind)
            num_mask = masked.sum() / B
            k = int(num_mask * (1 - s / t)) if i < steps - 1 else int(num_mask)
            full = torch.full(x.shape, NEG_INF, dtype=conf.dtype, device=x.device)
            full[masked] = conf
            if k > 0:
                _commit_topk(x, full, x0, masked, k, mask_id)
        yield


def _threshold_pick(conf: torch.Tensor, n: int, threshold: float) -> tuple[torch.Tensor, list[bool]]:
    """Fast-dLLM's batch-1 rule: the n most confident of (1, W) `conf`; the first always, the others only if
    confidence >= threshold. Returns the (1, W) selection and, per candidate after the first, whether it fell short."""
    vals, idx = conf.topk(n)
    sel = torch.zeros_like(conf, dtype=torch.bool)
    sel[0, idx[0]] = True
    short = [bool(vals[0, j] < threshold) for j in range(1, n)]
    for j, fell in enumerate(short, start=1):
        if fell:
            sel[0, idx[0, j]] = False
    return sel, short


def _dream_threshold(run: _Run) -> Iterator[None]:
    """Fast-dLLM's no-cache 'confidence_threshold': masks/steps per step, the shortfall carried to the next
    step; a shortfall at the last step adds a step."""
    cfg, x, mask_id = run.cfg, run.x, run.den.mask_id
    steps = cfg.steps
    per, carried, i = int((x == mask_id).sum()) // steps, 0, 0
    while i < steps:
        masked = x == mask_id
        conf, x0 = _dream_sample(_shift(run.full(x, run.attn))[masked], run)
        full = torch.full(x.shape, NEG_INF, dtype=conf.dtype, device=x.device)
        full[masked] = conf
        proposal = torch.full_like(x, mask_id)
        proposal[masked] = x0
        n, carried = per + carried, 0
        sel, short = _threshold_pick(full, n, cfg.threshold)
        for fell in short:
            if fell:
                carried += 1
                if i >= steps - 1:  # the reference re-tests this after each extension: one extra step a step
                    per, steps = 0, steps + 1
        x[sel] = proposal[sel]
        yield
        i += 1


def _dream_blocks(run: _Run) -> Iterator[None]:
    """Fast-dLLM's Dream block sampler: per block a full forward whose argmax at the block's first position is
    committed unconditionally, then cached steps over [block | after] (prefix) or the block (dual cache)."""
    cfg, x, P, mask_id = run.cfg, run.x, run.P, run.den.mask_id
    B, L, bl = x.shape[0], x.shape[1], run.block_length
    per = cfg.steps // ((L - P) // bl)
    timesteps = torch.linspace(1, DREAM_EPS, per + 1, device=x.device)
    for c0 in range(P, L, bl):
        c1 = c0 + bl
        x0 = _dream_sample(_shift(run.full(x, run.attn, c0, c1 if cfg.dual_cache else None)), run)[1]
        x[:, c0] = x0[:, c0]
        yield
        a, b = c0, (c1 if cfg.dual_cache else L)
        for i in itertools.count(1):
            masked = x[:, a:b] == mask_id
            logits = _shift(run.cached(a, b))  # the window's first position reads its own hidden state
            if cfg.threshold is None and i == per:
                break
            if cfg.threshold is None:
                masked[:, bl:] = False
                t, s = timesteps[i], timesteps[i + 1]
                conf, x0 = _dream_sample(logits[masked], run, "entropy")  # whatever alg was asked
                num_mask = masked.sum() / B
                k = int(num_mask * (1 - s / t)) if i < per - 1 else int(num_mask)
            else:
                conf, x0 = _dream_sample(logits[masked], run)
            full = torch.full(masked.shape, NEG_INF, dtype=conf.dtype, device=x.device)
            full[masked] = conf
            full[:, bl:] = NEG_INF
            window = x[:, a:b]
            if cfg.threshold is not None:
                proposal = torch.full_like(window, mask_id)
                proposal[masked] = x0
                sel, _ = _threshold_pick(full, int((x[:, c0:c1] == mask_id).sum()), cfg.threshold)
                window[sel] = proposal[sel]
            elif k > 0:
                _commit_topk(window, full, x0, masked, k, mask_id)
            yield
            if not (x[:, c0:c1] == mask_id).any():
                break


# -- what no reference defines ------------------------------------------------------------------------------
def _check(run: _Run) -> None:
    """Refuse, with a way out, the settings the chosen reference does not have (it would crash or ignore them)."""
    cfg, den, x, P = run.cfg, run.den, run.x, run.P
    B, G = x.shape[0], x.shape[1] - P
    problems: list[str] = []
    if cfg.use_cache and not den.supports_cache:
        problems.append("this denoiser has no KV cache: set use_cache=False")
    n_blocks = G // run.block_length
    if cfg.reference_compat == "llada":
        if den.shift_logits:
            problems.append("'llada' reproduces LLaDA's samplers, which read unshifted logits; this model shifts "
                            "them (Dream): use reference_compat='dream'")
        if cfg.confidence not in ("probability", "random"):
            problems.append("LLaDA's samplers rank by 'probability' (low_confidence) or 'random' only")
        if cfg.steps % n_blocks:
            problems.append(f"LLaDA's generate needs steps ({cfg.steps}) divisible by the number of blocks ({n_blocks})")
        if cfg.cfg_scale > 0 and (cfg.threshold is not None or cfg.use_cache):
            problems.append("Fast-dLLM's samplers (threshold, cache) have no classifier-free guidance")
        if cfg.top_p is not None:
            problems.append("LLaDA's samplers have no top_p")
        if cfg.cfg_scale > 0 and run.attn is None:
            problems.append("LLaDA's generate.py fails with cfg_scale > 0 and no attention mask (UnboundLocalError); "
                            "pass an attention mask (all ones), or drop reference_compat (ours needs none)")
    else:
        if not den.shift_logits:
            problems.append("'dream' reproduces Dream's samplers, which shift the logits; this model does not "
                            "(LLaDA): use reference_compat='llada'")
        if cfg.cfg_scale > 0 or cfg.logits_eos_inf or cfg.confidence_eos_eot_inf:
            problems.append("Dream's samplers have no cfg_scale, logits_eos_inf or confidence_eos_eot_inf")
        if cfg.threshold is not None or cfg.use_cache:
            if B != 1:
                problems.append("Fast-dLLM's Dream samplers take one prompt at a time (batch 1)")
            if cfg.confidence != ("probability" if cfg.threshold is not None else "entropy"):
                problems.append("Fast-dLLM's Dream samplers (chosen by use_cache or threshold; use_cache=False "
                                "without a threshold gives Dream's diffusion_generate) rank by 'probability' with "
                                "a threshold and by negative 'entropy' without one, whatever alg is asked: set "
                                "confidence to match")
        if not cfg.use_cache and run.block_length != G:
            problems.append(f"Dream's no-cache samplers have no blocks: set block_length = gen_length ({G})")
        if not cfg.use_cache and cfg.threshold is not None and int((x == den.mask_id).sum()) % cfg.steps:
            problems.append("Fast-dLLM's Dream threshold sampler needs the number of masks divisible by steps")
        if cfg.use_cache and (cfg.steps % n_blocks or (cfg.threshold is None and cfg.steps // n_blocks < 2)):
            problems.append(f"Fast-dLLM's Dream block sampler needs steps divisible by the number of blocks "
                            f"({n_blocks}) and, without a threshold, at least 2 steps per block (with 1 it "
                            "leaves the block masked)")
        if cfg.confidence == "random" and (cfg.threshold is not None or cfg.use_cache):
            problems.append("Dream's 'origin' (confidence='random') exists only without threshold and cache")
    if problems:
        raise ConfigError(f"reference_compat={cfg.reference_compat!r}: " + "; ".join(problems))
