"""The sampler: pure helpers, schedules, determinism, batching, CFG, caching, EOS, repetition, self-correction,
infilling. Models are scripted fakes (exact control over beliefs) or tiny random-weight LLaDA/Dream."""

from __future__ import annotations

import pytest
import torch

from generator.denoisers.scripted import ScriptedDenoiser, prefer
from generator.sampler import (
    add_gumbel_noise,
    cfg_combine,
    confidence,
    dedupe_adjacent,
    denoise_steps,
    diffusion_generate,
    fill_after_stop,
    get_num_transfer_tokens,
    infill,
    num_to_commit,
    remask_spans,
    select_threshold,
    select_topk,
)
from pipeline.types import DiffusionConfig

V, MASK, EOS = 50, 49, 1


def scripted(script, **kw) -> ScriptedDenoiser:
    return ScriptedDenoiser(V, script, mask_id=MASK, eos_id=EOS, **kw)


def random_beliefs(seed=0, ban_eos=True):
    """A fake model with fixed random logits per position; EOS never wins (so schedules are exact)."""
    table = torch.randn(512, V, generator=torch.Generator().manual_seed(seed)) * 3

    def script(call, ids):
        logits = table[: ids.shape[1]].expand(ids.shape[0], -1, -1).clone()
        if ban_eos:
            logits[..., EOS] = -1e9
        return logits

    return script


def prompt(n=6, seed=0):
    return torch.randint(2, 40, (1, n), generator=torch.Generator().manual_seed(seed))


# -- pure helpers ----------------------------------------------------------------------------------------
def test_linear_schedule_and_adaptive_schedule_agree():
    mask = torch.zeros(3, 40, dtype=torch.bool)
    for b, n in enumerate((32, 10, 7)):
        mask[b, :n] = True
    sched = get_num_transfer_tokens(mask, 4)
    assert sched.tolist() == [[8, 8, 8, 8], [3, 3, 2, 2], [2, 2, 2, 1]]
    left = mask.sum(1)
    for step in range(4):
        k = num_to_commit(left, 4 - step)
        assert k.tolist() == sched[:, step].tolist()
        left = left - k
    assert left.tolist() == [0, 0, 0]


def test_gumbel_noise_is_float64_and_samples_the_softmax():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    assert add_gumbel_noise(logits, 0.0) is logits  # temperature 0: plain argmax
    g = torch.Generator().manual_seed(0)
    noisy = add_gumbel_noise(logits.expand(20000, 3), 1.0, g)
    assert noisy.dtype == torch.float64
    freq = torch.bincount(noisy.argmax(-1), minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.softmax(logits[0], -1), atol=0.015, rtol=0)


def test_confidence_kinds():
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    x0 = logits.argmax(-1)
    p = confidence(logits, x0, "probability")
    m = confidence(logits, x0, "margin")
    e = confidence(logits, x0, "entropy")
    assert p[0, 0] > 0.98 and abs(p[0, 1] - 1 / 3) < 1e-6
    assert m[0, 0] > 0.97 and m[0, 1].abs() < 1e-6
    assert e[0, 0] > 0.9 and abs(e[0, 1] - 1 / 3) < 1e-5  # exp(-entropy) of a uniform over 3 is 1/3
    r = confidence(logits, x0, "random", torch.Generator().manual_seed(0))
    assert ((r >= 0) & (r <= 1)).all()


def test_selection_topk_and_threshold():
    conf = torch.tensor([[0.2, 0.9, float("-inf"), 0.5], [0.1, 0.3, 0.2, float("-inf")]])
    assert select_topk(conf, torch.tensor([2, 1])).tolist() == [[False, True, False, True],
                                                                [False, True, False, False]]
    # never an ineligible (-inf) position, even when k asks for more
    assert select_topk(conf, torch.tensor([4, 4]))[:, [2, 3]].tolist() == [[False, True], [True, False]]
    sel = select_threshold(conf, 0.4)
    assert sel.tolist() == [[False, True, False, True], [False, True, False, False]]  # row 2: at least one


