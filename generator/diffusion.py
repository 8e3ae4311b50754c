"""DiffusionGenerator: the Generator protocol over a masked-diffusion Denoiser and the sampler.

It turns a request into prompt ids (the tokenizer's chat template, if any, around `render_prompt`), runs
`denoise_steps` with the citation constraints of the request's passages, and turns the canvas back into
text: streamed states show masks as "░"; the final text goes through `finalize_citations`. `generate_batch`
denoises several requests as one left-padded batch (each row with its own citation constraints), each answer
as it would be alone. `repair` remasks
character spans of a finished answer and re-denoises only them (validation uses it to fix sentences).
Registered as the generators "llada", "dream" and "hf-mlm".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from pydantic import Field

from pipeline.errors import ConfigError, GenerationError, ModelLoadError

from .base import fold_config, generator_plugin, last_of, sampling_config
from .citations import finalize_citations
from .constraints import CitationConstraints, RowConstraints, token_strings
from .denoisers import Denoiser, load_denoiser
from .prompt import render_prompt
from .sampler import SamplerOutput, denoise_steps, infill
from pipeline.types import MASK_GLYPH, DenoiseState, DiffusionConfig, GenerationRequest, GenerationResult, GenerationTrace

log = logging.getLogger(__name__)



class DiffusionGenerator:
    """Masked-diffusion generation from a local checkpoint (or a ready Denoiser, for tests)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        adapter: str = "llada",
        config: DiffusionConfig | None = None,
        device: str = "auto",
        dtype: str | None = None,
        denoiser: Denoiser | None = None,
        name: str | None = None,
    ) -> None:
        self.model_path = model_path
        self.adapter = adapter
        self.config = config or DiffusionConfig()
        self.device = device
        self.dtype = dtype  # 'float32' | 'bfloat16' | 'float16'; None: bf16 on CUDA, float32 on CPU
        self.name = name or adapter
        self._denoiser = denoiser
        self._strings: tuple[list[str], set[int]] | None = None
        self._constraints: dict[tuple, CitationConstraints] = {}

    # -- lifecycle ----------------------------------------------------------------------------------------
    def with_options(self, **options) -> "DiffusionGenerator":
        """A generator with another sampling config (`config=DiffusionConfig(...)` or its fields as keywords)
        sharing this one's loaded denoiser; model_path, adapter, device and dtype cannot change this way."""
        config = sampling_config(self.config, options, {"model_path", "adapter", "device", "dtype", "denoiser"})
        other = DiffusionGenerator(self.model_path, adapter=self.adapter, config=config, device=self.device,
                                   dtype=self.dtype, denoiser=self._denoiser, name=self.name)
        other._strings = self._strings
        return other

    def warm_up(self) -> None:
        """Load the denoiser (once)."""
        if self._denoiser is not None:
            return
        if self.model_path is None:
            raise ConfigError(f"generator {self.name!r} needs model_path: a local {self.adapter} checkpoint folder")
        denoiser = load_denoiser(self.adapter, self.model_path, self.device, self.dtype)
        if denoiser.tokenizer is None:
            raise ModelLoadError(f"{self.model_path} has no tokenizer files (tokenizer.json, tokenizer_config.json, "
                              "vocab.json...); a text generator needs the checkpoint's tokenizer")
        self._denoiser = denoiser
        # token strings for the citation constraints, once
        self._strings = token_strings(denoiser.tokenizer, denoiser.vocab_size, denoiser.stop_ids)

    @property
    def denoiser(self) -> Denoiser:
        self.warm_up()
        return self._denoiser

    # -- the Generator protocol ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        return last_of(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        """A DenoiseState per denoising step (done=True once nothing is masked), then the GenerationResult."""
        start = time.perf_counter()
        cfg = self._config(request)
        prompt = torch.tensor([self.encode_prompt(request)], dtype=torch.long)
        events = denoise_steps(self.denoiser, prompt, None, cfg, constraints=self._constraints_for(request, cfg))
        for event in events:
            if event.done:
                yield self._result(event.output, request, prompt.shape[1], start, cfg)
                return
            yield DenoiseState(step=event.step, text=self.render_canvas(event.canvas[0]), masked=event.masked,
                               changed=event.changed[0].nonzero().flatten().tolist(), done=event.masked == 0)

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_state: Callable[[int, DenoiseState], None] | None = None) -> list[GenerationResult]:
        """Results for `requests`, denoised together: one batch (one model call per step) per distinct
        sampling config, prompts left-padded. Each result is what `generate` gives for that request alone
        (see sampler.denoise_steps); `on_state(i, state)` gets request i's states as `stream` yields them.
        Configs with `reference_compat` run one at a time (the published samplers batch their own way), and
        a denoiser without `exact_left_padding` is batched only over prompts of one length."""
        start = time.perf_counter()
        prompts = [self.encode_prompt(r) for r in requests]
        pads = getattr(self.denoiser, "exact_left_padding", False)
        results: list[GenerationResult | None] = [None] * len(requests)
        batches: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            cfg = self._config(request)
            key = (cfg, None if pads else len(prompts[i]), i if cfg.reference_compat is not None else None)
            batches.setdefault(key, []).append(i)
        for (cfg, _, _), run in batches.items():
            relay = None if on_state is None else (lambda b, state, run=run: on_state(run[b], state))
            out = self._denoise_batch([requests[i] for i in run], [prompts[i] for i in run], cfg, start, relay)
            for i, result in zip(run, out):
                results[i] = result
        return results

    def _denoise_batch(self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]],
                       cfg: DiffusionConfig, start: float,
                       on_state: Callable[[int, DenoiseState], None] | None) -> list[GenerationResult]:
        """One left-padded batch through the sampler -> each request's result (and states, to `on_state`)."""
        P = max(len(p) for p in prompts)
        pad = self.denoiser.pad_id
        ids = torch.tensor([[pad] * (P - len(p)) + p for p in prompts], dtype=torch.long)  # (B, P) left-padded
        attn = None  # no padding: exactly the call a lone request makes
        if any(len(p) < P for p in prompts):
            attn = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
        rules = [self._constraints_for(r, cfg) for r in requests]
        constraints = None if rules[0] is None else RowConstraints(rules)
        steps = [0] * len(requests)
        for event in denoise_steps(self.denoiser, ids, attn, cfg, constraints=constraints):
            if event.done:
                out = event.output
                return [self._result(out.row(b), r, len(prompts[b]), start, cfg) for b, r in enumerate(requests)]
            if on_state is None:
                continue
            active = event.active if event.active is not None else torch.ones(len(requests), dtype=torch.bool)
            for b in active.nonzero().flatten().tolist():
                steps[b] += 1
                masked = int((event.canvas[b] == self.denoiser.mask_id).sum())
                on_state(b, DenoiseState(step=steps[b], text=self.render_canvas(event.canvas[b]), masked=masked,
                                         changed=event.changed[b].nonzero().flatten().tolist(), done=masked == 0))
        raise GenerationError("the sampler ended without a final step; this is a bug, please report it")

    # -- repair -------------------------------------------------------------------------------------------
    def repair(
        self,
        request: GenerationRequest,
        answer: str,
        spans: Sequence[tuple[int, int]],
        lengths: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Re-denoise the character spans [start, end) of `answer`, keeping every other token fixed.

        `answer` is a GenerationResult.raw_text (markers numbered as the request's passages, not
        renumbered). Each span is remasked as the tokens it overlaps, or as `lengths[i]` masks when given
        (so a repaired sentence may be longer or shorter). Returns a fresh GenerationResult."""
        start = time.perf_counter()
        tok = self.denoiser.tokenizer
        for a, b in spans:
            if not 0 <= a < b <= len(answer):
                raise ConfigError(f"span ({a}, {b}) is not inside the answer (length {len(answer)})")
        enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        token_spans = [_token_span(offsets, a, b) for a, b in spans]
        cfg = self._config(request)
        prompt = torch.tensor([self.encode_prompt(request)], dtype=torch.long)
        out = infill(self.denoiser, prompt, torch.tensor(ids, dtype=torch.long), token_spans, cfg,
                     lengths=lengths, constraints=self._constraints_for(request, cfg))
        return self._result(out, request, prompt.shape[1], start, cfg)

    # -- text <-> ids -------------------------------------------------------------------------------------
    def encode_prompt(self, request: GenerationRequest) -> list[int]:
        """Prompt ids: the chat template (if the tokenizer has one) around render_prompt's text."""
        tok = self.denoiser.tokenizer
        text = render_prompt(request.question, request.passages)
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                           tokenize=False)
            return list(tok.encode(text, add_special_tokens=False))
        return list(tok.encode(text, add_special_tokens=True))

    def answer_ids(self, tokens: torch.Tensor) -> list[int]:
        """(G,) canvas -> the answer's ids, up to the first stop token."""
        ids = tokens.tolist()
        stops = set(self.denoiser.stop_ids)
        end = next((i for i, t in enumerate(ids) if t in stops), len(ids))
        return ids[:end]

    def render_canvas(self, tokens: torch.Tensor) -> str:
        """(G,) canvas -> text up to the first stop token, each masked token shown as MASK_GLYPH."""
        den = self.denoiser
        out, run = [], []
        for t in self.answer_ids(tokens):
            if t == den.mask_id:
                if run:
                    out.append(den.tokenizer.decode(run, skip_special_tokens=True))
                    run = []
                out.append(MASK_GLYPH)
            else:
                run.append(t)
        if run:
            out.append(den.tokenizer.decode(run, skip_special_tokens=True))
        return "".join(out)

    # -- internals ----------------------------------------------------------------------------------------
    def _config(self, request: GenerationRequest) -> DiffusionConfig:
        cfg = request.config or self.config
        if not isinstance(cfg, DiffusionConfig):
            raise ConfigError(f"{self.name} is a diffusion generator; got a {type(cfg).__name__}, "
                              "pass a DiffusionConfig (or none)")
        return cfg

    def _constraints_for(self, request: GenerationRequest, cfg: DiffusionConfig) -> CitationConstraints | None:
        den = self.denoiser
        if den.tokenizer is None or cfg.reference_compat is not None:  # the published samplers have none
            return None
        key = (tuple(sorted(p.number for p in request.passages)), cfg.require_citations)
        if key not in self._constraints:
            if self._strings is None:
                self._strings = token_strings(den.tokenizer, den.vocab_size, den.stop_ids)
            strings, banned = self._strings
            if len(self._constraints) >= 16:
                self._constraints.clear()
            self._constraints[key] = CitationConstraints(strings, key[0], require_citations=cfg.require_citations,
                                                         stop_ids=den.stop_ids, banned_ids=banned)
        return self._constraints[key]

    def _result(self, out: SamplerOutput, request: GenerationRequest, prompt_len: int, start: float,
                cfg: DiffusionConfig):
        ids = self.answer_ids(out.tokens[0])
        if self.denoiser.mask_id in ids and cfg.reference_compat is None:  # the references may commit [MASK]
            raise GenerationError("the sampler left masked tokens in the answer; this is a bug, please report it")
        raw = self.denoiser.tokenizer.decode(ids, skip_special_tokens=True).strip()
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        trace = GenerationTrace(generator=self.name, steps=out.steps, nfe=out.nfe,
                                tokens_per_step=out.tokens_per_step, prompt_tokens=prompt_len,
                                answer_tokens=len(ids), wall_time_s=wall,
                                tokens_per_s=len(ids) / wall if wall > 0 else 0.0,
                                remasked=out.remasked, edited=out.edited)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)


