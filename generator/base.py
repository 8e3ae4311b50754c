"""The Generator protocol and the registry that maps generator names to factories.

A generator turns a GenerationRequest into a GenerationResult (`generate`) or into a stream of
DenoiseStates followed by nothing (`stream`; autoregressive generators stream growing prefixes).
A `BatchGenerator` also denoises several requests together (`generate_batch`: one model call per step for
all of them), each answer the same as alone; `generate_many` uses it where a generator has it and otherwise
runs the requests one by one.
Constructors are cheap; heavy models load in `warm_up()` (called lazily by the first generate).
Third parties add generators through the entry-point group "sculptrag.generators".
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

from pipeline.errors import ConfigError, GenerationError

from pipeline.types import DenoiseState, GenerationRequest, GenerationResult


@runtime_checkable
class Generator(Protocol):
    name: str

    def warm_up(self) -> None: ...

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        """Yield a DenoiseState per step, then the final GenerationResult last."""
        ...


StateCallback = Callable[[int, DenoiseState], None]  # (index of the request in the batch, its new state)


@runtime_checkable
class BatchGenerator(Generator, Protocol):
    """A generator that can denoise several requests in one forward pass per step (the diffusion ones).

    Contract: for deterministic settings, result i equals `generate(requests[i])` (text, citations, steps);
    a request that finishes early is not held back by, nor changes, the others; `on_state(i, state)` gets
    request i's DenoiseStates as `stream(requests[i])` would yield them."""

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_state: StateCallback | None = None) -> list[GenerationResult]: ...


def generate_many(gen: Generator, requests: Sequence[GenerationRequest],
                  on_state: StateCallback | None = None) -> list[GenerationResult]:
    """Results for `requests`, in order: one `generate_batch` call when `gen` is a BatchGenerator, else one
    request after another (their states, if `on_state` is given, from `stream`)."""
    requests = list(requests)
    if isinstance(gen, BatchGenerator) and len(requests) > 1:
        return gen.generate_batch(requests, on_state)
    if on_state is None:
        return [gen.generate(r) for r in requests]
    results = []
    for i, request in enumerate(requests):
        result = None
        for item in gen.stream(request):
            if isinstance(item, GenerationResult):
                result = item
            else:
                on_state(i, item)
        if result is None:
            raise GenerationError(f"generator {gen.name!r} ended its stream without a result")
        results.append(result)
    return results


def last_of(stream: Iterator[DenoiseState | GenerationResult]) -> GenerationResult:
    """Run a generator's `stream` to the end and return its final GenerationResult."""
    result = None
    for item in stream:
        result = item
    return result


def sampling_config(current, options: dict, fixed: frozenset[str] | set[str]):
    """The config a generator's `with_options` variant uses: `options["config"]` or the current one, with any
    other options as its fields; options in `fixed` (those that choose the weights) are refused."""
    bad = set(fixed) & set(options)
    if bad:
        raise ConfigError(f"{', '.join(sorted(bad))} cannot change on a loaded generator; build a new one")
    options = dict(options)
    config = options.pop("config", None) or current
    return type(config)(**{**config.model_dump(), **options}) if options else config


GeneratorFactory = Callable[..., Generator]
_REGISTRY: dict[str, GeneratorFactory] = {}


def register_generator(name: str, factory: GeneratorFactory) -> None:
    """Make `factory(**options)` available as `get_generator(name, **options)`."""
    _REGISTRY[name] = factory


def available_generators() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def get_generator(name: str, settings: Any = None, **options) -> Generator:
    """Build the generator registered under `name` (options go to its factory).

    `settings` (the caller's pipeline Settings) goes only to a factory that declares a `settings` parameter:
    a plugin that reads its own settings group (the "openai" generator reads `settings.openai`)."""
    _load_entry_points()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown generator {name!r}; available: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None
    if settings is not None and _takes_settings(factory):
        options["settings"] = settings
    return factory(**options)


def _takes_settings(factory: GeneratorFactory) -> bool:
    try:
        return "settings" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to ask
        return False


def _load_entry_points() -> None:
    for ep in entry_points(group="sculptrag.generators"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()
