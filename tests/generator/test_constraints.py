"""Citation constraints: markers only name given passages; with require_citations every sentence ends on a
marker. Checked on the rules themselves and on whole answers decoded from scripted and tiny models."""

from __future__ import annotations

import re

import pytest
import torch

from pipeline.text import find_markers
from generator.constraints import MARKER, CitationConstraints
from generator.denoisers.base import special_ids
from generator.denoisers.scripted import ScriptedDenoiser
from generator.diffusion import DiffusionGenerator
from pipeline.types import DiffusionConfig, GenerationRequest, Passage

STRINGS = ["", "", "[", "]", "1", "2", "7", ".", "].", " The", " [", "[7]", " 3", "5", ",", " ", "[1]", "]!"]
EOS = 1
TOK = {s: i for i, s in enumerate(STRINGS) if s}


def rules(require=False):
    return CitationConstraints(STRINGS, allowed={1, 2}, require_citations=require, stop_ids=[EOS])


def test_markers_naming_missing_passages_are_refused():
    r = rules()
    assert r.violates("x [", TOK["7"], "]")
    assert r.violates("x [1", TOK["]"], "") is False
    assert r.violates("x [1", TOK["2"], "]")  # "[12]": passage 12 was not given
    assert r.violates("x [1, ", TOK["7"], "]")
    assert not r.violates("x [", TOK["7"], "")  # "[7" is not a marker (yet): deferred, not refused
    assert r.static_ban[TOK["[7]"]] and not r.static_ban[TOK["[1]"]]
    assert r.neutral[TOK[" The"]] and not r.neutral[TOK["["]]


def test_sentence_ends_need_a_marker():
    r = rules(require=True)
    assert r.violates("x", TOK["."], "")  # a period before a mask or the end ends a sentence
    assert not r.violates("x [1]", TOK["."], "")
    assert not r.violates("x [2", TOK["]."], "")
    assert not r.violates("x 3", TOK["."], "5x")  # "3.5" is not a sentence end
    assert r.violates("x 3", TOK["."], " x")
    assert r.violates("x [1]", TOK["]!"], "")  # "[1]]!" : the "!" follows "]", not a marker
    assert r.violates("x", EOS, "") and not r.violates("x [1].", EOS, "")
    assert not rules(require=False).violates("x", TOK["."], "")


def test_no_passages_means_no_marker_and_no_requirement():
    r = CitationConstraints(STRINGS, allowed=[], require_citations=True, stop_ids=[EOS])
    assert r.static_ban[TOK["[1]"]] and r.violates("x [", TOK["1"], "]")
    assert not r.violates("x", TOK["."], "")  # nothing could be cited, so nothing is required


def unsupported_sentence_ends(text: str) -> list[int]:
    """Indexes of sentence-ending punctuation that no marker precedes."""
    return [m.start() for m in re.finditer(r"[.!?](?=\s|$)", text)
            if not re.search(MARKER + r"[\s.!?]*$", text[: m.start()])]


def _generator(tokenizer, script, cfg):
    ids = special_ids(tokenizer, {})
    den = ScriptedDenoiser(len(tokenizer), script, tokenizer=tokenizer, **ids)
    return DiffusionGenerator(denoiser=den, config=cfg, name="scripted")


def _wants(tokenizer, text: str, gen_length: int, noise_seed: int = 0):
    """A scripted model that wants the answer canvas to spell `text` (repeated), over mild random beliefs."""
    target = torch.tensor(tokenizer.encode(text, add_special_tokens=False))
    V = len(tokenizer)
    noise = torch.randn(4096, V, generator=torch.Generator().manual_seed(noise_seed))

    def script(call, ids):
        logits = noise[: ids.shape[1]].clone().expand(ids.shape[0], -1, -1).clone()
        P = ids.shape[1] - gen_length
        want = target[torch.arange(gen_length) % len(target)]
        logits[:, P + torch.arange(gen_length), want] += 12.0
        logits[..., tokenizer.eos_token_id] = -1e9
        return logits

    return script


REQUEST = GenerationRequest(question="How big is Paris?",
                            passages=(Passage(number=1, text="Paris is big."), Passage(number=2, text="Lyon.")))


def test_a_model_that_wants_a_missing_marker_cannot_write_it(tokenizer):
    cfg = DiffusionConfig(gen_length=24, block_length=8, steps=24, use_cache=False)
    script = _wants(tokenizer, " big [7]. Paris [1].", 24)
    gen = _generator(tokenizer, script, cfg)
    result = gen.generate(REQUEST)
    assert set(find_markers(result.raw_text)) <= {1, 2}
    assert "[1]" in result.raw_text  # legal markers still come through
    # without the constraints the same model does write "[7]" (so the check above can fail)
    from generator.sampler import diffusion_generate

    prompt = torch.tensor([gen.encode_prompt(REQUEST)])
    free = diffusion_generate(gen.denoiser, prompt, None, cfg).tokens[0]
    assert 7 in find_markers(tokenizer.decode(gen.answer_ids(free), skip_special_tokens=True))


def test_require_citations_every_sentence_ends_on_a_marker(tokenizer):
    cfg = DiffusionConfig(gen_length=32, block_length=16, steps=32, use_cache=False, require_citations=True)
    script = _wants(tokenizer, "Paris is big [1]. Lyon is small. ", 32)
    result = _generator(tokenizer, script, cfg).generate(REQUEST)
    assert unsupported_sentence_ends(result.raw_text) == [], result.raw_text
    assert "[1]." in result.raw_text
    free = _generator(tokenizer, script, cfg.model_copy(update={"require_citations": False})).generate(REQUEST)
    assert unsupported_sentence_ends(free.raw_text), free.raw_text  # the model alone leaves one uncited


@pytest.mark.parametrize("seed", range(4))
def test_random_model_biased_to_markers_never_names_a_missing_passage(seed, tokenizer, tiny_models):
    """A tiny random LLaDA, pushed towards bracket and digit tokens, still only cites passages 1 and 2."""
    model, _ = tiny_models.make_llada(tokenizer, seed=seed)
    inner = tiny_models.native_denoiser(model, tokenizer, shift=False)
    markerish = torch.tensor([i for i in range(len(tokenizer))
                              if any(c in "[]0123456789.," for c in tokenizer.decode([i]))])

    class Biased:
        def __getattr__(self, name):
            return getattr(inner, name)

        def forward(self, ids, mask=None, cache=None):
            logits = inner.forward(ids, mask, cache)
            logits[..., markerish] += 4.0
            return logits

        def prefill(self, ids, mask, n):
            logits, cache = inner.prefill(ids, mask, n)
            logits[..., markerish] += 4.0
            return logits, cache

    cfg = DiffusionConfig(gen_length=32, block_length=16, steps=16, temperature=1.0, seed=seed,
                          require_citations=True)
    result = DiffusionGenerator(denoiser=Biased(), config=cfg).generate(REQUEST)
    assert set(find_markers(result.raw_text)) <= {1, 2}, result.raw_text
    assert unsupported_sentence_ends(result.raw_text) == [], result.raw_text
