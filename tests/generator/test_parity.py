"""Parity with the published LLaDA, Dream and Fast-dLLM code, on the golden fixtures in ../shared/data/parity.

Every case of both cases.json files runs through our loaders (each fixture folder is a checkpoint in the
published layout, `auto_map` included) and our sampler with `reference_compat`: forward logits within 1e-3,
generated ids, trajectories/histories, NFE and the cache pattern (model input lengths per call) exactly equal.
The fixtures were made by the unmodified reference code; generator/parity.py maps each call onto our config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from generator.parity import case_config, compare, load_cases, load_model, load_tensors, run_case
from generator.sampler import diffusion_generate
from pipeline.types import DiffusionConfig
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PARITY = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "parity"
MISSING = "fixtures-missing"


def _case_ids() -> list[str]:
    """'family/name' of every case, read at collection time; one placeholder (a failing test) when missing."""
    try:
        return [f"{c.family}/{c.name}" for c in load_cases(PARITY)]
    except (OSError, json.JSONDecodeError, KeyError):
        return [MISSING]


@pytest.fixture(scope="module")
def parity() -> dict:
    if not (PARITY / "llada" / "cases.json").is_file() or not (PARITY / "dream" / "cases.json").is_file():
        pytest.fail(f"parity fixtures not found at {PARITY} (llada/ and dream/ with cases.json); they live in "
                    "../shared/data/parity, or set SCULPTRAG_SHARED_DATA to the shared data folder")
    torch.manual_seed(0)  # nothing below reads the global generator; this only makes that certain
    return {"cases": {f"{c.family}/{c.name}": c for c in load_cases(PARITY)},
            "tensors": {f: load_tensors(PARITY, f) for f in ("llada", "dream")},
            "models": {f: load_model(PARITY, f) for f in ("llada", "dream")}}


@pytest.mark.parametrize("case_id", _case_ids())
def test_case_matches_the_reference(case_id, parity):
    assert case_id != MISSING, f"cannot read the parity fixtures' cases.json under {PARITY}"
    case = parity["cases"][case_id]
    result = run_case(parity["models"][case.family], case, parity["tensors"][case.family])
    report = compare(case, result, parity["tensors"][case.family])
    assert not report["problems"], f"{case_id} ({case.determinism}): " + "; ".join(report["problems"])


def test_every_case_is_covered(parity):
    """56 cases, all runnable: none is skipped, informational ones (RNG-stream dependent) included."""
    cases = parity["cases"].values()
    assert len(cases) == 56 and {c.determinism for c in cases} == {"exact", "torch_cpu_rng", "informational"}
    assert sum(c.family == "llada" for c in cases) == sum(c.family == "dream" for c in cases) == 28


# Our default sampler (no reference_compat) differs from the references only where docs/generators.md says.
# On LLaDA, none of those rules fires in these cases: they must come out the same without the compat mode,
# which shows that our own prefix and dual caches and threshold decoding compute what Fast-dLLM's do.
DEFAULT_EQUALS_REFERENCE = ["gen_lowconf_s8_b8", "gen_lowconf_s16_b16", "gen_cfg1_s8_b8"] + [
    f"fastdllm_{fn}_thr{t}_prompt_{p}" for fn in ("nocache", "prefix_cache", "dual_cache")
    for t in ("none", "0.9", "0.5") for p in "ab"]


@pytest.mark.parametrize("name", DEFAULT_EQUALS_REFERENCE)
def test_default_sampler_equals_the_reference_where_no_difference_applies(name, parity, monkeypatch):
    from generator import parity as harness

    case = parity["cases"][f"llada/{name}"]
    ours = case_config(case).model_copy(update={"reference_compat": None})
    monkeypatch.setattr(harness, "case_config", lambda c: ours)
    result = run_case(parity["models"]["llada"], case, parity["tensors"]["llada"])
    assert not compare(case, result, parity["tensors"]["llada"])["problems"]


def test_default_sampler_differs_where_documented(parity):
    """EOS: the reference may commit EOS anywhere, then go on writing after it (gen_lowconf_s8_b8_nomask row 1
    ends `..., 585, 1001, 1001, 728, 370, ...`); ours commits a stop token only at the first open position and
    ends the answer there."""
    case = parity["cases"]["llada/gen_lowconf_s8_b8_nomask"]
    ref = parity["tensors"]["llada"]["gen_lowconf_s8_b8_nomask/x"][1, 8:].tolist()
    eos = 1001
    first = ref.index(eos)
    assert any(t != eos for t in ref[first:])  # the reference writes on after EOS
    den = parity["models"]["llada"]
    prompt = parity["tensors"]["llada"]["inputs/gen_nopad/prompt"]
    ours = diffusion_generate(den, prompt, None, case_config(case).model_copy(update={"reference_compat": None}))
    row = ours.tokens[1].tolist()
    assert row.index(eos) == first and row[first:] == [eos] * (16 - first)  # the same end, and nothing after it
    assert torch.equal(ours.tokens[0], parity["tensors"]["llada"]["gen_lowconf_s8_b8_nomask/x"][0, 8:])


def test_compat_refuses_what_no_reference_has(parity):
    den = parity["models"]["llada"]
    prompt = parity["tensors"]["llada"]["inputs/gen_nopad/prompt"]
    base = DiffusionConfig(gen_length=16, block_length=8, steps=8, reference_compat="llada")
    with pytest.raises(ConfigError, match="UnboundLocalError"):  # generate.py crashes on CFG without a mask
        diffusion_generate(den, prompt, None, base.model_copy(update={"cfg_scale": 1.0}))
    with pytest.raises(ConfigError, match="classifier-free"):
        diffusion_generate(den, prompt, torch.ones_like(prompt), base.model_copy(update={"cfg_scale": 1.0,
                                                                                         "threshold": 0.9}))
    with pytest.raises(ConfigError, match="shift"):
        diffusion_generate(parity["models"]["dream"], prompt, None, base)
    dream = base.model_copy(update={"reference_compat": "dream", "use_cache": True, "confidence": "probability"})
    with pytest.raises(ConfigError, match="entropy"):  # Fast-dLLM's block sampler ranks by entropy regardless
        diffusion_generate(parity["models"]["dream"], prompt[:1], None, dream)
    with pytest.raises(ConfigError, match="batch 1"):
        diffusion_generate(parity["models"]["dream"], prompt, None, dream.model_copy(update={"threshold": 0.9}))
    with pytest.raises(ValueError, match="remask_threshold"):  # self-correction is ours alone
        DiffusionConfig(reference_compat="llada", remask_threshold=0.5)


def test_fixture_models_load_as_published_checkpoints(parity):
    """The fixture folders carry `auto_map` (remote code) in config.json; our loaders ignore it and use the
    config's special ids: no tokenizer files there, so the denoiser works on ids only."""
    cfg = json.loads((PARITY / "llada" / "config.json").read_text())
    assert "auto_map" in cfg
    den = parity["models"]["llada"]
    assert (den.mask_id, den.eos_id, den.pad_id, den.tokenizer) == (1023, 1001, 1001, None)
    assert parity["models"]["dream"].shift_logits and not den.shift_logits


@pytest.mark.gpu
def test_exact_cases_match_on_cuda_in_float32(parity):
    """On CUDA in float32 every 'exact' case matches too (RNG-dependent cases draw from the CUDA generator)."""
    models = {f: load_model(PARITY, f, device="cuda", dtype="float32") for f in ("llada", "dream")}
    failed = []
    for case_id, case in parity["cases"].items():
        if case.determinism == "exact":
            report = compare(case, run_case(models[case.family], case, parity["tensors"][case.family]),
                             parity["tensors"][case.family])
            failed += [f"{case_id}: {p}" for p in report["problems"]]
    assert not failed, "\n".join(failed)
