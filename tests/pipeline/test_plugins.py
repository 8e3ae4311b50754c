"""Plugins declare their capabilities: the registry (pipeline.plugins), what each built-in generator declares
(generator.base.GeneratorSpec), and that the pipeline, the service and the app ask the plugin, never a table
of names; the support checker is chosen by name in the settings."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import SimpleNamespace
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from app.ui.services import FormField, Prefs, User, form_fields, ready_generators
from generator.base import (
    GENERATORS, GeneratorSpec, Repairs, generator_plugin, generator_spec, get_generator, register_generator,
)
from generator.denoisers import DENOISERS, load_denoiser
from pipeline import plugins
from pipeline.config import Settings, ValidationSettings
from pipeline.errors import ConfigError
from pipeline.plugins import Registry
from pipeline.rag import RagPipeline, default_validator, validate_and_repair
from pipeline.types import GenerationRequest, GenerationResult, GenerationTrace, ValidationReport
from validation.support import CHECKERS, NLIChecker, OverlapEmbeddingChecker, get_checker, register_checker

BUILT_IN = {"smollm2", "hf-causal", "llada", "dream", "hf-mlm", "extractive", "sculpt", "openai"}


# -- the registry ---------------------------------------------------------------------------------------------
def test_registry_registers_lists_and_names_what_it_has(monkeypatch):
    calls = []

    def fake_entry_points(group):
        calls.append(group)
        return [EntryPoint("from-ep", "pipeline.errors:ConfigError", group),
                EntryPoint("shadowed", "pipeline.errors:SculptragError", group),
                EntryPoint("broken", "no_such_module_here:thing", group)]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    reg = Registry("sculptrag.test", "widget")
    reg.register("in-code", len)
    reg.register("shadowed", max)
    reg.register("lazy", "pipeline.errors:GenerationError")
    assert reg.names() == ["broken", "from-ep", "in-code", "lazy", "shadowed"]
    assert reg.get("in-code") is len and reg.get("shadowed") is max  # code wins over an entry point
    assert reg.get("from-ep") is ConfigError and reg.get("lazy").__name__ == "GenerationError"
    assert "from-ep" in reg and "nothing" not in reg
    assert calls == ["sculptrag.test"]  # entry points are read once
    with pytest.raises(ConfigError, match=r"unknown widget 'nothing'; available: broken, from-ep, in-code"):
        reg.get("nothing")
    with pytest.raises(ConfigError, match=r"widget 'broken' .*no_such_module_here.* could not be loaded"):
        reg.get("broken")
    reg.unregister("shadowed")
    assert reg.get("shadowed").__name__ == "SculptragError"  # the entry point shows again


def test_the_installed_entry_points_name_the_built_ins():
    assert BUILT_IN <= set(GENERATORS.names())
    assert {"llada", "dream", "hf-mlm"} <= set(DENOISERS.names())
    assert {"overlap-embedding", "nli"} <= set(CHECKERS.names())
    with pytest.raises(ConfigError, match="unknown denoiser 'gpt'; available: dream, hf-mlm, llada"):
        load_denoiser("gpt", "/nowhere")


# -- what generators declare ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_each_built_in_generator_declares_a_valid_options_model(name):
    spec = generator_spec(name)
    assert isinstance(spec, GeneratorSpec) and spec.declared
    defaults = spec.options()  # the defaults construct
    assert spec.load_options <= set(spec.options.model_fields)
    assert spec.sampling_options and not spec.sampling_options & spec.load_options
    shown = form_fields(spec.options, skip=spec.load_options)
    assert shown and all(getattr(defaults, f.name) is not None or f.optional for f in shown)
    assert spec.needs_model_path == (name in {"llada", "dream", "hf-mlm", "hf-causal"})
    assert spec.diffusion == (name in {"llada", "dream", "hf-mlm", "sculpt"})
    assert spec.takes_settings == (name == "openai")
    assert ("model_path" in spec.load_options) == (name not in {"smollm2", "extractive", "openai"})


def test_repair_is_a_protocol_the_generator_implements():
    for name in ("sculpt", "llada", "openai"):
        assert isinstance(get_generator(name), Repairs), name
    for name in ("extractive", "smollm2"):
        assert not isinstance(get_generator(name), Repairs), name


def test_factories_take_the_options_they_declare():
    assert get_generator("extractive", max_sentences=1).config.max_sentences == 1  # refused (TypeError) before
    assert get_generator("smollm2", max_new_tokens=16).config.max_new_tokens == 16
    assert get_generator("llada", steps=8, gen_length=32, block_length=8).config.steps == 8
    with pytest.raises(ConfigError, match="unknown option max_stepz for generator 'sculpt'; its options are .*max_steps"):
        get_generator("sculpt", max_stepz=3)
    with pytest.raises(ConfigError, match="bad extractive option"):
        get_generator("extractive", max_sentences=0)


def test_settings_go_only_to_a_plugin_that_declares_it_takes_them():
    seen = {}

    def plain(settings=None, **options):  # a settings parameter is not a declaration
        seen["plain"] = settings
        return SimpleNamespace(name="plain")

    register_generator("t-plain", plain)
    register_generator("t-reads-settings", generator_plugin(takes_settings=True)(
        lambda settings=None, **o: seen.setdefault("declared", settings) and SimpleNamespace(name="declared")))
    try:
        s = Settings()
        get_generator("t-plain", settings=s)
        get_generator("t-reads-settings", settings=s)
        assert seen == {"plain": None, "declared": s}
    finally:
        GENERATORS.unregister("t-plain")
        GENERATORS.unregister("t-reads-settings")


# -- the pipeline asks the plugin ----------------------------------------------------------------------------
class ToyOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str = Field("small", description="which weights", json_schema_extra={"load": True})
    steps: int = Field(4, ge=1, le=64, description="steps")
    mode: Literal["a", "b"] = Field("a", description="a mode")


class ToyGenerator:
    builds: list[dict] = []

    def __init__(self, weights: str = "small", steps: int = 4, mode: str = "a", name: str = "toy") -> None:
        self.weights, self.steps, self.mode, self.name = weights, steps, mode, name
        self.warm = False

    def warm_up(self) -> None:
        self.warm = True

    def with_options(self, **options):
        other = ToyGenerator(self.weights, **{"steps": self.steps, "mode": self.mode, **options})
        other.warm = self.warm
        return other

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return GenerationResult(text="x", raw_text="x", trace=GenerationTrace(generator=self.name, steps=self.steps))

    def stream(self, request):
        yield self.generate(request)


@generator_plugin(options=ToyOptions)
def build_toy(**options) -> ToyGenerator:
    ToyGenerator.builds.append(dict(options))
    return ToyGenerator(**options)


@pytest.fixture
def toy():
    ToyGenerator.builds.clear()
    register_generator("toy", build_toy)
    register_generator("toy-plain", lambda **options: ToyGenerator(**options))  # declares nothing
    yield
    GENERATORS.unregister("toy")
    GENERATORS.unregister("toy-plain")


@pytest.fixture
def bare_rag(tmp_path) -> RagPipeline:
    return RagPipeline(Settings(store_dir=tmp_path / "store"), validator=lambda answer: ValidationReport.not_run())


def test_the_pipeline_splits_load_and_sampling_options_as_the_plugin_declares(toy, bare_rag):
    gen, lock = bare_rag.generator("toy", {"weights": "big", "steps": 9})
    assert ToyGenerator.builds == [{"weights": "big"}]  # built with its load options only...
    assert (gen.weights, gen.steps, gen.warm) == ("big", 9, True)  # ...the sampling ones make a variant
    base, base_lock = bare_rag.generator("toy", {"weights": "big"})
    assert base is not gen and base_lock is lock and base.steps == 4
    bare_rag.generator("toy", {"weights": "big", "mode": "b"})
    assert len(ToyGenerator.builds) == 1  # one load for every sampling variant
    with pytest.raises(ConfigError, match="unknown option stepz for generator 'toy'; its options are .*mode.*steps.*weights"):
        bare_rag.generator("toy", {"stepz": 2})
    # a plugin that declares nothing gets every option when it is built (as before)
    plain, _ = bare_rag.generator("toy-plain", {"steps": 3})
    assert plain.steps == 3 and plain.warm


def test_the_settings_set_each_generator_up_and_a_call_goes_over_them(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPTRAG_GENERATOR_OPTIONS", '{"toy": {"weights": "big", "steps": 7}}')
    settings = Settings(store_dir=tmp_path / "store")
    assert settings.generator_options == {"toy": {"weights": "big", "steps": 7}}  # from the environment (JSON)
    quiet = lambda answer: ValidationReport.not_run()  # noqa: E731
    rag = RagPipeline(settings, validator=quiet)
    gen, _ = rag.generator("toy")
    assert ToyGenerator.builds == [{"weights": "big"}] and (gen.weights, gen.steps) == ("big", 7)
    other, _ = rag.generator("toy", {"steps": 2})  # a request's sampling option goes over the settings' one
    assert (other.weights, other.steps) == ("big", 2) and len(ToyGenerator.builds) == 1
    # the caller's options go over the settings' per option, the others stay (the CLI's --model-path)
    rag = RagPipeline(settings, validator=quiet, generator_options={"toy": {"steps": 5}, "toy-plain": {"steps": 1}})
    assert rag.generator_options == {"toy": {"weights": "big", "steps": 5}, "toy-plain": {"steps": 1}}
    assert rag.generator("toy")[0].steps == 5 and rag.generator("toy-plain")[0].steps == 1
    bad = RagPipeline(Settings(store_dir=tmp_path / "store", generator_options={"toy": {"wieghts": "big"}}),
                      validator=quiet)
    with pytest.raises(ConfigError, match="unknown option wieghts for generator 'toy'"):
        bad.generator("toy")  # a typo in the set-up is named when the generator is first asked for


def test_a_model_folder_in_the_settings_makes_a_generator_ready_in_the_app():
    assert "llada" not in ready_generators(Settings()) and "sculpt" in ready_generators(Settings())
    set_up = Settings(generator_options={"llada": {"model_path": "/models/llada"}, "dream": {"device": "cpu"}})
    ready = ready_generators(set_up)
    assert "llada" in ready and "dream" not in ready  # a device alone gives no weights


def test_repair_asks_the_protocol(toy):
    class Fixer(ToyGenerator):
        repair_how = "toy repair"

        def repair(self, request, answer, spans):
            return GenerationResult(text="fixed", raw_text="fixed", trace=GenerationTrace(generator="toy"))

    request = GenerationRequest(question="q?")
    first = GenerationResult(text="bad", raw_text="bad", trace=GenerationTrace(generator="toy"))

    def judge(r):
        return ValidationReport(status="pass" if r.text == "fixed" else "fail", failing_spans=[(0, len(r.text))])

    result, report, rounds = validate_and_repair(Fixer(), request, first, judge, 1)
    assert result.text == "fixed" and report.status == "pass" and rounds[0].how == "toy repair"
    _, _, rounds = validate_and_repair(ToyGenerator(), request, first, judge, 1)
    assert "regenerate" in rounds[0].how  # no Repairs: answer again without the failing sentences' passages


# -- the service asks the plugin -----------------------------------------------------------------------------
def _request(generator: str = "sculpt"):
    settings = Settings(generator=generator)
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(settings=settings))))


def test_the_service_refuses_per_request_what_the_plugin_marks_as_load_options(toy):
    from app.service.answers import _check_options
    from app.service.errors import ApiError

    assert _check_options(_request(), None, {"max_steps": 3}) == {"max_steps": 3}
    assert _check_options(_request(), None, {}) == {}
    for generator, options, said in [
        (None, {"model_path": "/etc"}, "model_path cannot be set per request"),
        ("openai", {"base_url": "http://elsewhere", "max_tokens": 9}, "base_url cannot be set per request"),
        ("toy", {"weights": "big"}, "weights cannot be set per request"),
        ("sculpt", {"max_stepz": 3}, "unknown option max_stepz for generator 'sculpt'"),
        ("toy-plain", {"steps": 2}, "declares no options"),
    ]:
        with pytest.raises(ApiError) as e:
            _check_options(_request(), generator, options)
        assert e.value.status == 422 and said in e.value.message, (generator, e.value.message)
    assert _check_options(_request(), "toy", {"steps": 2}) == {"steps": 2}


# -- the app asks the plugin ---------------------------------------------------------------------------------
def test_the_app_asks_the_plugin_for_the_model_folder_and_the_form(toy):
    user = User(name="u", groups=("public",), editor=True, source="settings")
    prefs = Prefs.defaults(Settings(), user)
    prefs.model_paths = {"llada": "/models/llada", "sculpt": "/models/ignored"}
    prefs.generator = "llada"
    assert prefs.generator_options() == {"model_path": "/models/llada"}
    prefs.generator, prefs.options = "sculpt", {"sculpt": {"max_steps": 2}}
    assert prefs.generator_options() == {"max_steps": 2}  # sculpt ships its model: no folder sent
    ready = ready_generators()
    assert {"sculpt", "extractive", "smollm2", "openai", "toy"} <= set(ready)
    assert not {"llada", "dream", "hf-mlm", "hf-causal"} & set(ready)

    class Form(BaseModel):
        count: int = Field(3, ge=1, le=9, description="how many")
        share: float | None = Field(None, gt=0, le=1)
        on: bool = True
        kind: Literal["x", "y"] | None = None
        label: str = "a"
        extra: dict = Field(default_factory=dict)  # no widget edits a dict
        hidden: str = Field("w", json_schema_extra={"load": True})

    assert form_fields(Form, skip={"hidden"}) == [
        FormField("count", "Count", "how many", "int", min=1, max=9),
        FormField("share", "Share", None, "float", optional=True, min=0, max=1),
        FormField("on", "On", None, "bool"),
        FormField("kind", "Kind", None, "choice", optional=True, choices=("x", "y")),
        FormField("label", "Label", None, "text"),
    ]
    assert [f.name for f in form_fields(generator_spec("toy").options, skip=generator_spec("toy").load_options)] == [
        "steps", "mode"]


# -- the support checker is chosen by name -------------------------------------------------------------------
class AlwaysSupported:
    name = "always-supported"
    shares_embedder = True

    def __init__(self, embedder=None, threshold: float = 0.5) -> None:
        self.embedder, self.threshold = embedder, threshold

    def warm_up(self) -> None:
        pass

    def score(self, claim: str, evidence: str) -> float:
        return 1.0


@pytest.fixture
def always():
    register_checker("always-supported", AlwaysSupported)
    yield
    CHECKERS.unregister("always-supported")


def test_a_registered_checker_is_used_when_the_settings_select_it(always, tmp_path):
    embedder = object()
    settings = Settings(store_dir=tmp_path / "store",
                        validation=ValidationSettings(checker="always-supported", checker_options={"threshold": 0.8}))
    checker = default_validator(settings, embedder).checker
    assert isinstance(checker, AlwaysSupported) and checker.threshold == 0.8 and checker.embedder is embedder
    rag = RagPipeline(settings)  # the pipeline builds its validator through the registry
    assert isinstance(rag.validator.checker, AlwaysSupported)
    assert isinstance(get_checker("always-supported"), AlwaysSupported)


def test_the_default_checker_and_the_older_nli_setting(tmp_path):
    assert isinstance(default_validator(Settings()).checker, OverlapEmbeddingChecker)
    nli = default_validator(Settings(validation=ValidationSettings(nli_model=str(tmp_path)))).checker
    assert isinstance(nli, NLIChecker)  # nli_model alone still selects the NLI checker, as before


def test_an_unknown_checker_names_the_available_ones(tmp_path):
    settings = Settings(store_dir=tmp_path / "store", validation=ValidationSettings(checker="nope"))
    with pytest.raises(ConfigError, match="unknown support checker 'nope'; available: .*nli, overlap-embedding"):
        RagPipeline(settings)
