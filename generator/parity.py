"""The golden parity fixtures run through our loaders and sampler: proof that the native models are exact.

The fixtures (../shared/data/parity, made by the unmodified LLaDA, Dream and Fast-dLLM code; their README
describes every case) hold tiny random models in the published checkpoint layouts and, per case, the
reference's call and outputs: forward logits, generated ids, per-step trajectories or histories, NFE.
`run_case` translates a case's call into a `DiffusionConfig` with `reference_compat` and runs it with our code;
`compare` says how the result differs from the reference's. Used by tests/generator/test_parity.py (CPU fp32)
and benchmarks/gpu_lane.py (CUDA fp32 and bf16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .denoisers import Denoiser, load_denoiser
from .denoisers.blocks import NativeDenoiser
from .sampler import denoise_steps
from pipeline.types import DiffusionConfig

FAMILIES = ("llada", "dream")
LOGITS_ATOL = 1e-3  # the fixtures' tolerance for fp32 logits (their decision margins are wider)
DREAM_ALGS = {"maskgit_plus": "probability", "topk_margin": "margin", "entropy": "entropy", "origin": "random",
              "confidence_threshold": "probability"}
LLADA_REMASKING = {"low_confidence": "probability", "random": "random"}


@dataclass(frozen=True)
class Case:
    family: str  # 'llada' or 'dream'
    name: str
    spec: dict  # the case's entry in cases.json

    @property
    def kind(self) -> str:
        return self.spec["kind"]  # 'forward' or 'generate'

    @property
    def determinism(self) -> str:
        return self.spec["determinism"]  # 'exact', 'torch_cpu_rng' or 'informational'


@dataclass
class Result:
    """What our code produced for a case, in the fixture's terms."""

    logits: torch.Tensor | None = None  # forward cases: (B, L, V)
    ids: torch.Tensor | None = None  # (B, prompt + answer)
    inputs: list[torch.Tensor] = field(default_factory=list)  # the ids fed to the model at each call (CFG: first B rows)
    states: list[torch.Tensor] = field(default_factory=list)  # the full ids after each step
    nfe: int = 0


def load_cases(folder: Path) -> list[Case]:
    """Every case of every family's cases.json under `folder` (the parity fixtures' root)."""
    return [Case(family, c["name"], c) for family in FAMILIES
            for c in json.loads((Path(folder) / family / "cases.json").read_text())["cases"]]


def load_tensors(folder: Path, family: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / family / "cases.safetensors"))


def load_model(folder: Path, family: str, device: str = "cpu", dtype: str | None = "float32") -> Denoiser:
    """The family's fixture model, loaded by our loader as any published checkpoint folder would be."""
    return load_denoiser(family, Path(folder) / family, device=device, dtype=dtype)


def case_config(case: Case) -> DiffusionConfig:
    """The DiffusionConfig that asks our sampler for what the case's reference call does."""
    a, ref = case.spec["args"], case.spec["reference"]
    common = dict(temperature=a["temperature"], top_p=a.get("top_p"), threshold=a.get("threshold"),
                  seed=case.spec.get("seed", 0), reference_compat=case.family)
    if case.family == "llada":
        fn = ref["function"]
        return DiffusionConfig(gen_length=a["gen_length"], block_length=a["block_length"], steps=a["steps"],
                               confidence=LLADA_REMASKING[a["remasking"]], cfg_scale=a.get("cfg_scale", 0.0),
                               use_cache=fn != "generate", dual_cache=fn == "generate_with_dual_cache",
                               logits_eos_inf=a.get("logits_eos_inf", False),
                               confidence_eos_eot_inf=a.get("confidence_eos_eot_inf", False), **common)
    block_sampler = ref["path"].endswith("generation_utils_block.py")
    gen = a["max_new_tokens"]
    return DiffusionConfig(gen_length=gen, block_length=a["block_length"] if block_sampler else gen,
                           steps=a["steps"], confidence=DREAM_ALGS[a["alg"]], use_cache=block_sampler,
                           dual_cache=a.get("dual_cache", False), **common)


class _Recording:
    """A denoiser that records the ids of every model call (the first `rows` rows: CFG doubles the batch)."""

    def __init__(self, den: Denoiser, rows: int) -> None:
        self.den, self.rows, self.inputs = den, rows, []

    def __getattr__(self, name):
        return getattr(self.den, name)

    def forward(self, ids, mask=None, cache=None):
        self.inputs.append(ids[: self.rows].clone().cpu())
        return self.den.forward(ids, mask, cache)

    def prefill(self, ids, mask, n, suffix_start=None):
        self.inputs.append(ids[: self.rows].clone().cpu())
        return self.den.prefill(ids, mask, n, suffix_start)


