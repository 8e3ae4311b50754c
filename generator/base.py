"""The Generator protocol and the registry that maps generator names to factories.

A generator turns a GenerationRequest into a GenerationResult (`generate`) or into a stream of
DenoiseStates followed by nothing (`stream`; autoregressive generators stream growing prefixes).
Constructors are cheap; heavy models load in `warm_up()` (called lazily by the first generate).
Third parties add generators through the entry-point group "sculptrag.generators".
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from pipeline.errors import ConfigError

from .types import DenoiseState, GenerationRequest, GenerationResult


@runtime_checkable
class Generator(Protocol):
    name: str

    def warm_up(self) -> None: ...

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        """Yield a DenoiseState per step, then the final GenerationResult last."""
        ...


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
