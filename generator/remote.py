"""The remote generator: any OpenAI-compatible /chat/completions endpoint behind the Generator protocol.

vLLM, SGLang, llama.cpp's server, `transformers serve` or Inception's Mercury (a diffusion LM) answer; we
ask them what our local models are asked (`render_prompt`: instructions, the numbered passages, the
question, as one user message; the server applies its model's chat template) and post-process the answer
the same way (`finalize_citations`), so validation judges it like any other.

Invariants:
- The API key travels only in the `Authorization` header to base_url: it is never logged, never part of an
  error message (server text quoted in an error is scrubbed of it), never in a repr (SecretStr).
- Retries: a 429 or 5xx answer, or a connection dropped before the answer began, is retried up to
  `max_retries` times, waiting `backoff_s * 2**attempt` or what Retry-After asks (seconds or an HTTP date);
  a wait longer than `max_wait_s` fails at once, naming it. A refused connection or a connect timeout is not
  retried: it raises ModelLoadError naming the URL at once. Nothing is retried once a streamed answer has
  begun (its states were already shown).
- Streaming (SSE `data:` lines, `[DONE]` or the end of the body closes it): with stream_updates="delta" each
  chunk's `delta.content` is appended (the OpenAI rule); with "canvas" each chunk's content is the whole
  answer so far (a diffusion server that streams each denoising step's full canvas, as a diffusing Mercury
  stream of refined drafts may: the server's docs, or one curl, say which). Nothing guesses the rule from
  the text, which cannot tell a delta from a canvas. Either way every chunk with content is one
  DenoiseState: its text is the answer so far, `changed` the word positions that differ from the previous
  state, `masked` the count of MASK_GLYPH in it (how a diffusion canvas shows still-masked slots). The
  final text is the concatenation (delta) or the last canvas. A server that answers a streamed request
  with plain JSON gives one state.
- Repair re-asks: the previous answer goes back as the assistant turn and a user turn names the failing
  sentences, asking for the whole answer again (a remote model cannot remask spans).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from pipeline.config import OpenAISettings, Settings
from pipeline.errors import ConfigError, GenerationError, ModelLoadError

from .base import generator_plugin, last_of, sampling_config
from .citations import finalize_citations
from .prompt import render_prompt
from pipeline.types import (
    MASK_GLYPH,
    AutoregressiveConfig,
    DenoiseState,
    GenerationRequest,
    GenerationResult,
    GenerationTrace,
)

logger = logging.getLogger(__name__)

CONNECTION_FIELDS = ("base_url", "api_key", "connect_timeout_s", "read_timeout_s")  # a change needs a new client
SERVER_TEXT_MAX = 300  # characters of a server's error body quoted in our error


def chat_url(base_url: str) -> str:
    """The API root: `base_url` without a trailing slash; a URL with no path gets /v1 (the usual root)."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_url must be an http(s) URL like http://gpu-host:8000/v1, got {shown_url(base_url)!r}")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def shown_url(url: str) -> str:
    """`url` as errors and logs show it: without user:password@ and without a query (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def changed_words(before: str, after: str) -> list[int]:
    """Word positions of `after` that differ from `before` (new words included)."""
    old, new = before.split(), after.split()
    return [i for i, w in enumerate(new) if i >= len(old) or old[i] != w]


class OpenAIGenerator:
    """Asks an OpenAI-compatible server; `config` (an OpenAISettings) says where, as whom, and how."""

    repair_how = "re-ask naming the failing sentences"

    def __init__(self, config: OpenAISettings | None = None, name: str = "openai") -> None:
        config = config or OpenAISettings()
        if not isinstance(config, OpenAISettings):
            raise ConfigError(f"config must be an OpenAISettings, got {type(config).__name__}")
        self.config = config
        self.name = name
        self._root = chat_url(config.base_url) if config.base_url else None
        self._client: httpx.Client | None = None
        self._model: str | None = config.model

    def with_options(self, **options: Any) -> OpenAIGenerator:
        """A generator with other settings (`config=` or OpenAISettings fields as keywords); it shares this one's
        HTTP connections unless base_url, api_key or a timeout changes."""
        other = OpenAIGenerator(_settings(self.config, options), self.name)
        config = other.config
        if all(getattr(config, f) == getattr(self.config, f) for f in CONNECTION_FIELDS):
            other._client = self._client
            if config.model == self.config.model:
                other._model = self._model
        return other

    def warm_up(self) -> None:
        """Check the settings and open the HTTP client; no request is sent (the first answer finds the server)."""
        if self._client is not None:
            return
        if self._root is None:
            raise ConfigError("the openai generator needs a server: set SCULPTRAG_OPENAI__BASE_URL (e.g. "
                              "http://gpu-host:8000/v1) or pass base_url=")
        c = self.config
        headers = {"Accept": "application/json"}
        if c.api_key is not None and c.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {c.api_key.get_secret_value()}"
        timeout = httpx.Timeout(connect=c.connect_timeout_s, read=c.read_timeout_s, write=c.read_timeout_s,
                                pool=c.connect_timeout_s)
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections (a later request opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the protocol -----------------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer: the last item of `stream`."""
        return last_of(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        """Yield a DenoiseState per streamed chunk with content (see the module docstring), then the result."""
        messages = [{"role": "user", "content": render_prompt(request.question, request.passages)}]
        yield from self._ask(request, messages)

    def repair(self, request: GenerationRequest, answer: str, spans: Sequence[tuple[int, int]]) -> GenerationResult:
        """Ask again, naming the sentences at the character spans [start, end) of `answer` (a raw_text, markers
        numbered as the request's passages) as unsupported. Returns a fresh GenerationResult."""
        for a, b in spans:
            if not 0 <= a < b <= len(answer):
                raise ConfigError(f"span ({a}, {b}) is not inside the answer (length {len(answer)})")
        failing = [" ".join(answer[a:b].split()) for a, b in spans]
        note = ("These sentences of your answer are not supported by the passages they cite:\n"
                + "\n".join(f'- "{s}"' for s in failing if s)
                + "\nWrite the whole answer again using only the numbered passages: keep the other sentences, "
                  "rewrite or remove these, and cite the passages that support each sentence, like [1].")
        messages = [{"role": "user", "content": render_prompt(request.question, request.passages)},
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": note}]
        return last_of(self._ask(request, messages, stream=False))

    # -- one exchange ---------------------------------------------------------------------------------------------
    def _ask(self, request: GenerationRequest, messages: list[dict], stream: bool | None = None
             ) -> Iterator[DenoiseState | GenerationResult]:
        self.warm_up()
        start = time.perf_counter()
        body = self._body(request, messages, self.config.stream if stream is None else stream)
        response = self._send("POST", f"{self._root}/chat/completions", body)
        states: list[DenoiseState] = []
        usage: dict = {}
        try:
            if body["stream"] and response.headers.get("content-type", "").startswith("text/event-stream"):
                text = ""
                for chunk in self._events(response):
                    usage = chunk.get("usage") or usage
                    piece = _content(chunk, "delta")
                    if not piece:
                        continue
                    new = piece if self.config.stream_updates == "canvas" else text + piece
                    states.append(DenoiseState(step=len(states) + 1, text=new, masked=new.count(MASK_GLYPH),
                                               changed=changed_words(text, new)))
                    text = new
                    yield states[-1]
            else:
                response.read()
                data = self._json(response)
                usage = data.get("usage") or {}
                text = _content(data, "message") or ""
                if body["stream"]:  # a server that does not stream: its whole answer is one state
                    states.append(DenoiseState(step=1, text=text, masked=text.count(MASK_GLYPH),
                                               changed=changed_words("", text)))
                    yield states[-1]
        except httpx.TimeoutException as e:
            raise self._timeout(self._root) from e
        except httpx.TransportError as e:
            raise GenerationError(f"the connection to {shown_url(self._root)} broke during the answer "
                                  f"({type(e).__name__}); ask again") from e
        finally:
            response.close()
        yield self._result(request, text, states, usage, start)

    def _body(self, request: GenerationRequest, messages: list[dict], stream: bool) -> dict:
        c = self.config
        max_tokens, temperature, top_p, seed = c.max_tokens, c.temperature, c.top_p, c.seed
        if isinstance(request.config, AutoregressiveConfig):  # a request's sampling settings win
            r = request.config
            if r.repetition_penalty != 1.0:
                raise ConfigError("the openai generator cannot send repetition_penalty (OpenAI's API has none); "
                                  "leave it at 1.0")
            max_tokens, temperature, seed = r.max_new_tokens, r.temperature, r.seed
            top_p = r.top_p if r.top_p < 1.0 else None
        elif request.config is not None:
            raise ConfigError(f"{self.name} asks a remote chat model: request.config must be an "
                              f"AutoregressiveConfig or None, got {type(request.config).__name__}")
        body: dict[str, Any] = {"model": self._model_name(), "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": stream}
        if top_p is not None:
            body["top_p"] = top_p
        if seed is not None:
            body["seed"] = seed
        body.update(c.extra_body)
        return body

    def _model_name(self) -> str:
        """The configured model, else the one model the server lists (asked once)."""
        if self._model:
            return self._model
        response = self._send("GET", f"{self._root}/models", None)
        try:
            response.read()
            listed = [m.get("id") for m in self._json(response).get("data", []) if isinstance(m, dict)]
        finally:
            response.close()
        if len(listed) != 1 or not listed[0]:
            names = ", ".join(map(str, listed[:10]))
            raise ConfigError(f"{shown_url(self._root)} lists {len(listed)} models ({names}): set "
                              "SCULPTRAG_OPENAI__MODEL to the one to ask")
        self._model = str(listed[0])
        return self._model

    def _result(self, request: GenerationRequest, raw: str, states: list[DenoiseState], usage: dict,
                start: float) -> GenerationResult:
        text, citations = finalize_citations(raw, request.passages)
        wall = time.perf_counter() - start
        answer_tokens = int(usage.get("completion_tokens") or 0) or len(states)
        trace = GenerationTrace(generator=self.name, steps=len(states), answer_tokens=answer_tokens,
                                prompt_tokens=int(usage.get("prompt_tokens") or 0), wall_time_s=wall,
                                tokens_per_s=answer_tokens / wall if wall > 0 else 0.0)
        return GenerationResult(text=text, citations=citations, trace=trace, raw_text=raw)

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _send(self, method: str, url: str, body: dict | None) -> httpx.Response:
        """An open response with status 200 (the caller reads and closes it), after retries (module docstring)."""
        c = self.config
        where = shown_url(url)
        attempts = c.max_retries + 1
        attempt = -1
        while True:
            attempt += 1
            try:
                request = self._client.build_request(method, url, json=body)
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as e:
                reason = self._scrub(str(e)) or type(e).__name__
                raise ModelLoadError(f"the openai generator cannot reach {where} ({reason}): start the server, or "
                                     "point SCULPTRAG_OPENAI__BASE_URL at a running one") from e
            except httpx.TimeoutException as e:
                raise self._timeout(url) from e
            except httpx.TransportError as e:  # dropped before the answer began: safe to ask again
                if attempt + 1 == attempts:
                    raise GenerationError(f"the connection to {where} broke {attempts} times "
                                          f"({type(e).__name__}); is the server restarting?") from e
                wait = c.backoff_s * 2 ** attempt
                logger.warning("%s: %s from %s, retry %d/%d in %.2f s", self.name, type(e).__name__, where,
                               attempt + 1, c.max_retries, wait)
                time.sleep(min(wait, c.max_wait_s))
                continue
            if response.status_code == 200:
                return response
            response.read()
            response.close()
            status = response.status_code
            if status != 429 and status < 500:
                raise self._http_error(response, where)
            asked = retry_after_s(response.headers.get("retry-after"))
            if asked is not None and asked > c.max_wait_s:
                raise GenerationError(f"{where} answered {status} and asks to retry after {asked:.0f} s, more than "
                                      f"max_wait_s={c.max_wait_s:g} s: try later")
            if attempt + 1 == attempts:
                raise GenerationError(f"{where} answered {status} {attempts} times"
                                      f"{self._server_says(response)}: it is overloaded or failing; try later or "
                                      "raise SCULPTRAG_OPENAI__MAX_RETRIES")
            wait = min(c.backoff_s * 2 ** attempt if asked is None else asked, c.max_wait_s)
            logger.warning("%s: %s answered %d, retry %d/%d in %.2f s", self.name, where, status, attempt + 1,
                           c.max_retries, wait)
            time.sleep(wait)

    def _timeout(self, url: str) -> GenerationError:
        return GenerationError(f"no answer from {shown_url(url)} within read_timeout_s={self.config.read_timeout_s:g} "
                               "s: raise SCULPTRAG_OPENAI__READ_TIMEOUT_S or ask for fewer max_tokens")

    def _http_error(self, response: httpx.Response, where: str) -> Exception:
        status, says = response.status_code, self._server_says(response)
        if status in (401, 403):
            return ConfigError(f"{where} refused the request ({status}){says}: set SCULPTRAG_OPENAI__API_KEY to a "
                               "key it accepts")
        if status == 404:
            return ConfigError(f"{where} answered 404{says}: check SCULPTRAG_OPENAI__BASE_URL (the API root, e.g. "
                               "http://host:8000/v1) and SCULPTRAG_OPENAI__MODEL")
        return GenerationError(f"{where} refused the request ({status}){says}")

    def _server_says(self, response: httpx.Response) -> str:
        """': <the server's error message>' (scrubbed, shortened), or '' when it gave none."""
        try:
            data = response.json()
            text = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
            if isinstance(text, dict):
                text = text.get("message", text)
            text = str(text)
        except (ValueError, UnicodeDecodeError):
            text = response.text
        text = self._scrub(" ".join(text.split()))[:SERVER_TEXT_MAX]
        return f": {text}" if text else ""

    def _scrub(self, text: str) -> str:
        key = self.config.api_key.get_secret_value() if self.config.api_key is not None else ""
        return text.replace(key, "***") if key else text

    def _json(self, response: httpx.Response) -> dict:
        try:
            data = response.json()
        except ValueError as e:
            raise GenerationError(f"{shown_url(str(response.url))} answered with something that is not JSON: "
                                  f"{self._scrub(response.text[:SERVER_TEXT_MAX])!r}") from e
        if not isinstance(data, dict):
            raise GenerationError(f"{shown_url(str(response.url))} answered JSON that is not an object")
        if "error" in data:
            raise GenerationError(f"{shown_url(str(response.url))} reported an error{self._server_says(response)}")
        return data

    def _events(self, response: httpx.Response) -> Iterator[dict]:
        """The JSON objects of an SSE stream's `data:` events, up to `[DONE]` or the end of the body."""
        data: list[str] = []
        for line in [*response.iter_lines(), ""]:  # a blank line ends an event; so does the end of the body
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:  # a comment (":"), "event:", "id:", or an empty event
                continue
            payload, data = "\n".join(data), []
            if payload.strip() == "[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError as e:
                raise GenerationError(f"{shown_url(str(response.url))} streamed a chunk that is not JSON: "
                                      f"{self._scrub(payload[:SERVER_TEXT_MAX])!r}") from e
            if isinstance(event, dict) and "error" in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise GenerationError(f"{shown_url(str(response.url))} failed during the answer: "
                                      f"{self._scrub(str(message))[:SERVER_TEXT_MAX]}")
            if isinstance(event, dict):
                yield event


def _content(data: dict, key: str) -> str | None:
    """choices[0][key]["content"] of a completion ("message") or a chunk ("delta"); None when absent."""
    choices = data.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    part = choices[0].get(key) or {}
    content = part.get("content") if isinstance(part, dict) else None
    return content if isinstance(content, str) else None


@generator_plugin(options=OpenAISettings, load_options=("base_url", "model", "api_key"), takes_settings=True,
                  defaults=lambda settings: settings.openai)
def build_openai(settings: Settings | None = None, **options: Any) -> OpenAIGenerator:
    """Factory for "openai": `settings.openai` (from the environment when no Settings is given), with any of its
    fields given as options laid over it (`base_url=`, `model=`, `api_key=`, `max_tokens=`, ...)."""
    name = options.pop("name", "openai")
    return OpenAIGenerator(_settings((settings or Settings()).openai, options), name=name)


def _settings(current: OpenAISettings, options: dict) -> OpenAISettings:
    """`current` with `options` (OpenAISettings fields, or `config=` a whole one) laid over it."""
    try:
        return sampling_config(current, options, frozenset())
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"bad openai generator option: {problems}; the options are "
                          f"{', '.join(OpenAISettings.model_fields)}") from None  # pydantic's text quotes the inputs
