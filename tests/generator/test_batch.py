"""Batched generation: several requests denoised together, each answer the one it gets alone.

The diffusion generators run on tiny random LLaDA/Dream models sharpened so that answers depend on the
prompt and end (EOS) at different steps; sculpt runs the shipped checkpoint on small real texts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from generator.base import BatchGenerator, generate_many
from generator.diffusion import DiffusionGenerator
from generator.extractive import ExtractiveGenerator
from generator.prompt import REFUSAL
from generator.sculpt import SculptGenerator
from pipeline.types import DenoiseState, DiffusionConfig, GenerationRequest, GenerationResult, Passage

ROOT = Path(__file__).resolve().parents[2]


TITLES: dict[str, str] = {}  # a passage's document title, by its text


def request(question: str, *texts: str, config: DiffusionConfig | None = None) -> GenerationRequest:
    return GenerationRequest(question=question, passages=tuple(Passage(number=i + 1, text=t, title=TITLES.get(t, ""))
                                                               for i, t in enumerate(texts)), config=config)


# prompts of different lengths, different numbers of passages, and one with none (a refusal)
REQUESTS = [
    request("What is the capital of France?", "Paris is the capital of France.", "Lyon is the third largest city."),
    request("When?", "The patient was diagnosed with diabetes in 2019."),
    request("Nothing here at all, what is it?"),
    request("Water?", "Water boils at 100 degrees at sea level.", "It freezes at 0 degrees.",
            "Revenue grew by 12 percent [4]."),
    request("Where is Lyon, and how large is it compared with Paris?", "Lyon is the third largest city."),
]
SETTINGS = {  # deterministic settings, and seeded sampling (each row draws from its own generator)
    "schedule": {},
    "threshold": dict(threshold=0.3),
    "no cache": dict(use_cache=False),
    "dual cache + threshold": dict(dual_cache=True, threshold=0.3),
    "citations required": dict(require_citations=True),
    "cfg + repetition penalty": dict(cfg_scale=1.0, repetition_penalty=1.5),
    "remask + edit": dict(remask_threshold=0.3, edit_threshold=0.2),
    "seeded sampling": dict(temperature=0.8, top_p=0.9, confidence="random", seed=3),
}


def sharpen(model, tok, eos_boost: float = 1.6):
    """Scale attention and head (prompt-dependent, confident predictions) and favour EOS (early stops)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(6.0)
        head = model.lm_head.weight if hasattr(model, "lm_head") else model.model.transformer.ff_out.weight
        head.mul_(6.0)
        head[tok.eos_token_id] *= eos_boost
    return model


@pytest.fixture(scope="module")
def denoisers(tokenizer, tiny_models):
    llada, _ = tiny_models.make_llada(tokenizer, seed=1)
    dream, _ = tiny_models.make_dream(tokenizer, seed=1)
    return {"llada": tiny_models.native_denoiser(sharpen(llada, tokenizer), tokenizer, shift=False),
            "dream": tiny_models.native_denoiser(sharpen(dream, tokenizer), tokenizer, shift=True)}


def states_of(gen, requests) -> dict[int, list[dict]]:
    """Each request's DenoiseStates as `stream` yields them alone."""
    return {i: [s.model_dump() for s in gen.stream(r) if isinstance(s, DenoiseState)] for i, r in enumerate(requests)}


def assert_same(batched: list[GenerationResult], alone: list[GenerationResult]) -> None:
    for b, a in zip(batched, alone, strict=True):
        assert (b.text, b.raw_text, b.citations) == (a.text, a.raw_text, a.citations)
        assert (b.trace.steps, b.trace.nfe, b.trace.tokens_per_step, b.trace.answer_tokens, b.trace.prompt_tokens,
                b.trace.remasked, b.trace.edited) == (a.trace.steps, a.trace.nfe, a.trace.tokens_per_step,
                                                      a.trace.answer_tokens, a.trace.prompt_tokens,
                                                      a.trace.remasked, a.trace.edited)


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_a_batched_diffusion_answer_is_the_one_it_gets_alone(denoisers, family, setting):
    config = DiffusionConfig(gen_length=24, block_length=8, steps=12, **SETTINGS[setting])
    gen = DiffusionGenerator(denoiser=denoisers[family], config=config)
    alone = [gen.generate(r) for r in REQUESTS]
    seen: dict[int, list[dict]] = {}
    batched = gen.generate_batch(REQUESTS, lambda i, s: seen.setdefault(i, []).append(s.model_dump()))
    assert_same(batched, alone)
    assert seen == states_of(gen, REQUESTS)  # every request's canvas, step by step, as it streams alone


