"""Model adapters for the masked-diffusion sampler, and `load_denoiser(kind, path, device)`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.errors import ConfigError

from .base import Denoiser, KVCache, resolve_device

LOADERS: dict[str, str] = {
    "llada": "generator.denoisers.llada:load_llada",
    "dream": "generator.denoisers.dream:load_dream",
    "hf-mlm": "generator.denoisers.hf_mlm:load_hf_mlm",
}


def load_denoiser(kind: str, path: str | Path, device: str = "auto", dtype: str | None = None) -> Denoiser:
    """Load a local checkpoint with the adapter named `kind` ('llada', 'dream' or 'hf-mlm') on `device`
    ('auto', 'cpu', 'cuda'), in `dtype` ('float32', 'bfloat16', 'float16'; default: bf16 on CUDA, else fp32)."""
    if kind not in LOADERS:
        raise ConfigError(f"unknown denoiser {kind!r}; available: {', '.join(sorted(LOADERS))}")
    from importlib import import_module

    module, func = LOADERS[kind].split(":")
    loader: Callable[..., Denoiser] = getattr(import_module(module), func)
    return loader(path, device=device, dtype=dtype)


__all__ = ["Denoiser", "KVCache", "LOADERS", "load_denoiser", "resolve_device"]