def test_cfg_formula_and_dedupe_and_eos_fill():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert cfg_combine(c, u, 0.0) == c and cfg_combine(c, u, 1.0) == torch.tensor([3.0])
    sel = torch.tensor([[True, True, True, False]])
    x0 = torch.tensor([[7, 7, 8, 8]])
    conf = torch.tensor([[0.5, 0.9, 0.4, 0.1]])
    assert dedupe_adjacent(sel, x0, conf).tolist() == [[True, False, False, False]]
    canvas = torch.tensor([[5, 6, EOS, 9, MASK, 4]])
    assert fill_after_stop(canvas, torch.tensor([EOS]), EOS).tolist() == [[5, 6, EOS, EOS, EOS, EOS]]


def test_remask_spans():
    ans = torch.arange(10, 20)
    assert remask_spans(ans, [(2, 4)], MASK).tolist() == [10, 11, MASK, MASK, 14, 15, 16, 17, 18, 19]
    assert remask_spans(ans, [(8, 10), (0, 1)], MASK, lengths=[1, 3]).tolist() == [MASK] * 3 + list(
        range(11, 18)) + [MASK]
    with pytest.raises(ValueError):
        remask_spans(ans, [(0, 4), (3, 5)], MASK)


# -- the loop with scripted models -----------------------------------------------------------------------
def test_prompt_never_changes_and_no_mask_remains():
    seen = []

    def script(call, ids):
        seen.append(ids.clone())
        return random_beliefs()(call, ids)

    p = prompt()
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8, use_cache=False)
    out = diffusion_generate(scripted(script), p, None, cfg)
    assert all(torch.equal(s[:, : p.shape[1]], p) for s in seen)
    assert not (out.tokens == MASK).any() and out.tokens.shape == (1, 16)


def test_exactly_the_scheduled_number_commit_per_step():
    cfg = DiffusionConfig(gen_length=24, block_length=12, steps=10, use_cache=False)
    out = diffusion_generate(scripted(random_beliefs()), prompt(), None, cfg)
    per_block = get_num_transfer_tokens(torch.ones(1, 12, dtype=torch.bool), 5)[0].tolist()
    assert out.tokens_per_step == per_block * 2 == [3, 3, 2, 2, 2] * 2
    assert out.nfe == out.steps == 10


def test_threshold_commits_all_confident_positions_and_at_least_one():
    def confident(call, ids):  # positions 0..3 of the answer are certain, the rest are not
        logits = random_beliefs()(call, ids) * 0.01
        logits[:, 6:10, 5] = 50.0
        return logits

    cfg = DiffusionConfig(gen_length=8, block_length=8, steps=8, threshold=0.9, use_cache=False)
    out = diffusion_generate(scripted(confident), prompt(), None, cfg)
    assert out.tokens_per_step[0] == 4  # four certain positions at once
    assert all(n >= 1 for n in out.tokens_per_step) and sum(out.tokens_per_step) == 8
    assert out.steps < 8