def test_rows_finish_at_their_own_step_without_holding_the_others(denoisers):
    """The fixture is not trivial: answers differ, and some end (EOS) while others still denoise."""
    config = DiffusionConfig(gen_length=24, block_length=8, steps=12, **SETTINGS["cfg + repetition penalty"])
    gen = DiffusionGenerator(denoiser=denoisers["llada"], config=config)
    batched = gen.generate_batch(REQUESTS)
    steps = [r.trace.steps for r in batched]
    assert len(set(steps)) > 1 and min(steps) < 12 and max(steps) == 12
    assert len({r.raw_text for r in batched}) == len(REQUESTS)


def test_requests_with_other_configs_run_in_their_own_batch(denoisers):
    gen = DiffusionGenerator(denoiser=denoisers["llada"], config=DiffusionConfig(gen_length=24, block_length=8,
                                                                                 steps=12))
    mixed = [REQUESTS[0], REQUESTS[1].model_copy(update={"config": DiffusionConfig(gen_length=16, block_length=8,
                                                                                   steps=4)}),
             REQUESTS[3], REQUESTS[2].model_copy(update={"config": DiffusionConfig(
                 gen_length=16, block_length=8, steps=16, use_cache=False, reference_compat="llada")})]
    batched = gen.generate_batch(mixed)
    assert_same(batched, [gen.generate(r) for r in mixed])
    assert batched[1].trace.steps == 4


def test_a_denoiser_that_cannot_pad_exactly_is_batched_by_prompt_length(denoisers, monkeypatch):
    """Absolute position embeddings (HF masked LMs) see left padding as a shift: such a denoiser says so, and
    its batches only hold prompts of one length, never padded."""
    import copy

    from generator import diffusion

    den = copy.copy(denoisers["llada"])
    den.exact_left_padding = False
    gen = DiffusionGenerator(denoiser=den, config=DiffusionConfig(gen_length=24, block_length=8, steps=12))
    calls = []

    def spy(denoiser, prompt_ids, attention_mask=None, config=None, **kw):
        calls.append((prompt_ids.shape[0], attention_mask))
        return denoise_steps(denoiser, prompt_ids, attention_mask, config, **kw)

    denoise_steps = diffusion.denoise_steps
    monkeypatch.setattr(diffusion, "denoise_steps", spy)
    twins = REQUESTS[:2] + [REQUESTS[0], REQUESTS[1]]  # two prompt lengths, twice each
    batched = gen.generate_batch(twins)
    assert [(n, mask) for n, mask in calls] == [(2, None), (2, None)]
    monkeypatch.undo()
    assert_same(batched, [gen.generate(r) for r in twins])


def test_only_generators_that_batch_declare_it():
    assert isinstance(DiffusionGenerator(), BatchGenerator)
    assert isinstance(SculptGenerator(), BatchGenerator)
    assert not isinstance(ExtractiveGenerator(), BatchGenerator)


def test_generate_many_batches_where_it_can_and_otherwise_goes_one_by_one(denoisers):
    class Counting(DiffusionGenerator):
        batches = 0

        def generate_batch(self, requests, on_state=None):
            Counting.batches += 1
            return super().generate_batch(requests, on_state)

    config = DiffusionConfig(gen_length=24, block_length=8, steps=12)
    gen = Counting(denoiser=denoisers["llada"], config=config)
    assert [r.text for r in generate_many(gen, REQUESTS)] == [gen.generate(r).text for r in REQUESTS]
    assert Counting.batches == 1
    extractive = ExtractiveGenerator()
    seen: dict[int, list[DenoiseState]] = {}
    results = generate_many(extractive, REQUESTS, lambda i, s: seen.setdefault(i, []).append(s))
    assert [r.text for r in results] == [extractive.generate(r).text for r in REQUESTS]
    assert set(seen) == set(range(len(REQUESTS)))  # a one-by-one generator still reports every request's states


# -- sculpt ---------------------------------------------------------------------------------------------------
APACHE = ("Grant of Patent License. Subject to the terms and conditions of this License, each Contributor hereby "
          "grants to You a perpetual, worldwide, non-exclusive, no-charge, royalty-free, irrevocable patent license. "
          "If You institute patent litigation against any entity alleging that the Work constitutes patent "
          "infringement, then any patent licenses granted to You under this License for that Work shall terminate "
          "as of the date such litigation is filed.")
