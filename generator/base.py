"""The Generator protocol, what a generator plugin declares, and the registry of generators.

A generator turns a GenerationRequest into a GenerationResult (`generate`) or into a stream of
DenoiseStates followed by nothing (`stream`; autoregressive generators stream growing prefixes).
A `BatchGenerator` also denoises several requests together (`generate_batch`: one model call per step for
all of them), each answer the same as alone; `generate_many` uses it where a generator has it and otherwise
runs the requests one by one. A generator that implements `Repairs` fixes failing sentences itself
(validation's repair); one that implements `WithOptions` makes a variant with other sampling settings that
shares its loaded model.
Constructors are cheap; heavy models load in `warm_up()` (called lazily by the first generate).

Plugins. Third parties add generators through the entry-point group "sculptrag.generators" (`GENERATORS`,
a pipeline.plugins.Registry). The entry point names a factory; a factory decorated with `generator_plugin`
is a `GeneratorSpec` that declares what the generator takes and can do: its options as a pydantic model
(defaults and descriptions; the options that choose the weights or the server marked
`json_schema_extra={"load": True}`), whether it needs a local model folder, whether it is a diffusion model,
whether it reads the pipeline's Settings. The pipeline, the service and the app ask the spec
(`generator_spec(name)`), never a table of names. A plain factory still works: it declares nothing, so it
gets every option at build time, none per request, and no form in the app.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from pydantic import BaseModel

from pipeline.errors import ConfigError, GenerationError
from pipeline.plugins import Registry
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


@runtime_checkable
class Repairs(Protocol):
    """A generator that repairs an answer itself: the diffusion ones remask the failing spans and denoise them
    again, the remote one re-asks naming them. It may say how in a `repair_how` attribute (the report's text)."""

    def repair(self, request: GenerationRequest, answer: str,
               spans: Sequence[tuple[int, int]]) -> GenerationResult: ...


@runtime_checkable
class WithOptions(Protocol):
    """A generator that makes a variant with other sampling options sharing its loaded model (and its lock)."""

    def with_options(self, **options: Any) -> Generator: ...


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


def fold_config(options: dict[str, Any], config_cls: type[BaseModel], label: str) -> dict[str, Any]:
    """A factory's options with the fields of `config_cls` among them laid over `options["config"]` (or the
    defaults) as one `config`; a bad value is a ConfigError naming the options."""
    fields = {k: options[k] for k in options if k in config_cls.model_fields}
    if not fields:
        return options
    rest = {k: v for k, v in options.items() if k not in fields}
    base = rest.get("config") or config_cls()
    try:
        rest["config"] = type(base)(**{**base.model_dump(), **fields})
    except ValueError as e:  # pydantic's ValidationError
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in getattr(e, "errors", list)())
        raise ConfigError(f"bad {label} option: {problems or e}; the options are "
                          f"{', '.join(config_cls.model_fields)}") from None
    return rest


GeneratorFactory = Callable[..., Generator]

# options every built-in factory takes besides its options model: a whole sampling config, a display name
COMMON_OPTIONS = frozenset({"config", "name"})


