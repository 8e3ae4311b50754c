"""DiffusionGenerator: the Generator protocol end to end on tiny models, from memory and from checkpoints."""

from __future__ import annotations

import pytest
import torch

from generator.base import Generator, get_generator
from generator.diffusion import MASK_GLYPH, DiffusionGenerator
from pipeline.types import (
    AutoregressiveConfig,
    DenoiseState,
    DiffusionConfig,
    GenerationRequest,
    GenerationResult,
    Passage,
)
from pipeline.errors import ConfigError

CFG = DiffusionConfig(gen_length=24, block_length=8, steps=12)
REQUEST = GenerationRequest(
    question="What is the capital of France?",
    passages=(Passage(number=1, text="Paris is the capital of France.", title="France", page=3),
              Passage(number=2, text="Lyon is the third largest city.")),
)


@pytest.fixture()
def generator(llada_denoiser):
    return DiffusionGenerator(denoiser=llada_denoiser, config=CFG)


def test_generate_returns_a_traced_result(generator):
    assert isinstance(generator, Generator)
    result = generator.generate(REQUEST)
    t = result.trace
    assert t.generator == "llada" and t.steps == len(t.tokens_per_step) == t.nfe == 12
    assert sum(t.tokens_per_step) == 24  # every position committed exactly once (no remasking here)
    assert t.prompt_tokens == len(generator.encode_prompt(REQUEST)) and 0 < t.answer_tokens <= 24
    assert t.wall_time_s > 0 and t.tokens_per_s > 0
    assert MASK_GLYPH not in result.text and result.raw_text


def test_stream_shows_the_answer_sharpening_then_the_result(generator):
    items = list(generator.stream(REQUEST))
    states, final = items[:-1], items[-1]
    assert all(isinstance(s, DenoiseState) for s in states) and isinstance(final, GenerationResult)
    assert [s.step for s in states] == list(range(1, len(states) + 1))
    masked = [s.masked for s in states]
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0 and states[-1].done
    assert states[0].text.count(MASK_GLYPH) == 22 and states[0].changed  # 2 of 24 committed in step 1
    assert not any(s.done for s in states[:-1])
    assert final.text == generator.generate(REQUEST).text  # deterministic: same config, same answer


def test_prompt_is_the_chat_template_around_the_rendered_prompt(generator, tokenizer):
    text = tokenizer.decode(generator.encode_prompt(REQUEST))
    assert text.startswith("<|bos|>User: Answer the question") and text.endswith("Assistant:")
    assert "[1] France (page 3)" in text and "Question: What is the capital of France?" in text


def test_request_config_overrides_and_wrong_config_type_is_refused(generator):
    short = GenerationRequest(question="Why?", config=DiffusionConfig(gen_length=8, block_length=8, steps=4))
    assert generator.generate(short).trace.steps == 4
    with pytest.raises(ConfigError, match="DiffusionConfig"):
        generator.generate(GenerationRequest(question="Why?", config=AutoregressiveConfig()))


def test_repair_rewrites_only_the_given_span(generator, tokenizer):
    answer = "Paris is the capital of France [1]. Lyon is the third largest city [2]."
    start = answer.index("Lyon")
    end = answer.index(" [2]")
    cfg = DiffusionConfig(gen_length=24, block_length=8, steps=12, temperature=1.0, seed=5)
    request = REQUEST.model_copy(update={"config": cfg})
    fixed = generator.repair(request, answer, [(start, end)])
    ids = tokenizer.encode(answer, add_special_tokens=False)
    new_ids = tokenizer.encode(fixed.raw_text, add_special_tokens=False)
    assert fixed.raw_text.startswith(answer[:start].strip()[:-1])  # text before the span kept
    assert fixed.raw_text.rstrip().endswith("[2].")  # text after the span kept
    assert fixed.raw_text != answer and len(new_ids) >= len(ids) - 3
    assert sum(fixed.trace.tokens_per_step) == sum(1 for s, e in tokenizer(answer, return_offsets_mapping=True,
                                                                      add_special_tokens=False)["offset_mapping"]
                                                   if s < end and e > start)
    with pytest.raises(ConfigError):
        generator.repair(request, answer, [(5, 500)])


