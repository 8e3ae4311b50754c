"""Denoiser adapters: published checkpoint formats round-trip, KV cache and padding give the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from generator.denoisers import load_denoiser
from generator.denoisers.base import Denoiser, resolve_device
from pipeline.errors import ConfigError, ModelLoadError

LLADA_NAMES = [
    "model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight",
    "model.transformer.blocks.0.q_proj.weight", "model.transformer.blocks.0.k_proj.weight",
    "model.transformer.blocks.0.v_proj.weight", "model.transformer.blocks.0.attn_out.weight",
    "model.transformer.blocks.0.ff_proj.weight", "model.transformer.blocks.0.up_proj.weight",
    "model.transformer.blocks.0.ff_out.weight", "model.transformer.blocks.1.attn_norm.weight",
    "model.transformer.blocks.1.ff_norm.weight",
]
DREAM_NAMES = [
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.self_attn.k_proj.bias", "model.layers.0.self_attn.v_proj.bias",
    "model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
    "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
]


def _ids(tokenizer, text="Paris is the capital of France [1]. Lyon is the third largest city [2]."):
    return torch.tensor([tokenizer.encode(text, add_special_tokens=False)])


def _perturb(model, seed=1):
    """Random norms too (a fresh model has all-ones norms, which would hide a mis-loaded norm)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("ln_f.weight") or name.endswith(".bias"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
    return model


def test_llada_round_trip_published_format(tmp_path, tokenizer, tiny_models):
    model, cfg = tiny_models.make_llada(tokenizer, seed=3)
    _perturb(model)
    assert set(LLADA_NAMES) <= set(model.state_dict())
    path = tiny_models.write_checkpoint(tmp_path / "llada", model, cfg, tokenizer)
    den = load_denoiser("llada", path, device="cpu")
    ref = tiny_models.native_denoiser(model, tokenizer, shift=False)
    ids = _ids(tokenizer)
    torch.testing.assert_close(den.forward(ids), ref.forward(ids), atol=1e-5, rtol=1e-5)
    assert isinstance(den, Denoiser)
    assert (den.mask_id, den.eos_id, den.shift_logits) == (tokenizer.mask_token_id, tokenizer.eos_token_id, False)
    assert den.vocab_size == len(tokenizer) + 8  # embedding_size (padded) rows, as LLaDA pads its vocab
    assert den.tokenizer.chat_template


def test_dream_round_trip_published_format(tmp_path, tokenizer, tiny_models):
    model, cfg = tiny_models.make_dream(tokenizer, seed=4)
    _perturb(model)
    assert set(DREAM_NAMES) <= set(model.state_dict())
    path = tmp_path / "dream"
    tiny_models.write_checkpoint(path, model, cfg, tokenizer)
    # Dream ships a custom tokenizer class (remote code) and vocab.json + merges.txt: the loader must fall back
    (path / "tokenizer.json").unlink()
    tokenizer.backend_tokenizer.model.save(str(path))
    tc = json.loads((path / "tokenizer_config.json").read_text())
    tc.update(tokenizer_class="DreamTokenizer", auto_map={"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]})
    (path / "tokenizer_config.json").write_text(json.dumps(tc))
    den = load_denoiser("dream", path, device="cpu")
    ref = tiny_models.native_denoiser(model, tokenizer, shift=True)
    ids = _ids(tokenizer)
    torch.testing.assert_close(den.forward(ids), ref.forward(ids), atol=1e-5, rtol=1e-5)
    assert den.shift_logits and den.mask_id == tokenizer.mask_token_id
    assert den.tokenizer.convert_tokens_to_ids("<|mask|>") == den.mask_id


def test_sharded_checkpoint_loads(tmp_path, tokenizer, tiny_models):
    from safetensors.torch import save_file

    model, cfg = tiny_models.make_llada(tokenizer, seed=5)
    path = tiny_models.write_checkpoint(tmp_path / "sharded", model, cfg, tokenizer)
    (path / "model.safetensors").unlink()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(path / shard))
    index = {"weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    den = load_denoiser("llada", path, device="cpu")
    ids = _ids(tokenizer)
    torch.testing.assert_close(den.forward(ids), tiny_models.native_denoiser(model, tokenizer, False).forward(ids))


def test_wrong_layout_is_a_clear_error(tmp_path, tokenizer, tiny_models):
    model, cfg = tiny_models.make_llada(tokenizer)
    path = tiny_models.write_checkpoint(tmp_path / "bad", model, dict(cfg, n_layers=3), tokenizer)
    with pytest.raises(ModelLoadError, match="does not match"):
        load_denoiser("llada", path, device="cpu")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_denoiser("llada", tmp_path / "missing", device="cpu")
    with pytest.raises(ConfigError):
        load_denoiser("gpt", path)


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_cached_forward_equals_full_forward(which, llada_denoiser, dream_denoiser, tokenizer):
    den = llada_denoiser if which == "llada" else dream_denoiser
    ids = _ids(tokenizer)
    full, cache = den.prefill(ids, None, 9)
    assert cache.length == 9
    part = den.forward(ids[:, 9:], None, cache)
    torch.testing.assert_close(part, full[:, 9:], atol=1e-5, rtol=1e-5)
    # and the cache really is used: a stale prefix changes the answer
    changed = ids.clone()
    changed[:, :9] = tokenizer.mask_token_id
    _, stale = den.prefill(changed, None, 9)
    assert (den.forward(ids[:, 9:], None, stale) - full[:, 9:]).abs().max() > 1e-3


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_dual_cached_forward_equals_full_forward(which, llada_denoiser, dream_denoiser, tokenizer):
    """A dual cache keeps the prefix [0, 6) and the suffix [12, L): the middle alone gives the full logits."""
    den = llada_denoiser if which == "llada" else dream_denoiser
    ids = _ids(tokenizer)
    full, cache = den.prefill(ids, None, 6, 12)
    assert (cache.length, cache.suffix_length) == (6, ids.shape[1] - 12)
    torch.testing.assert_close(den.forward(ids[:, 6:12], None, cache), full[:, 6:12], atol=1e-5, rtol=1e-5)
    # the suffix really comes from the cache: a stale suffix changes the answer
    changed = ids.clone()
    changed[:, 12:] = tokenizer.mask_token_id
    _, stale = den.prefill(changed, None, 6, 12)
    assert (den.forward(ids[:, 6:12], None, stale) - full[:, 6:12]).abs().max() > 1e-3


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_a_cached_step_writes_its_block_into_the_cache_in_place(which, llada_denoiser, dream_denoiser, tokenizer):
    """Steps reuse one buffer per layer: the block's keys are rewritten where they are, the cached prefix and
    suffix are left as they were, and a step sees only its own block's keys, never an earlier step's."""
    den = llada_denoiser if which == "llada" else dream_denoiser
    ids = _ids(tokenizer)
    _, cache = den.prefill(ids, None, 6, 12)
    buffers = [k.data_ptr() for k in cache.keys]
    before = [k.clone() for k in cache.keys]
    changed = ids.clone()
    changed[:, 6:12] = tokenizer.mask_token_id
    step = den.forward(changed[:, 6:12], None, cache)
    assert [k.data_ptr() for k in cache.keys] == buffers
    assert all(k.shape[2] == ids.shape[1] for k in cache.keys)
    for old, new in zip(before, cache.keys):
        assert torch.equal(old[:, :, :6], new[:, :, :6]) and torch.equal(old[:, :, 12:], new[:, :, 12:])
        assert not torch.equal(old[:, :, 6:12], new[:, :, 6:12])
    torch.testing.assert_close(den.forward(changed[:, 6:12], None, cache), step, atol=0, rtol=0)
    # nothing of the changed step lingers: the original block gives the original logits back
    full, _ = den.prefill(ids, None, 6, 12)
    torch.testing.assert_close(den.forward(ids[:, 6:12], None, cache), full[:, 6:12], atol=1e-5, rtol=1e-5)


def test_cuda_graphs_are_off_on_cpu(llada_denoiser):
    assert llada_denoiser.cuda_graphs is False  # the default follows the device: on only for CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["llada", "dream"])
@pytest.mark.parametrize("dual", [False, True])
def test_cuda_graph_steps_generate_what_eager_steps_do(which, dual, tokenizer, tiny_models, monkeypatch):
    """On CUDA a block's cached steps replay one captured graph: the answer is the eager answer, token for
    token, with a left-padded batch (the key mask and positions are graph inputs), and each block captures
    once (the graph is bound to its block's cache)."""
    from generator.denoisers import blocks
    from generator.sampler import diffusion_generate
    from pipeline.types import DiffusionConfig

    captures, real_init = [], blocks._StepGraph.__init__

    def counted(graph, *args, **kwargs):
        captures.append(1)
        real_init(graph, *args, **kwargs)

    monkeypatch.setattr(blocks._StepGraph, "__init__", counted)
    make = tiny_models.make_llada if which == "llada" else tiny_models.make_dream
    model, _ = make(tokenizer)
    den = tiny_models.native_denoiser(model.cuda(), tokenizer, shift=which == "dream")
    assert den.cuda_graphs
    prompt = _ids(tokenizer).repeat(2, 1).cuda()
    attn = torch.ones_like(prompt)
    attn[1, :3] = 0  # a left-padded row
    cfg = DiffusionConfig(gen_length=16, block_length=8, steps=8, temperature=0.0, use_cache=True, dual_cache=dual)
    graphed = diffusion_generate(den, prompt, attn, cfg)
    den.cuda_graphs = False
    eager = diffusion_generate(den, prompt, attn, cfg)
    assert torch.equal(graphed.tokens, eager.tokens)
    assert 1 <= len(captures) <= graphed.nfe // 2  # captured per block, replayed by the block's other steps


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_left_padding_does_not_change_logits(which, llada_denoiser, dream_denoiser, tokenizer):
    den = llada_denoiser if which == "llada" else dream_denoiser
    ids = _ids(tokenizer)
    pad = torch.full((1, 4), tokenizer.pad_token_id)
    padded = torch.cat([pad, ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones_like(ids)], dim=1)
    torch.testing.assert_close(den.forward(padded, mask)[:, 4:], den.forward(ids), atol=1e-5, rtol=1e-5)
    # cache + padding together
    full, cache = den.prefill(padded, mask, 10)
    torch.testing.assert_close(den.forward(padded[:, 10:], mask, cache), full[:, 10:], atol=1e-5, rtol=1e-5)


def test_hf_masked_lm_adapter(tmp_path, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id)
    model = BertForMaskedLM(cfg).eval()
    model.save_pretrained(str(tmp_path / "bert"))
    tokenizer.save_pretrained(str(tmp_path / "bert"))
    den = load_denoiser("hf-mlm", tmp_path / "bert", device="cpu")
    ids = _ids(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(den.forward(ids), model(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    assert not den.supports_cache and den.mask_id == tokenizer.mask_token_id and den.max_length == 256


def test_resolve_device():
    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(ConfigError):
        resolve_device("tpu")


def test_special_ids_come_from_config_and_tokenizer(tokenizer, tiny_models):
    from generator.denoisers.base import special_ids

    ids = special_ids(tokenizer, dict(tiny_models.ids_config(tokenizer), mask_token_id=7))
    assert ids["mask_id"] == 7  # config.json wins for the mask id (LLaDA keeps it there)
    assert ids["eos_id"] == tokenizer.eos_token_id and ids["eos_id"] in ids["stop_ids"]
    assert tokenizer.bos_token_id in ids["special_ids"] and tokenizer.eos_token_id not in ids["special_ids"]
    with pytest.raises(ModelLoadError, match="mask"):
        special_ids(None, {"eos_token_id": 1})


# -- checkpoints as published (the parity fixtures' models, re-packed the way the hub ships 8B models) ----
def _publish(src, dst, tokenizer, config_update=None):
    """`src` (config.json + model.safetensors) re-packed as the hub ships LLaDA-8B / Dream-7B: 2 shards and an
    index, generation_config.json, tokenizer files; config.json keeps its `auto_map` (remote code)."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(dict(cfg, **(config_update or {}))))
    state = load_file(str(src / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(dst / shard))
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (dst / "generation_config.json").write_text(json.dumps({"eos_token_id": [cfg["eos_token_id"], 73]}))
    tokenizer.save_pretrained(str(dst))
    return dst


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_published_sharded_folder_loads_without_remote_code(family, shared_data, tmp_path, tokenizer):
    from safetensors.torch import load_file

    src = shared_data / "parity" / family
    assert "auto_map" in json.loads((src / "config.json").read_text())
    path = _publish(src, tmp_path / family, tokenizer)
    den = load_denoiser(family, path, device="cpu")
    ids = load_file(str(src / "cases.safetensors"))["inputs/fwd_nopad/input_ids"]
    reference = load_file(str(src / "cases.safetensors"))["fwd_nopad/logits"]  # the published modeling code's
    torch.testing.assert_close(den.forward(ids), reference, atol=1e-3, rtol=0)
    torch.testing.assert_close(den.forward(ids), load_denoiser(family, src, device="cpu").forward(ids), atol=0, rtol=0)
    assert den.tokenizer is not None and 73 in den.stop_ids  # generation_config.json's extra EOS ends answers
    assert den.mask_id == 1023  # config.json's mask_token_id wins over the tokenizer's


def test_weights_stream_one_tensor_at_a_time_in_the_target_dtype(shared_data, tmp_path, tokenizer, monkeypatch):
    """No whole-file state dict (safetensors' load_file is never called), parameters in the asked dtype."""
    import safetensors.torch

    def whole_file(*a, **k):
        raise AssertionError("the loader read a whole checkpoint file into memory")

    path = _publish(shared_data / "parity" / "llada", tmp_path / "llada", tokenizer)
    monkeypatch.setattr(safetensors.torch, "load_file", whole_file)
    den = load_denoiser("llada", path, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in den.model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in den.model.parameters()} == {"cpu"}
    with pytest.raises(ConfigError, match="dtype"):
        load_denoiser("llada", path, device="cpu", dtype="float8")


@pytest.mark.parametrize("family,key,value", [
    ("llada", "block_type", "sequential"),
    ("llada", "alibi", True),
    ("llada", "moe_num_experts", 64),
    ("llada", "clip_qkv", 8.0),
    ("dream", "use_sliding_window", True),
    ("dream", "num_experts", 8),
    ("dream", "hidden_act", "gelu"),
])
def test_unsupported_config_is_refused_naming_the_key(family, key, value, shared_data, tmp_path, tokenizer):
    path = _publish(shared_data / "parity" / family, tmp_path / family, tokenizer, {key: value})
    with pytest.raises(ModelLoadError, match=key):
        load_denoiser(family, path, device="cpu")


def test_a_tensor_of_the_wrong_shape_is_named(shared_data, tmp_path, tokenizer):
    path = _publish(shared_data / "parity" / "llada", tmp_path / "llada", tokenizer, {"mlp_hidden_size": 96})
    with pytest.raises(ModelLoadError, match=r"blocks\.0\.ff_out\.weight has shape \(64, 128\)"):
        load_denoiser("llada", path, device="cpu")