class GeneratorSpec:
    """A generator factory with what it declares (made by `generator_plugin`; calling it calls the factory).

    - `options`: a pydantic model of the generator's options, with defaults and descriptions (the app's
      Settings page renders its form from it). Fields marked `json_schema_extra={"load": True}`, and those
      named in `load_options`, choose the weights or the server: they are given when the generator is built
      and cannot be changed per request; the others are sampling options. None: nothing declared.
    - `needs_model_path`: runs only with a local model folder (`model_path`); the others ship with sculptrag
      or ask a server.
    - `diffusion`: a masked-diffusion generator (its states are denoising canvases; repair remasks).
    - `takes_settings`: the factory reads its own group of the pipeline's Settings (`settings=`).
    - `defaults`: settings -> the options model's instance the generator starts from (default: the model's
      defaults), so a form shows what the server is set to.
    """

    def __init__(self, factory: GeneratorFactory, *, options: type[BaseModel] | None = None,
                 load_options: Sequence[str] = (), needs_model_path: bool = False, diffusion: bool = False,
                 takes_settings: bool = False, defaults: Callable[[Any], BaseModel] | None = None,
                 description: str | None = None) -> None:
        self.factory = factory
        self.options = options
        self.needs_model_path = needs_model_path
        self.diffusion = diffusion
        self.takes_settings = takes_settings
        self._defaults = defaults
        self.description = description if description is not None else (factory.__doc__ or "").strip()
        self.__doc__ = factory.__doc__
        self.__name__ = getattr(factory, "__name__", type(factory).__name__)
        marked = {name for name, field in (options.model_fields.items() if options else ())
                  if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("load")}
        self.load_options = frozenset(marked | set(load_options))
        if options is not None and not self.load_options <= set(options.model_fields):
            raise ConfigError(f"load options {sorted(self.load_options - set(options.model_fields))} are not fields "
                              f"of {options.__name__}")

    def __call__(self, *args: Any, **options: Any) -> Generator:
        return self.factory(*args, **options)

    def __repr__(self) -> str:
        return f"GeneratorSpec({self.__name__}, options={getattr(self.options, '__name__', None)})"

    @property
    def declared(self) -> bool:
        """Does the plugin declare its options (an options model)?"""
        return self.options is not None

    @property
    def option_names(self) -> frozenset[str] | None:
        """Every option the factory takes (None: not declared, anything goes to the factory)."""
        return None if self.options is None else frozenset(self.options.model_fields) | COMMON_OPTIONS

    @property
    def sampling_options(self) -> frozenset[str]:
        """The options that may change per request (a loaded generator's `with_options` takes them)."""
        return frozenset() if self.options is None else frozenset(self.option_names - self.load_options)

    def check(self, options: Mapping[str, Any], name: str = "this generator") -> None:
        """A ConfigError naming the allowed options when `options` has one the plugin does not declare."""
        allowed = self.option_names
        unknown = sorted(set(options) - allowed) if allowed is not None else []
        if unknown:
            raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for generator "
                              f"{name!r}; its options are {', '.join(sorted(allowed))}")

    def split(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(load options, sampling options). Undeclared plugins: every option is a load option (the factory
        gets them all when it builds the generator)."""
        if self.options is None:
            return dict(options), {}
        return ({k: v for k, v in options.items() if k in self.load_options},
                {k: v for k, v in options.items() if k not in self.load_options})

    def defaults(self, settings: Any = None) -> BaseModel | None:
        """The options the generator starts from: `defaults(settings)` when declared, else the model's."""
        if self.options is None:
            return None
        if self._defaults is not None and settings is not None:
            return self._defaults(settings)
        return self.options()

    def build(self, settings: Any = None, **options: Any) -> Generator:
        """The factory called with `options` (and `settings` when the plugin takes them)."""
        if settings is not None and self.takes_settings:
            options["settings"] = settings
        return self.factory(**options)


def generator_plugin(*, options: type[BaseModel] | None = None, load_options: Sequence[str] = (),
                     needs_model_path: bool = False, diffusion: bool = False, takes_settings: bool = False,
                     defaults: Callable[[Any], BaseModel] | None = None) -> Callable[[GeneratorFactory], GeneratorSpec]:
    """Decorate a generator factory with what it declares (see GeneratorSpec); name the decorated factory in
    the "sculptrag.generators" entry points."""
    def wrap(factory: GeneratorFactory) -> GeneratorSpec:
        return GeneratorSpec(factory, options=options, load_options=load_options, needs_model_path=needs_model_path,
                             diffusion=diffusion, takes_settings=takes_settings, defaults=defaults)
    return wrap


GENERATORS: Registry[GeneratorFactory | GeneratorSpec] = Registry("sculptrag.generators", "generator")


def register_generator(name: str, factory: GeneratorFactory | GeneratorSpec) -> None:
    """Make `factory(**options)` available as `get_generator(name, **options)` (a GeneratorSpec declares its
    capabilities; a plain factory declares none)."""
    GENERATORS.register(name, factory)


def available_generators() -> list[str]:
    return GENERATORS.names()


def generator_spec(name: str) -> GeneratorSpec:
    """What the generator registered as `name` declares (a ConfigError listing the available ones if none)."""
    factory = GENERATORS.get(name)
    return factory if isinstance(factory, GeneratorSpec) else GeneratorSpec(factory)


def get_generator(name: str, settings: Any = None, **options) -> Generator:
    """Build the generator registered under `name` (options go to its factory; an option it does not declare
    is a ConfigError naming the ones it does).

    `settings` (the caller's pipeline Settings) goes only to a plugin that declares `takes_settings`: one
    that reads its own settings group (the "openai" generator reads `settings.openai`)."""
    spec = generator_spec(name)
    spec.check(options, name)
    return spec.build(settings, **options)