def _token_span(offsets, a: int, b: int) -> tuple[int, int]:
    """Character span [a, b) -> token span [i, j) of the tokens that overlap it."""
    idx = [i for i, (s, e) in enumerate(offsets) if s < b and e > a]
    if not idx:
        raise ConfigError(f"span ({a}, {b}) covers no token of the answer")
    return idx[0], idx[-1] + 1


class DiffusionOptions(DiffusionConfig):
    """The options of "llada", "dream" and "hf-mlm": DiffusionConfig's sampling fields and what to load."""

    model_path: str | None = Field(None, description="a local checkpoint folder (config.json, safetensors, tokenizer)",
                                   json_schema_extra={"load": True})
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs (auto: CUDA when there "
                                                   "is one)", json_schema_extra={"load": True})
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="weights dtype (default: bfloat16 on CUDA, float32 on CPU)", json_schema_extra={"load": True})
    denoiser: Any = Field(None, description="a ready Denoiser instead of model_path (tests)",
                          json_schema_extra={"load": True})


def _build(adapter: str, options: dict) -> DiffusionGenerator:
    return DiffusionGenerator(adapter=adapter, **fold_config(options, DiffusionConfig, adapter))


@generator_plugin(options=DiffusionOptions, needs_model_path=True, diffusion=True)
def build_llada(**options) -> DiffusionGenerator:
    """Factory for the "llada" entry point: a LLaDA checkpoint from a local path."""
    return _build("llada", options)


@generator_plugin(options=DiffusionOptions, needs_model_path=True, diffusion=True)
def build_dream(**options) -> DiffusionGenerator:
    """Factory for the "dream" entry point: a Dream checkpoint from a local path."""
    return _build("dream", options)


@generator_plugin(options=DiffusionOptions, needs_model_path=True, diffusion=True)
def build_hf_mlm(**options) -> DiffusionGenerator:
    """Factory for the "hf-mlm" entry point: any Hugging Face masked LM from a local path."""
    return _build("hf-mlm", options)
