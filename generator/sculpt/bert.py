"""MiniLM's BERT encoder in plain torch (the tokenizer: tokenizer.py): no transformers.

The bundled answer model needs six BERT layers and a tokenizer. transformers' `BertModel` and
`AutoTokenizer` give both, but `import transformers` costs ~5 s of a cold `sculptrag ask` (it imports
torch.distributed, torch._dynamo and more at import time; docs/benchmarks.md, "Cold start"). This module
is the same computation (post-LayerNorm BERT: embeddings + absolute positions + token type 0, layers of
self-attention through `scaled_dot_product_attention` and a GELU feed-forward, dropout where BERT has it),
with the same parameter names, so it loads the package's `model.safetensors` and our checkpoints as they
are; `tests/generator/test_sculpt_bert.py` holds it to transformers' outputs.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tokenizer import WordPieceTokenizer  # noqa: F401 - where it was


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0  # (the trainer always ran with 0: it keeps the fused SDPA kernel)

    @classmethod
    def from_file(cls, path: Path) -> "BertConfig":
        raw = json.loads(Path(path).read_text())
        if raw.get("model_type", "bert") != "bert" or raw.get("hidden_act", "gelu") != "gelu" \
                or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: not a BERT encoder this module computes (model_type {raw.get('model_type')!r}, "
                             f"hidden_act {raw.get('hidden_act')!r}, positions {raw.get('position_embedding_type')!r})")
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in fields and k != "attention_probs_dropout_prob"})


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout_p = c.attention_probs_dropout_prob


class _Output(nn.Module):
    def __init__(self, inner: int, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(inner, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Output(c.hidden_size, c)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        a = self.self
        b, t, d = x.shape

        def heads(lin: nn.Linear) -> torch.Tensor:
            return lin(x).view(b, t, a.heads, d // a.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(heads(a.query), heads(a.key), heads(a.value), attn_mask=mask,
                                             dropout_p=a.dropout_p if self.training else 0.0)
        return self.output(ctx.transpose(1, 2).reshape(b, t, d), x)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Output(c.intermediate_size, c)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Layers(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor


@contextmanager
def uninitialised():
    """Modules built inside get their weights allocated but not randomly initialised (torch.nn.init's fillers do
    nothing meanwhile), as transformers does for a model whose every weight is then loaded; with
    `load_state_dict(..., assign=True)` the loaded tensors then replace the empty ones, uncopied (with the
    pristine encoder's smaller copy, the bundled checkpoint's load fell from ~1.1 to ~0.2 s). The caller must
    load every weight (from_folder and load_checkpoint check that). Not `torch.device("meta")`: entering that
    mode imports torch.distributed, sympy and more (seconds). The fillers are switched off for the whole
    process while it runs: a module another thread builds meanwhile and does not load is left uninitialised.
    Its callers load under `pipeline.device.loads_model`, as every model loader of the product does."""
    names = ("uniform_", "normal_", "kaiming_uniform_", "xavier_uniform_", "trunc_normal_", "zeros_", "ones_")
    saved = {n: getattr(nn.init, n) for n in names}
    for n in names:
        setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


class BertEncoder(nn.Module):
    """`BertModel` without the pooler: `encoder(input_ids=..., attention_mask=...).last_hidden_state`."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Layers(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> EncoderOutput:
        x = self.embeddings(input_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): who may be attended to
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return EncoderOutput(x)

    @classmethod
    def from_folder(cls, folder: Path) -> "BertEncoder":
        """The encoder of a sentence-transformers / transformers BERT folder (config.json, model.safetensors),
        in fp32 whatever the file holds; the pooler's weights, if any, are not used."""
        from safetensors.torch import load_file

        folder = Path(folder)
        with uninitialised():  # the file replaces every weight
            model = cls(BertConfig.from_file(folder / "config.json"))
        state = {k.removeprefix("bert."): v.float() for k, v in load_file(str(folder / "model.safetensors")).items()
                 if not k.removeprefix("bert.").startswith(("pooler.", "cls."))}
        state.pop("embeddings.position_ids", None)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not match a BERT encoder (missing {missing[:4]}, unexpected {unexpected[:4]})")
        return model.float()