MEMO = ("Delivery report\nTo Whom it May Concern:\nThere were 20,000 bottles of water, 10,000 blankets, and 200 "
        "laptops delivered on January 23, 2023. A total of 3 trucks were used for 15 hours.\nBest Regards,")
APT = "Package archives are listed in /etc/apt/sources.list, one repository per line. APT reads it on update."
COVER = ("Galaxy Gaming, Inc. (Exact name of small business issuer as specified in its charter)\n"
         "Nevada (State or other jurisdiction of incorporation or organization) | 20-8143439 (IRS Employer "
         "Identification No.)")
TITLES[APACHE] = "Apache License, Version 2.0"  # (the grant never names Apache: its document does)
SCULPT_REQUESTS = [
    request("When do the patent licenses granted under the Apache License terminate?", APT, APACHE),
    request("How many laptops were delivered, and how many trucks were used?", MEMO),
    request("What is the boiling point of mercury in kelvin?", APT, COVER),  # refused: no passage holds it
    request("Where are package archives listed?"),  # no passages at all
    request("In which state is Galaxy Gaming incorporated?", COVER, MEMO, APT),
    request("How many blankets were delivered?", MEMO, config=DiffusionConfig(steps=2)),  # cut at 2 steps
]


@pytest.fixture(scope="module")
def sculpt() -> SculptGenerator:
    gen = SculptGenerator()
    gen.warm_up()
    return gen


@pytest.mark.slow  # minutes on 2 busy cores (--durations, issue 16)
@pytest.mark.parametrize("options", [{}, {"sampler": "naive", "selector": "learned"}])
def test_a_batched_sculpt_answer_is_the_one_it_gets_alone(sculpt, options):
    gen = sculpt.with_options(**options) if options else sculpt
    alone = [gen.generate(r) for r in SCULPT_REQUESTS]
    seen: dict[int, list[dict]] = {}
    batched = gen.generate_batch(SCULPT_REQUESTS, lambda i, s: seen.setdefault(i, []).append(s.model_dump()))
    assert_same(batched, alone)
    assert seen == {i: s for i, s in states_of(gen, SCULPT_REQUESTS).items() if s}
    if not options:  # the batch really mixes answers, refusals and a cut-off answer
        assert alone[2].text == alone[3].text == REFUSAL and alone[0].text != REFUSAL
        assert "litigation is filed" in alone[0].raw_text and alone[5].trace.steps == 2


@pytest.mark.slow  # minutes on 2 busy cores (--durations, issue 16)
def test_sculpt_batches_keep_to_the_row_limit_per_model_call(sculpt, monkeypatch):
    from generator.sculpt import generator as module

    calls: list[tuple[int, int]] = []  # (requests, canvas rows) per model call
    forward_many = sculpt._model.forward_many

    def spy(canvases, memories, only=None):
        calls.append((len(canvases), sum(c.shape[0] for c in canvases)))
        return forward_many(canvases, memories, only)

    monkeypatch.setattr(module, "BATCH_ROWS", 8)
    monkeypatch.setattr(sculpt._model, "forward_many", spy)
    batched = sculpt.generate_batch(SCULPT_REQUESTS)
    assert_same(batched, [sculpt.generate(r) for r in SCULPT_REQUESTS])
    assert all(rows <= 8 or n == 1 for n, rows in calls)  # only one request's own draft rows pass the limit
    assert any(n > 1 for n, _ in calls)  # rows of several requests did share calls


# -- the benchmark ----------------------------------------------------------------------------------------------
def test_batch_benchmark_runs_quick(shared_data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCULPTRAG_SHARED_DATA=str(shared_data))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batch_generate.py"), "--quick", "--json",
                          str(tmp_path / "rows.json")], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Batched vs one-at-a-time" in run.stdout  # the table, printed last
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["model"], r["wave"], r["mode"]) for r in rows} == {
        (m, b, mode) for m in ("sculpt", "llada-shaped") for b in (1, 2, 4) for mode in ("one at a time", "batched")}
    assert all(r["same_answers"] == 1.0 for r in rows if r["mode"] == "batched")
    assert all(r["answers_per_s"] > 0 and r["p95_s"] >= r["p50_s"] > 0 for r in rows)
