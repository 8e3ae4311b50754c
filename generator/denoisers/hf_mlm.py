"""Any Hugging Face masked LM (BERT, RoBERTa, ModernBERT, ...) from a local folder, as a Denoiser.

Loaded with AutoModelForMaskedLM, local files only, no remote code. Such models have no KV cache here
(`supports_cache=False`: the sampler runs a full forward every step) and unshifted logits. The answer ends
at the tokenizer's EOS, or [SEP] for BERT-style tokenizers. Models with absolute position embeddings see
left padding as a shift of positions, so a padded batch is not guaranteed to equal single runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pipeline.device import loads_model
from pipeline.errors import ModelLoadError

from .base import KVCache, generation_eos, load_tokenizer, read_config, resolve_device, special_ids, torch_dtype

log = logging.getLogger(__name__)


class HFMaskedLMDenoiser:
    """Wraps a transformers masked LM: forward(ids, mask) -> logits."""

    supports_cache = False
    shift_logits = False
    exact_left_padding = False  # absolute position embeddings see left padding as a shift

    def __init__(self, model, tokenizer, *, mask_id: int, eos_id: int, pad_id: int,
                 stop_ids: tuple[int, ...] = (), special_ids: tuple[int, ...] = (),
                 max_length: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mask_id, self.eos_id, self.pad_id = mask_id, eos_id, pad_id
        self.stop_ids = tuple(stop_ids) or (eos_id,)
        self.special_ids = tuple(special_ids)
        self.max_length = max_length
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        if cache is not None:
            raise ValueError("HFMaskedLMDenoiser has no KV cache; call it without one")
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()  # (B, L, V)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache_len: int,
                suffix_start: int | None = None):
        return self.forward(input_ids, attention_mask), None


@loads_model
def load_hf_mlm(path: str | Path, device: str = "auto", dtype: str | None = None) -> HFMaskedLMDenoiser:
    """A local masked-LM folder (config.json, weights, tokenizer) as a Denoiser."""
    from transformers import AutoModelForMaskedLM

    path = Path(path)
    raw = read_config(path)
    dev, default_dtype = resolve_device(device)
    dtype = torch_dtype(dtype, default_dtype)
    try:
        model = AutoModelForMaskedLM.from_pretrained(str(path), local_files_only=True, trust_remote_code=False,
                                                     dtype=dtype)
    except Exception as e:
        raise ModelLoadError(f"cannot load a masked LM from {path}: {e}") from e
    model = model.to(dev)
    tokenizer = load_tokenizer(path)
    if tokenizer.mask_token_id is None:
        raise ModelLoadError(f"the tokenizer in {path} has no mask token; a masked LM needs one")
    ids = special_ids(tokenizer, raw, extra_stops=tuple(generation_eos(path)))
    max_len = raw.get("max_position_embeddings")
    if raw.get("model_type") in ("roberta", "xlm-roberta", "camembert") and max_len:
        max_len -= 2  # RoBERTa positions start after the padding index
    log.info("loaded masked LM %s from %s on %s", raw.get("model_type"), path, dev)
    return HFMaskedLMDenoiser(model, tokenizer, max_length=max_len, **ids)