def with_roles(den: Denoiser, case: Case) -> Denoiser:
    """The EOS/EoT cases give two ordinary tokens the roles of LLaDA-8B's EOS and end-of-turn ids."""
    roles = case.spec.get("roles")
    if roles is None:
        return den
    if not isinstance(den, NativeDenoiser):
        raise TypeError("roles need a NativeDenoiser")
    eos, eot = roles["eos_role_token"], roles["eot_role_token"]
    return NativeDenoiser(den.model, den.tokenizer, mask_id=den.mask_id, eos_id=eos, pad_id=den.pad_id,
                          stop_ids=(eos, eot), special_ids=den.special_ids, shift_logits=den.shift_logits,
                          max_length=den.max_length)


def run_case(den: Denoiser, case: Case, tensors: dict[str, torch.Tensor]) -> Result:
    """Run one case with our code on `den` (the family's fixture model, on any device and dtype)."""
    inputs = {k: (tensors[v].to(den.device) if v is not None else None) for k, v in case.spec["inputs"].items()}
    if case.kind == "forward":  # Dream's 4-D mask and token positions are what our 2-D mask derives
        mask = _mask_name(case)
        logits = den.forward(inputs["input_ids"], inputs[mask] if mask else None)
        return Result(logits=logits.float().cpu(), nfe=1)
    prompt = inputs.get("prompt", inputs.get("inputs"))
    rec = _Recording(with_roles(den, case), prompt.shape[0])
    out = Result()
    for event in denoise_steps(rec, prompt, inputs.get("attention_mask"), case_config(case)):
        if event.done:
            out.ids, out.nfe = torch.cat([prompt, event.output.tokens], 1).cpu(), event.output.nfe
        else:
            out.states.append(torch.cat([prompt, event.canvas], 1).cpu())
    out.inputs = rec.inputs
    return out


def compare(case: Case, result: Result, tensors: dict[str, torch.Tensor], atol: float = LOGITS_ATOL) -> dict:
    """How `result` differs from the reference: {'problems': [...] (empty: a match), 'max_abs_logit' (forward
    cases), 'id_agreement' (share of generated ids equal to the reference's)}."""
    name, spec = case.name, case.spec
    problems: list[str] = []
    out: dict = {"problems": problems}
    if case.kind == "forward":
        ref = tensors[f"{name}/logits"]
        diff = (result.logits - ref).abs()
        mask = _mask_name(case)
        if case.family == "dream" and mask:  # Dream's pad rows are undefined (fully masked queries)
            diff = diff[tensors[spec["inputs"][mask]].bool()]
        out["max_abs_logit"] = float(diff.max())
        if not out["max_abs_logit"] <= atol:
            problems.append(f"logits differ by up to {out['max_abs_logit']:.2e} (tolerance {atol:.0e})")
        return out
    key = "x" if case.family == "llada" else "sequences"
    ref_ids = tensors[f"{name}/{key}"]
    P = ref_ids.shape[1] - (spec["args"].get("gen_length") or spec["args"]["max_new_tokens"])
    out["id_agreement"] = float((result.ids[:, P:] == ref_ids[:, P:]).float().mean())
    if not torch.equal(result.ids, ref_ids):
        problems.append(f"ids differ: ours {result.ids.tolist()} reference {ref_ids.tolist()}")
    if result.nfe != spec["nfe"]:
        problems.append(f"NFE {result.nfe}, reference {spec['nfe']}")
    if f"{name}/trajectory" in tensors:  # the x fed to the model at each call
        ref = tensors[f"{name}/trajectory"]
        if len(result.inputs) != ref.shape[0] or not all(torch.equal(a, b) for a, b in zip(result.inputs, ref)):
            problems.append("the trajectory (model inputs per call) differs")
    if f"{name}/history" in tensors:  # x after each step
        ref = tensors[f"{name}/history"]
        if len(result.states) != ref.shape[0] or not all(torch.equal(a, b) for a, b in zip(result.states, ref)):
            problems.append("the history (x after each step) differs")
    lengths = spec.get("call_input_lengths")
    if lengths is not None and [t.shape[1] for t in result.inputs] != lengths:
        problems.append(f"model input lengths {[t.shape[1] for t in result.inputs]}, reference {lengths}")
    return out


def _mask_name(case: Case) -> str | None:
    """The key of a forward case's 2-D attention mask input, if it has one."""
    return next((k for k in ("attention_mask", "attention_mask_2d") if case.spec["inputs"].get(k)), None)
