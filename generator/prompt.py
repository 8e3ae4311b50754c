"""The RAG prompt as text: instructions, numbered passages with title and page, and the question.

Model adapters wrap this text in their own chat template; the text itself is the same for every model,
so a diffusion generator and an autoregressive one are asked exactly the same thing.
"""

from __future__ import annotations

from typing import Sequence

from pipeline.text import REFUSAL  # the refusal sentence is a text rule of the core; imported from here too
from pipeline.types import Passage

__all__ = ["INSTRUCTIONS", "REFUSAL", "format_passage", "render_prompt"]

INSTRUCTIONS = (
    "Answer the question using only the numbered passages. After each sentence, cite the passages that "
    "support it with their numbers in square brackets, like [1] or [2][3]. If the passages do not contain "
    "the answer, say that the passages do not contain the answer."
)


def format_passage(p: Passage) -> str:
    head = f"[{p.number}]"
    if p.title:
        head += f" {p.title}"
    if p.page is not None:
        head += f" (page {p.page})"
    return f"{head}\n{p.text.strip()}"


def render_prompt(question: str, passages: Sequence[Passage]) -> str:
    """The user message: instructions, then the passages, then the question."""
    body = "\n\n".join(format_passage(p) for p in passages) if passages else "(no passages)"
    return f"{INSTRUCTIONS}\n\nPassages:\n{body}\n\nQuestion: {question.strip()}"
