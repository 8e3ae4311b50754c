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


def load_denoiser(kind: str, path: str | Path, device: str = "auto") -> Denoiser:
    """Load a local checkpoint with the adapter named `kind` ('llada', 'dream' or 'hf-mlm')."""
    if kind not in LOADERS:
        raise ConfigError(f"unknown denoiser {kind!r}; available: {', '.join(sorted(LOADERS))}")
    from importlib import import_module

    module, func = LOADERS[kind].split(":")
    loader: Callable[..., Denoiser] = getattr(import_module(module), func)
    return loader(path, device=device)


__all__ = ["Denoiser", "KVCache", "LOADERS", "load_denoiser", "resolve_device"]