def test_seed_controls_sampling_and_temperature_zero_ignores_it():
    den = scripted(random_beliefs())
    hot = lambda seed: DiffusionConfig(gen_length=16, block_length=16, steps=8, temperature=1.0, seed=seed)
    a, b, c = (diffusion_generate(den, prompt(), None, hot(s)).tokens for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    cold = lambda seed: DiffusionConfig(gen_length=16, block_length=16, steps=8, temperature=0.0, seed=seed)
    assert torch.equal(diffusion_generate(den, prompt(), None, cold(1)).tokens,
                       diffusion_generate(den, prompt(), None, cold(2)).tokens)


def test_eos_ends_the_answer_cleanly_and_not_from_the_far_end():
    """The model is most confident about EOS at the end of the block; it must not end the answer there first,
    and once EOS is committed everything after it is EOS."""

    def script(call, ids):
        logits = prefer(torch.full(ids.shape, 7), V, strength=2.0)  # content, moderately sure
        logits[:, -4:, EOS] = 20.0  # very sure the answer ends in the last 4 positions
        logits[:, -6, EOS] = 3.0  # ... and a little sure about EOS at position 10 of 16
        return logits

    events = list(denoise_steps(scripted(script), prompt(), None,
                                DiffusionConfig(gen_length=16, block_length=16, steps=16, use_cache=False)))
    for ev in events[:-1]:
        row = ev.canvas[0].tolist()
        if EOS in row:
            first = row.index(EOS)
            assert MASK not in row[:first], f"EOS committed at {first} before earlier masks: {row}"
            assert all(t == EOS for t in row[first:])
    final = events[-1].output.tokens[0].tolist()
    assert final[:10] == [7] * 10 and final[10:] == [EOS] * 6
    assert events[-1].output.steps < 16  # the EOS fill finished the canvas early


def test_repetition_penalty_breaks_parallel_repeats():
    same = lambda call, ids: prefer(torch.full(ids.shape, 9), V, strength=8.0, base=random_beliefs()(call, ids))
    base = DiffusionConfig(gen_length=12, block_length=12, steps=4, use_cache=False)
    plain = diffusion_generate(scripted(same), prompt(), None, base).tokens[0]
    assert (plain[1:] == plain[:-1]).any()
    fixed = diffusion_generate(scripted(same), prompt(), None, base.model_copy(update={"repetition_penalty": 1e6}))
    t = fixed.tokens[0]
    assert not (t[1:] == t[:-1]).any() and (t == 9).sum() >= 3  # 9 still used, never twice in a row


def test_edit_fixes_a_committed_token_when_the_model_changes_its_mind():
    """First the model is sure answer position 0 is token 5; from the next step on it is sure it is 6."""

    def script(call, ids):
        logits = random_beliefs(ban_eos=True)(call, ids)
        logits[:, 6, :] = 0.0
        logits[:, 6, 5 if call == 0 else 6] = 30.0
        return logits

    cfg = DiffusionConfig(gen_length=8, block_length=8, steps=8, use_cache=False)
    plain = diffusion_generate(scripted(script), prompt(), None, cfg)
    assert plain.tokens[0, 0] == 5 and plain.edited == 0
    fixed = diffusion_generate(scripted(script), prompt(), None, cfg.model_copy(update={"edit_threshold": 0.9}))
    assert fixed.tokens[0, 0] == 6 and fixed.edited >= 1


def test_remask_reopens_a_token_whose_confidence_dropped():
    def script(call, ids):
        logits = random_beliefs()(call, ids)
        logits[:, 6, :] = 0.0
        logits[:, 6, 5] = 30.0 if call == 0 else 0.0  # token 5 at position 0: sure, then no longer
        logits[:, 6, 6] = 0.0 if call == 0 else 3.0  # ... and then mildly prefers 6
        return logits

    cfg = DiffusionConfig(gen_length=8, block_length=8, steps=4, use_cache=False, remask_threshold=0.2)
    out = diffusion_generate(scripted(script), prompt(), None, cfg)
    assert out.remasked >= 1 and out.tokens[0, 0] == 6 and not (out.tokens == MASK).any()
    plain = diffusion_generate(scripted(script), prompt(), None, cfg.model_copy(update={"remask_threshold": None}))
    assert plain.tokens[0, 0] == 5


def test_template_tokens_stay_fixed_and_no_eos_before_them():
    def script(call, ids):
        logits = random_beliefs(ban_eos=False)(call, ids)
        logits[..., EOS] = 100.0  # the model wants to stop everywhere
        return logits

    canvas = torch.full((1, 10), MASK)
    canvas[0, 7] = 33
    out = diffusion_generate(scripted(script), prompt(), None,
                             DiffusionConfig(gen_length=10, block_length=10, steps=5, use_cache=False),
                             canvas=canvas)
    row = out.tokens[0].tolist()
    assert row[7] == 33 and EOS not in row[:7]  # a stop before the fixed token would have erased it
    assert row[8] == EOS  # after it, stopping is allowed


# -- the loop with tiny real models ----------------------------------------------------------------------
def _prompts(tokenizer, texts):
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    P = max(map(len, ids))
    batch = torch.full((len(ids), P), tokenizer.pad_token_id)
    mask = torch.zeros(len(ids), P, dtype=torch.long)
    for i, row in enumerate(ids):
        batch[i, P - len(row):] = torch.tensor(row)
        mask[i, P - len(row):] = 1
    return ids, batch, mask


TEXTS = ["Question: what is the capital of France? Answer:",
         "Water boils at 100 degrees [2].",
         "The patient was diagnosed with diabetes in 2019 [3]. Treatment began in March. Question: when?"]


@pytest.mark.parametrize("which", ["llada", "dream"])
@pytest.mark.parametrize("use_cache,cfg_scale", [(False, 0.0), (True, 0.0), (True, 1.5)])
def test_batch_of_three_equals_three_singles(which, use_cache, cfg_scale, llada_denoiser, dream_denoiser, tokenizer):
    den = llada_denoiser if which == "llada" else dream_denoiser
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8, use_cache=use_cache, cfg_scale=cfg_scale)
    ids, batch, mask = _prompts(tokenizer, TEXTS)
    together = diffusion_generate(den, batch, mask, cfg).tokens
    for i, row in enumerate(ids):
        alone = diffusion_generate(den, torch.tensor([row]), None, cfg).tokens
        assert torch.equal(together[i], alone[0]), f"row {i} differs"


