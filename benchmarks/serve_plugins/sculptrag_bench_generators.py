"""The LLaDA-shaped generator of benchmarks/sampler_bench.py as a "sculptrag.generators" plugin, so that
benchmarks/serve_load.py can serve it through `sculptrag serve` like any installed generator; and
"sculpt-torch", the bundled model on its torch runtime (the CPU default is numpy), to compare the two served.

Random weights (seed 0) and a byte-level BPE trained on the RGB rows: built the same way in every process,
so a one-at-a-time server and a batched one hold the same model. Sizes are sampler_bench's CPU model
(d_model 128, 4 layers); the answer is 128 tokens in blocks of 32, 64 steps, prefix cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]


def build_llada_shaped(**options):
    import torch
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(BENCH))
    from sampler_bench import build_model, rgb_rows, train_tokenizer

    from generator.denoisers.llada import LLaDAConfig
    from generator.diffusion import DiffusionGenerator
    from pipeline.types import DiffusionConfig

    tok = train_tokenizer(rgb_rows(), 4096)
    vocab = tok.get_vocab_size()
    config = LLaDAConfig(d_model=128, n_heads=4, n_layers=4, mlp_hidden_size=344, vocab_size=vocab,
                         embedding_size=vocab, max_sequence_length=4096)
    den = build_model(config, torch.device("cpu"), torch.float32, 4.0, tok.token_to_id("<|mask|>"),
                      tok.token_to_id("<|eos|>"))
    den.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|eos|>",
                                            mask_token="<|mask|>")
    sampling = DiffusionConfig(gen_length=128, block_length=32, steps=64, use_cache=True)
    return DiffusionGenerator(denoiser=den, config=sampling, name="llada-shaped")


def build_sculpt_torch(**options):
    from generator.sculpt import build_sculpt

    return build_sculpt(**{**options, "runtime": "torch", "name": "sculpt-torch"})
