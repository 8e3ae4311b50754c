"""Model adapters for the masked-diffusion sampler, and `load_denoiser(kind, path, device)`.

The adapters are plugins of the entry-point group "sculptrag.denoisers" (`DENOISERS`): a loader
`load(path, device=, dtype=) -> Denoiser` per kind. The built-in kinds are named in pyproject's entry points
and registered here too (so a source checkout that was never installed still has them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.plugins import Registry

from .base import Denoiser, KVCache, resolve_device

DenoiserLoader = Callable[..., Denoiser]
DENOISERS: Registry[DenoiserLoader] = Registry("sculptrag.denoisers", "denoiser")
DENOISERS.register("llada", "generator.denoisers.llada:load_llada")
DENOISERS.register("dream", "generator.denoisers.dream:load_dream")
DENOISERS.register("hf-mlm", "generator.denoisers.hf_mlm:load_hf_mlm")


def load_denoiser(kind: str, path: str | Path, device: str = "auto", dtype: str | None = None) -> Denoiser:
    """Load a local checkpoint with the adapter named `kind` ('llada', 'dream', 'hf-mlm' or a plugin's) on
    `device` ('auto', 'cpu', 'cuda'), in `dtype` ('float32', 'bfloat16', 'float16'; default: bf16 on CUDA,
    else fp32)."""
    return DENOISERS.get(kind)(path, device=device, dtype=dtype)


__all__ = ["DENOISERS", "Denoiser", "KVCache", "load_denoiser", "resolve_device"]
