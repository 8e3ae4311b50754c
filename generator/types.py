"""Types the generator shares with the rest of sculptrag: request, config, result, trace, denoise state.

The generator knows passages as text and token ids, never the store: a `Passage` here is only what the
prompt needs (number, title, page, text). All models are pydantic and JSON-serializable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Passage(BaseModel):
    """A numbered passage given to the generator; `number` is the marker the answer cites as [number].

    `text` and `title` are what the model is shown and may quote, so they never carry a citation marker:
    a literal "[2]" in a document becomes "(2)" here (see `neutralize_markers`), and a title is one line.
    """

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    text: str
    title: str = ""
    page: int | None = None
    chunk_id: str | None = None

    @field_validator("text")
    @classmethod
    def _no_markers_in_text(cls, v: str) -> str:
        return neutralize_markers(v)

    @field_validator("title")
    @classmethod
    def _one_line_title(cls, v: str) -> str:
        return neutralize_markers(" ".join(v.split()))


def neutralize_markers(text: str) -> str:
    """Citation markers inside passage text rewritten so they are not markers: "[2]" -> "(2)", "[1, 3]" ->
    "(1, 3)". Same length, so character offsets into the text stay valid.

    Passages are data: a "[2]" in a document must never become a citation of the prompt's passage 2, whether
    a model copies it or a quoting generator (extractive, sculpt) carries it through verbatim.
    """
    from .citations import MARKER_RE  # here, not at the top: citations imports this module

    return MARKER_RE.sub(lambda m: f"({m.group(1)})", text)


class DiffusionConfig(BaseModel):
    """Sampling settings for a masked-diffusion generator (frozen, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gen_length: int = Field(128, ge=1, le=4096)
    block_length: int = Field(32, ge=1)
    steps: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="with temperature > 0, sample only from the "
                                "smallest set of tokens whose probability reaches top_p (nucleus sampling)")
    confidence: Literal["probability", "margin", "entropy", "random"] = "probability"
    threshold: float | None = Field(None, gt=0.0, le=1.0)
    cfg_scale: float = Field(0.0, ge=0.0)
    use_cache: bool = True
    dual_cache: bool = Field(False, description="with use_cache, a block's steps run only the block, reusing the "
                             "keys/values of the prefix and of the suffix (Fast-dLLM dual cache)")
    remask_threshold: float | None = Field(None, gt=0.0, lt=1.0)
    edit_threshold: float | None = Field(None, gt=0.0, le=1.0)
    require_citations: bool = False
    repetition_penalty: float = Field(1.0, ge=1.0)
    logits_eos_inf: bool = Field(False, description="never propose EOS (LLaDA generate.py's option)")
    confidence_eos_eot_inf: bool = Field(False, description="rank positions by a confidence that leaves EOS and "
                                         "end-of-turn out of the softmax, so a proposed stop commits last "
                                         "(LLaDA generate.py's option)")
    reference_compat: Literal["llada", "dream"] | None = Field(
        None, description="reproduce a published sampler step for step, quirks included: 'llada' (LLaDA "
        "generate.py with use_cache=False; Fast-dLLM's LLaDA samplers with a threshold or the cache), 'dream' "
        "(Dream's diffusion_generate with use_cache=False; Fast-dLLM's Dream samplers with a threshold or the "
        "cache). See docs/generators.md")
    seed: int | None = 0

    @field_validator("block_length")
    @classmethod
    def _block_divides(cls, v: int, info) -> int:
        gen = info.data.get("gen_length")
        if gen is not None and gen % v != 0:
            raise ValueError(f"gen_length ({gen}) must be a multiple of block_length ({v})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DiffusionConfig":
        if self.dual_cache and not self.use_cache:
            raise ValueError("dual_cache needs use_cache=True")
        if self.reference_compat is not None:
            ours = {"remask_threshold": self.remask_threshold is not None, "edit_threshold":
                    self.edit_threshold is not None, "repetition_penalty": self.repetition_penalty > 1,
                    "require_citations": self.require_citations}
            on = [k for k, v in ours.items() if v]
            if on:
                raise ValueError(f"reference_compat reproduces the published samplers, which have no {', '.join(on)}; "
                                 "unset it or drop reference_compat")
        return self


class AutoregressiveConfig(BaseModel):
    """Sampling settings for an autoregressive generator (frozen, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, ge=1.0)
    seed: int | None = 0


class GenerationRequest(BaseModel):
    """A question, the numbered passages, and optionally a config overriding the generator's default."""

    model_config = ConfigDict(frozen=True)

    question: str = Field(min_length=1)
    passages: tuple[Passage, ...] = ()
    config: DiffusionConfig | AutoregressiveConfig | None = None

    @field_validator("passages")
    @classmethod
    def _numbers_unique(cls, v: tuple[Passage, ...]) -> tuple[Passage, ...]:
        numbers = [p.number for p in v]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"passage numbers must be unique, got {numbers}")
        return v


class Citation(BaseModel):
    """A marker in the final answer and the passage it names (numbers as given in the request)."""

    marker: int = Field(ge=1, description="the number shown in the final answer, in order of first use")
    passage_number: int = Field(ge=1, description="the passage's number in the request")
    chunk_id: str | None = None


class GenerationTrace(BaseModel):
    """How an answer was made: steps, forward passes, tokens committed per step, time."""

    generator: str
    steps: int = 0
    nfe: int = 0
    tokens_per_step: list[int] = Field(default_factory=list)
    prompt_tokens: int = 0
    answer_tokens: int = 0
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0
    remasked: int = 0
    edited: int = 0


class GenerationResult(BaseModel):
    """The answer text (markers renumbered in order of first use), its citations, and the trace."""

    text: str
    citations: list[Citation] = Field(default_factory=list)
    trace: GenerationTrace
    raw_text: str = ""


MASK_GLYPH = "░"  # how a still-masked answer position is shown in a DenoiseState's text


class DenoiseState(BaseModel):
    """The canvas after one denoising step: text with masks shown (MASK_GLYPH), which answer positions changed."""

    step: int
    text: str
    masked: int
    changed: list[int] = Field(default_factory=list)
    done: bool = False