def test_cfg_runs_without_an_attention_mask_and_changes_the_answer(llada_denoiser, tokenizer):
    p = torch.tensor([tokenizer.encode(TEXTS[2], add_special_tokens=False)])
    cfg = DiffusionConfig(gen_length=16, block_length=16, steps=16, use_cache=False)
    plain = diffusion_generate(llada_denoiser, p, None, cfg).tokens
    guided = diffusion_generate(llada_denoiser, p, None, cfg.model_copy(update={"cfg_scale": 3.0})).tokens
    assert not (guided == llada_denoiser.mask_id).any()
    assert not torch.equal(plain, guided)


class Counting:
    """A denoiser that records each call: ("step", ids length, cached prefix, cached suffix) or
    ("refresh", ids length, prefix kept, suffix start)."""

    def __init__(self, den):
        self.den, self.calls = den, []

    def __getattr__(self, name):
        return getattr(self.den, name)

    def forward(self, ids, mask=None, cache=None):
        self.calls.append(("step", ids.shape[1], cache.length if cache else 0, cache.suffix_length if cache else 0))
        return self.den.forward(ids, mask, cache)

    def prefill(self, ids, mask, n, suffix_start=None):
        self.calls.append(("refresh", ids.shape[1], n, suffix_start))
        return self.den.prefill(ids, mask, n, suffix_start)


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_cache_runs_only_the_block_and_after(which, llada_denoiser, dream_denoiser, tokenizer):
    """A full forward refreshes the cache at each block start; the other steps run [block | after] only.
    The first step of each block is a full forward either way, so both runs agree on it."""
    den = llada_denoiser if which == "llada" else dream_denoiser
    p = torch.tensor([tokenizer.encode(TEXTS[2], add_special_tokens=False)])
    P, shift = p.shape[1], int(den.shift_logits)
    counting = Counting(den)
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8)
    cached = list(denoise_steps(counting, p, None, cfg))
    calls = counting.calls
    assert calls[0] == ("refresh", P + 16, P - shift, None) and calls[4] == ("refresh", P + 16, P + 8 - shift, None)
    assert all(c == ("step", 16 + shift, P - shift, 0) for c in calls[1:4])  # block 1 + block 2 (+1 if shifted)
    assert all(c == ("step", 8 + shift, P + 8 - shift, 0) for c in calls[5:8])
    naive = list(denoise_steps(den, p, None, cfg.model_copy(update={"use_cache": False})))
    assert torch.equal(cached[0].canvas, naive[0].canvas)
    assert cached[-1].output.nfe == naive[-1].output.nfe == 8
    assert not (cached[-1].output.tokens == den.mask_id).any()


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_dual_cache_runs_only_the_block(which, llada_denoiser, dream_denoiser, tokenizer):
    """Dual cache: the block-start forward keeps the keys/values before and after the block; the other steps
    run the block alone (plus, for a shifted model, the position before it, which predicts the first)."""
    den = llada_denoiser if which == "llada" else dream_denoiser
    p = torch.tensor([tokenizer.encode(TEXTS[2], add_special_tokens=False)])
    P, shift = p.shape[1], int(den.shift_logits)
    counting = Counting(den)
    cfg = DiffusionConfig(gen_length=24, block_length=8, steps=12, dual_cache=True)
    out = diffusion_generate(counting, p, None, cfg)
    calls = counting.calls
    assert [c for c in calls if c[0] == "refresh"] == [("refresh", P + 24, P - shift, P + 8),
                                                        ("refresh", P + 24, P + 8 - shift, P + 16),
                                                        ("refresh", P + 24, P + 16 - shift, None)]
    steps = [c for c in calls if c[0] == "step"]
    assert steps[:3] == [("step", 8 + shift, P - shift, 16)] * 3 and steps[-1] == ("step", 8 + shift, P + 16 - shift, 0)
    assert out.nfe == 12 and not (out.tokens == den.mask_id).any()
    # each block's first step is the same full forward in every mode
    first = next(denoise_steps(den, p, None, cfg.model_copy(update={"use_cache": False, "dual_cache": False})))
    assert torch.equal(next(denoise_steps(den, p, None, cfg)).canvas, first.canvas)