def test_registered_factories_load_checkpoints(tmp_path, tokenizer, tiny_models):
    model, cfg = tiny_models.make_llada(tokenizer, seed=2)
    path = tiny_models.write_checkpoint(tmp_path / "llada", model, cfg, tokenizer)
    gen = get_generator("llada", model_path=path, device="cpu", config=CFG)
    assert isinstance(gen, DiffusionGenerator) and gen._denoiser is None  # constructor stays cheap
    from_disk = gen.generate(REQUEST)
    in_memory = DiffusionGenerator(denoiser=tiny_models.native_denoiser(model, tokenizer, False), config=CFG)
    assert from_disk.raw_text == in_memory.generate(REQUEST).raw_text

    model, cfg = tiny_models.make_dream(tokenizer, seed=2)
    path = tiny_models.write_checkpoint(tmp_path / "dream", model, cfg, tokenizer)
    dream = get_generator("dream", model_path=path, device="cpu", config=CFG)
    assert dream.denoiser.shift_logits and dream.generate(REQUEST).trace.steps == 12
    with pytest.raises(ConfigError, match="model_path"):
        get_generator("hf-mlm").warm_up()


def test_markers_in_the_final_text_are_renumbered_and_listed(generator):
    from pipeline.text import find_markers

    result = generator.generate(REQUEST)
    cited = find_markers(result.text)
    assert set(cited) <= {1, 2}
    assert [c.marker for c in result.citations] == sorted(set(cited))


def test_self_correction_counts_reach_the_trace(llada_denoiser):
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8, edit_threshold=0.05, remask_threshold=0.9)
    trace = DiffusionGenerator(denoiser=llada_denoiser, config=cfg).generate(REQUEST).trace
    assert trace.edited + trace.remasked > 0
    assert sum(trace.tokens_per_step) == 16 + trace.remasked  # a remasked position is committed again


def test_dream_and_cfg_and_threshold_paths_run(dream_denoiser):
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=16, threshold=0.5, cfg_scale=1.0,
                          confidence="margin", repetition_penalty=1.3, require_citations=True)
    result = DiffusionGenerator(denoiser=dream_denoiser, config=cfg, name="dream").generate(REQUEST)
    assert result.trace.nfe >= 2 and torch.tensor(result.trace.tokens_per_step).ge(1).all()


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu(tmp_path, tokenizer, tiny_models):
    """On CUDA the adapters run in bf16; the tiny model's logits stay close to the CPU float32 ones."""
    from generator.denoisers import load_denoiser

    model, cfg = tiny_models.make_llada(tokenizer, seed=7)
    path = tiny_models.write_checkpoint(tmp_path / "llada", model, cfg, tokenizer)
    gpu, cpu = load_denoiser("llada", path, device="cuda"), load_denoiser("llada", path, device="cpu")
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).dtype == torch.bfloat16
    ids = torch.tensor([tokenizer.encode("Paris is the capital of France [1].", add_special_tokens=False)])
    torch.testing.assert_close(gpu.forward(ids.cuda()).cpu(), cpu.forward(ids), atol=0.1, rtol=0.05)
    result = DiffusionGenerator(denoiser=gpu, config=CFG).generate(REQUEST)
    assert result.trace.steps == 12 and MASK_GLYPH not in result.text


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_reference_compat_runs_through_the_generator(family, llada_denoiser, dream_denoiser):
    """The published samplers behind the Generator protocol: no citation constraints (they have none), the
    reference's step count, a streamed state per model call."""
    den = llada_denoiser if family == "llada" else dream_denoiser
    cfg = DiffusionConfig(gen_length=16, block_length=16, steps=8, use_cache=False, reference_compat=family)
    gen = DiffusionGenerator(denoiser=den, config=cfg, name=family)
    states = list(gen.stream(REQUEST))
    result = states[-1]
    assert isinstance(result, GenerationResult) and result.trace.nfe == result.trace.steps == 8
    assert len(states) == 9 and sum(result.trace.tokens_per_step) <= 16
