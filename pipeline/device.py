"""Where models run: the one reading of a `device` setting ("auto", "cpu", "cuda", "cuda:N").

Every model loader (the embedder, the NLI checker, the sculpt model and its training, the autoregressive
baseline, the diffusion denoisers) resolves its setting here, so "auto" means the same everywhere and a
wrong setting fails the same way, with one message. torch is imported inside the functions: importing
this module stays light. Each of them also builds its model under `loads_model`: one at a time per process.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "resolve_device", "device_name", "default_dtype", "resolve_device_and_dtype", "gpu_build",
           "loads_model"]

DEVICES = ("auto", "cpu", "cuda")  # the settings; "cuda:N" names one GPU
_SETTING_RE = re.compile(r"auto|cpu|cuda(?::\d+)?")

_LOADING = threading.RLock()
F = TypeVar("F", bound=Callable)


def loads_model(fn: F) -> F:
    """Run `fn` (a model loader) while no other thread of this process loads a model. transformers and
    accelerate build models inside process-wide switches (`init_empty_weights` patches
    `nn.Module.register_parameter`; weight initialisation and tying are skipped through module globals), so a
    model built in one thread while another loads can come out on the meta device or with weights left as
    initialised (transformers#41782). The app and the service load the default models in a warm-up thread
    while the first request may load others (the support checker, another generator)."""

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with _LOADING:
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]


def resolve_device(setting: "str | torch.device" = "auto") -> "torch.device":
    """'auto' -> CUDA when available, else CPU; 'cpu'; 'cuda' or 'cuda:N' (ConfigError without CUDA, or
    without that GPU). Any other name is a ConfigError. A torch.device is read as its name."""
    import torch

    name = str(setting).strip().lower()
    if not _SETTING_RE.fullmatch(name):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {setting!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
                              "are visible; use device='cuda' or 'auto'")
    return torch.device(name)


def device_name(setting: "str | torch.device" = "auto") -> str:
    """resolve_device's answer as a name ("cpu", "cuda:0"), without importing torch where the answer is the CPU
    anyway: the setting "cpu", or "auto" on a CPU-only torch build (`gpu_build`). A runtime that needs no torch
    on the CPU (the ONNX embedder, sculpt's numpy runtime) decides with this."""
    name = str(setting).strip().lower()
    if name == "cpu" or (name == "auto" and not gpu_build()):
        return "cpu"
    return str(resolve_device(setting))


def gpu_build() -> bool:
    """Could 'auto' resolve to a GPU here? False only when the installed torch is a CPU-only build (its
    torch/version.py says so), read without importing torch: importing it costs ~2 s of a cold start, which
    a process that runs no torch model (the ONNX embedder, the extractive generator) need not pay."""
    import importlib.util
    import sys
    from pathlib import Path

    if "torch" in sys.modules:
        return True  # already paid for: resolve_device asks torch itself
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
    except OSError:
        return True
    builds = re.findall(r"^(cuda|hip|xpu)\s*(?::[^=]*)?=\s*(.+)$", text, re.M)
    return not builds or any(value.strip() != "None" for _, value in builds)


def default_dtype(device: "torch.device") -> "torch.dtype":
    """The dtype a model loads in on `device` by default: bfloat16 on CUDA (float16 where the GPU has no
    bf16), float32 on CPU."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_device_and_dtype(setting: "str | torch.device" = "auto") -> "tuple[torch.device, torch.dtype]":
    """(resolve_device(setting), its default_dtype)."""
    device = resolve_device(setting)
    return device, default_dtype(device)
