"""Tiny offline fixtures for the diffusion generator tests: a byte-level BPE tokenizer trained on the spot
(with mask, EOS, pad and a chat template) and random-weight LLaDA/Dream models written in their published
checkpoint formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CORPUS = [
    "Paris is the capital of France [1]. Lyon is the third largest city [2].",
    "The patient was diagnosed with diabetes in 2019 [3]. Treatment began in March [1][2].",
    "The passages do not contain the answer.",
    "Water boils at 100 degrees at sea level [2]. It freezes at 0 degrees [1, 3].",
    "The report was published on 3.5 million copies. Revenue grew by 12 percent [4].",
    "Answer the question using only the numbered passages. Question: what is the capital?",
] * 4
SPECIALS = ["<|pad|>", "<|eos|>", "<|mask|>", "<|bos|>", "<|eot|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|bos|>User: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

LLADA_TINY = {
    "model_type": "llada", "architectures": ["LLaDAModelLM"], "activation_type": "silu", "alibi": False,
    "block_type": "llama", "d_model": 32, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2,
    "mlp_hidden_size": 64, "max_sequence_length": 512, "rms_norm_eps": 1e-5, "rope": True,
    "rope_full_precision": True, "rope_theta": 500000.0, "weight_tying": False, "include_bias": False,
    "include_qkv_bias": False, "input_emb_norm": False, "scale_logits": False, "layer_norm_type": "rms",
    "attention_layer_norm": False,
}
DREAM_TINY = {
    "model_type": "Dream", "architectures": ["DreamModel"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "max_position_embeddings": 512, "tie_word_embeddings": False, "hidden_act": "silu",
    "rope_scaling": None,
}


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|eos|>",
                                   mask_token="<|mask|>", bos_token="<|bos|>",
                                   additional_special_tokens=["<|eot|>"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


def ids_config(tok) -> dict:
    return {"mask_token_id": tok.mask_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def make_llada(tok, seed: int = 0, **overrides):
    from generator.denoisers.llada import LLaDAConfig, LLaDAModelLM

    torch.manual_seed(seed)
    cfg = dict(LLADA_TINY, vocab_size=len(tok), embedding_size=len(tok) + 8, **overrides)
    return LLaDAModelLM(LLaDAConfig.from_dict(cfg)).eval(), dict(cfg, **ids_config(tok))


def make_dream(tok, seed: int = 0, **overrides):
    from generator.denoisers.dream import DreamConfig, DreamModel

    torch.manual_seed(seed)
    cfg = dict(DREAM_TINY, vocab_size=len(tok), **overrides)
    return DreamModel(DreamConfig.from_dict(cfg)).eval(), dict(cfg, **ids_config(tok))


def native_denoiser(model, tok, shift: bool):
    from generator.denoisers.base import special_ids
    from generator.denoisers.blocks import NativeDenoiser

    return NativeDenoiser(model, tok, shift_logits=shift, max_length=512, **special_ids(tok, ids_config(tok)))


def write_checkpoint(path: Path, model, config: dict, tok) -> Path:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    tok.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def llada_denoiser(tokenizer):
    model, _ = make_llada(tokenizer)
    return native_denoiser(model, tokenizer, shift=False)


@pytest.fixture(scope="session")
def dream_denoiser(tokenizer):
    model, _ = make_dream(tokenizer)
    return native_denoiser(model, tokenizer, shift=True)


class Tiny:
    """The helpers above as one fixture (test modules cannot import conftest under importlib mode)."""

    make_llada = staticmethod(make_llada)
    make_dream = staticmethod(make_dream)
    native_denoiser = staticmethod(native_denoiser)
    write_checkpoint = staticmethod(write_checkpoint)
    ids_config = staticmethod(ids_config)


@pytest.fixture(scope="session")
def tiny_models() -> Tiny:
    return Tiny()