def test_dual_cache_needs_the_cache():
    with pytest.raises(ValueError, match="dual_cache"):
        DiffusionConfig(use_cache=False, dual_cache=True)


def test_infill_changes_only_the_remasked_span(llada_denoiser, tokenizer):
    p = torch.tensor([tokenizer.encode(TEXTS[0], add_special_tokens=False)])
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8, temperature=1.0, seed=3)
    answer = diffusion_generate(llada_denoiser, p, None, cfg).tokens[0]
    answer[answer == llada_denoiser.eos_id] = 40  # a finished answer with no EOS inside
    out = infill(llada_denoiser, p, answer, [(4, 9)], cfg.model_copy(update={"seed": 11}))
    new = out.tokens[0]
    assert torch.equal(new[:4], answer[:4]) and torch.equal(new[9:], answer[9:])
    assert not (new == llada_denoiser.mask_id).any() and not torch.equal(new[4:9], answer[4:9])
    assert sum(out.tokens_per_step) == 5
    longer = infill(llada_denoiser, p, answer, [(4, 9)], cfg, lengths=[8]).tokens[0]
    assert longer.numel() == 19 and torch.equal(longer[12:], answer[9:]) and torch.equal(longer[:4], answer[:4])


def test_bad_arguments_are_config_errors(llada_denoiser):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError):
        diffusion_generate(llada_denoiser, torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ConfigError):
        diffusion_generate(llada_denoiser, torch.ones(2, 3, dtype=torch.long), torch.ones(1, 3))
    with pytest.raises(ConfigError, match="exceed"):
        diffusion_generate(llada_denoiser, torch.ones(1, 500, dtype=torch.long), None,
                           DiffusionConfig(gen_length=32, block_length=32))


def test_logits_eos_inf_never_proposes_eos():
    def wants_to_stop(call, ids):
        logits = random_beliefs(ban_eos=False)(call, ids)
        logits[..., EOS] = 50.0
        return logits

    cfg = DiffusionConfig(gen_length=8, block_length=8, steps=8, use_cache=False)
    assert (diffusion_generate(scripted(wants_to_stop), prompt(), None, cfg).tokens == EOS).all()
    out = diffusion_generate(scripted(wants_to_stop), prompt(), None, cfg.model_copy(update={"logits_eos_inf": True}))
    assert not (out.tokens == EOS).any()


def test_confidence_eos_eot_inf_commits_a_proposed_stop_last():
    """The model is surest that the answer ends at once; with the option, that stop proposal (confidence 0)
    waits until every other position is committed."""

    def script(call, ids):
        logits = prefer(torch.full(ids.shape, 8), V, strength=3.0)
        logits[:, 6, EOS] = 20.0  # answer position 0
        return logits

    cfg = DiffusionConfig(gen_length=4, block_length=4, steps=4, use_cache=False)
    plain = diffusion_generate(scripted(script), prompt(), None, cfg)
    assert plain.steps == 1 and plain.tokens[0].tolist() == [EOS] * 4  # committed first, the rest filled
    late = diffusion_generate(scripted(script), prompt(), None, cfg.model_copy(update={"confidence_eos_eot_inf": True}))
    assert late.steps == 4 and late.tokens_per_step == [1, 1, 1, 1]
    assert late.tokens[0].tolist() == [EOS] * 4  # still the model's answer, reached last


def test_top_p_samples_only_from_the_nucleus():
    def flat(call, ids):  # token 5 is the most likely (p ~ 0.13), 49 others share the rest
        return prefer(torch.full(ids.shape, 5), V, strength=2.0)

    cfg = DiffusionConfig(gen_length=32, block_length=32, steps=32, temperature=1.0, seed=3, use_cache=False)
    free = diffusion_generate(scripted(flat), prompt(), None, cfg).tokens
    nucleus = diffusion_generate(scripted(flat), prompt(), None, cfg.model_copy(update={"top_p": 0.1})).tokens
    assert (free != 5).any() and (nucleus == 5).all()
