"""A scripted fake denoiser for tests and demos: its logits come from a function of the call number.

`ScriptedDenoiser(vocab_size, script)` calls `script(call, input_ids) -> (B, L, V) logits` on every
forward, so a test can make the model's beliefs change between steps (self-correction), prefer a
template (constraints), or never emit EOS (schedules). No weights, no tokenizer unless one is given.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .base import KVCache

Script = Callable[[int, torch.Tensor], torch.Tensor]


class ScriptedDenoiser:
    """A Denoiser whose logits are scripted; counts its calls in `calls`."""

    supports_cache = False
    shift_logits = False
    exact_left_padding = False  # the script sees the pads

    def __init__(self, vocab_size: int, script: Script, *, mask_id: int, eos_id: int, pad_id: int | None = None,
                 tokenizer: Any = None, stop_ids: tuple[int, ...] = (), special_ids: tuple[int, ...] = ()) -> None:
        self.vocab_size = vocab_size
        self.script = script
        self.mask_id, self.eos_id = mask_id, eos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self.stop_ids = tuple(stop_ids) or (eos_id,)
        self.special_ids = tuple(special_ids)
        self.tokenizer = tokenizer
        self.max_length = None
        self.device = torch.device("cpu")
        self.calls = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        if cache is not None:
            raise ValueError("ScriptedDenoiser has no KV cache")
        logits = self.script(self.calls, input_ids).float()
        self.calls += 1
        if logits.shape != (*input_ids.shape, self.vocab_size):
            raise ValueError(f"script returned {tuple(logits.shape)}, expected {(*input_ids.shape, self.vocab_size)}")
        return logits

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache_len: int,
                suffix_start: int | None = None):
        return self.forward(input_ids, attention_mask), None


def prefer(targets: torch.Tensor, vocab_size: int, strength: float = 10.0, base: torch.Tensor | None = None):
    """(B, L) target ids -> (B, L, V) logits with `strength` on each target (added to `base` if given)."""
    out = torch.zeros(*targets.shape, vocab_size) if base is None else base.clone()
    out.scatter_add_(-1, targets.unsqueeze(-1), torch.full((*targets.shape, 1), float(strength)))
    return out
