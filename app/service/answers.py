"""The answering routes: POST /v1/ask (JSON or Server-Sent Events), /v1/retrieve, /v1/chat/completions.

A question goes: caller and groups in use (auth.py) -> limits -> the generator, loaded here (a generator that
cannot load is a 503 naming the reason; the service stays up and the next request tries again) -> a Job in
the scheduler's queue (full: 503 + Retry-After) -> the answer. While a client waits, its connection is
watched: a client that goes away cancels its job (scheduler.py), so it frees its place in the queue or in
the running batch. Retrieval runs in the request's thread: it is cheap and needs no generator.

`/v1/ask` answers exactly what `sculptrag ask --json` prints. Streaming (`"stream": true`) sends one `state`
event per denoising step (the canvas: `step`, `text` with masks shown as ░, `masked`, `changed`, `done`),
then one `answer` event with that same object, or an `error` event. The chat route is OpenAI-compatible:
the answer's markers stay in `content`, and the message carries the resolved `citations` and the
`validation` report as extra fields; streamed, each denoising step is a chunk with an empty delta and the
canvas in an extra `canvas` field, the answer is one content delta, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.ui.services import User
from generator.base import available_generators, generator_spec
from pipeline.errors import ConfigError
from pipeline.types import Answer, DenoiseState, SearchFilters

from .auth import caller, groups_in_use
from .errors import ApiError, as_api_error, error_body
from .scheduler import Job, QueueFull

router = APIRouter(prefix="/v1", tags=["answers"])

WATCH_S = 0.5  # how often a waiting request checks that its client is still there
KEEPALIVE_S = 5.0  # an SSE comment this often while a stream waits in the queue


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="the question (service.max_question_chars at most)")
    groups: list[str] | None = Field(None, description="narrow the caller's groups to these (never widen)")
    k: int | None = Field(None, ge=1, description="passages to retrieve (service.max_k at most)")
    filters: SearchFilters | None = Field(None, description="only documents matching these metadata conditions")


class AskRequest(Question):
    generator: str | None = Field(None, description="a registered generator (default: the server's)")
    options: dict[str, Any] = Field(default_factory=dict, description="the generator's sampling settings, e.g. "
                                    "{\"max_steps\": 32} for sculpt (weights and servers are the server's choice)")
    stream: bool = Field(False, description="Server-Sent Events: a `state` event per denoising step, then `answer`")
    repair_rounds: int | None = Field(None, ge=0, le=3, description="self-correction rounds after validation "
                                      "(default: the server's validation.repair_rounds)")
    passages: bool = Field(False, description="also return the retrieved passages (text, document, page, scores) "
                           "that the citations point into: all of them are readable by the caller")


class RetrieveRequest(Question):
    pass


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: the text ones, joined
            return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI's chat-completions request; fields it has that do not apply here are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="a generator name (GET /v1/models lists them)")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    groups: list[str] | None = None
    k: int | None = Field(None, ge=1)
    filters: SearchFilters | None = None


# -- shared steps --------------------------------------------------------------------------------------
def _check_limits(request: Request, question: str, k: int | None) -> None:
    limits = request.app.state.services.settings.service
    if len(question) > limits.max_question_chars:
        raise ApiError(413, f"the question is {len(question)} characters; at most {limits.max_question_chars} are "
                            "accepted (SCULPTRAG_SERVICE__MAX_QUESTION_CHARS): shorten it")
    if k is not None and k > limits.max_k:
        raise ApiError(422, f"k is {k}; at most {limits.max_k} passages may be asked for (SCULPTRAG_SERVICE__MAX_K)")


def _generator_name(request: Request, name: str | None) -> str:
    name = name or request.app.state.services.settings.generator
    available = available_generators()
    if name not in available:
        raise ApiError(400, f"unknown generator {name!r}; available: {', '.join(available)}", available=available)
    return name


async def _load(request: Request, name: str):
    """The generator `name` with the server's settings, loaded (once) in a worker thread; 503 if it cannot load."""
    rag = request.app.state.services.rag
    try:
        gen, _lock = await run_in_threadpool(rag.generator, name)
    except Exception as e:  # noqa: BLE001 - any load failure: the reason goes to the client, the service stays up
        raise ApiError(503, f"generator {name!r} could not be loaded: {type(e).__name__}: {e}. Try another "
                            f"generator or ask the operator to fix its set-up") from e
    return gen


def _check_options(request: Request, generator: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The request's options, if the generator's plugin declares them as sampling options (those that choose
    weights or a server are the server's set-up; a plugin that declares no options takes none per request)."""
    if not options:
        return {}
    name = _generator_name(request, generator)
    spec = generator_spec(name)
    if not spec.declared:
        raise ApiError(422, f"generator {name!r} declares no options; {', '.join(sorted(options))} cannot be set "
                            "per request")
    refused = sorted(set(options) & spec.load_options)
    if refused:
        raise ApiError(422, f"{', '.join(refused)} cannot be set per request (they choose weights or a remote "
                            "server, which is the server's set-up); send sampling options only: "
                            f"{', '.join(sorted(spec.sampling_options))}")
    try:
        spec.check(options, name)
    except ConfigError as e:
        raise ApiError(422, str(e)) from None
    return dict(options)


async def _job(request: Request, user: User, body: Question, generator: str | None,
               options: dict[str, Any], on_state=None, repair_rounds: int | None = None) -> Job:
    """Checks, groups in use, the loaded generator, then a job in the queue."""
    svc, state = request.app.state.services, request.app.state
    _check_limits(request, body.question, body.k)
    groups = groups_in_use(user, body.groups)
    name = _generator_name(request, generator)
    await _load(request, name)
    job = Job(question=body.question, groups=groups, k=body.k, filters=body.filters, generator=name,
              options=options, on_state=on_state, repair_rounds=repair_rounds)
    try:
        return state.scheduler.submit(job)
    except QueueFull as e:
        state.metrics.rejected.inc()
        raise ApiError(503, f"{e} (after Retry-After seconds)",
                       headers={"Retry-After": str(svc.settings.service.retry_after_s)}) from e


def _done_event(job: Job) -> asyncio.Event:
    loop, done = asyncio.get_running_loop(), asyncio.Event()
    job.future.add_done_callback(lambda _: loop.call_soon_threadsafe(done.set))
    return done


def _outcome(request: Request, job: Job) -> Answer:
    """The job's answer (counted in the metrics), or its failure as an ApiError."""
    try:
        answer = job.future.result(timeout=0)
    except concurrent.futures.CancelledError as e:
        raise as_api_error(e) from None
    except Exception as e:  # noqa: BLE001 - mapped to the client's error
        raise as_api_error(e) from e
    request.app.state.metrics.count_answer(answer.generator, answer.validation.status)
    return answer


async def _answer(request: Request, job: Job) -> Answer:
    """Wait for a queued job while watching the client; a client that goes away cancels it."""
    done = _done_event(job)
    try:
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), WATCH_S)
            except TimeoutError:
                if await request.is_disconnected():
                    request.app.state.scheduler.cancel(job)
                    raise ApiError(503, "the client went away; the request was cancelled") from None
    except asyncio.CancelledError:
        request.app.state.scheduler.cancel(job)
        raise
    return _outcome(request, job)


def _answer_json(answer: Answer, passages: bool = False) -> str:
    """What `sculptrag ask --json` prints; with `passages`, the retrieved passages too."""
    return answer.model_dump_json(exclude=None if passages else {"passages"})


async def _events(request: Request, job: Job, queue: asyncio.Queue) -> AsyncIterator[tuple[str, Any]]:
    """("state", DenoiseState)... then ("answer", Answer) or ("error", ApiError); SSE keep-alives as ("ping", None).
    Leaving early (the client went away: the stream is cancelled) cancels the job."""
    done = _done_event(job)
    done_wait = asyncio.ensure_future(done.wait())
    get: asyncio.Future | None = None
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            finished, _ = await asyncio.wait({get, done_wait}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if get in finished:
                yield "state", get.result()
                continue
            get.cancel()
            if done_wait in finished:
                while not queue.empty():  # states that arrived with the end
                    yield "state", queue.get_nowait()
                break
            yield "ping", None
        try:
            yield "answer", _outcome(request, job)
        except ApiError as e:
            yield "error", e
    finally:
        done_wait.cancel()
        if get is not None:
            get.cancel()
        if not job.future.done():
            request.app.state.scheduler.cancel(job)


def _state_sink(queue: asyncio.Queue):
    loop = asyncio.get_running_loop()
    return lambda state: loop.call_soon_threadsafe(queue.put_nowait, state)


def _sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- routes --------------------------------------------------------------------------------------------
@router.post("/ask", summary="Answer a question with cited, validated text (stream: Server-Sent Events)")
async def ask(body: AskRequest, request: Request, user: User = Depends(caller)) -> Response:
    options = _check_options(request, body.generator, body.options)
    if not body.stream:
        job = await _job(request, user, body, body.generator, options, repair_rounds=body.repair_rounds)
        return Response(_answer_json(await _answer(request, job), body.passages), media_type="application/json")
    queue: asyncio.Queue[DenoiseState] = asyncio.Queue()
    job = await _job(request, user, body, body.generator, options, on_state=_state_sink(queue),
                     repair_rounds=body.repair_rounds)

    async def stream() -> AsyncIterator[str]:
        async for kind, item in _events(request, job, queue):
            if kind == "state":
                yield _sse("state", item.model_dump_json())
            elif kind == "answer":
                yield _sse("answer", _answer_json(item, body.passages))
            elif kind == "error":
                yield _sse("error", json.dumps(error_body(item.status, item.message)))
            else:
                yield ": waiting for the generator\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/retrieve", summary="The passages the caller may read for a question, with their scores")
def retrieve(body: RetrieveRequest, request: Request, user: User = Depends(caller)) -> dict[str, Any]:
    _check_limits(request, body.question, body.k)
    groups = groups_in_use(user, body.groups)
    hits = request.app.state.services.rag.retrieve(body.question, groups=groups, k=body.k, filters=body.filters)
    return {"question": body.question, "passages": [h.model_dump(mode="json") for h in hits]}


@router.get("/models", summary="The generators, as OpenAI's model list")
def models(user: User = Depends(caller)) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "sculptrag"}
                                       for name in available_generators()]}


def _chat_options(gen, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
    """OpenAI's sampling fields, where the generator's config has a field of that meaning."""
    fields = set(getattr(type(getattr(gen, "config", None)), "model_fields", {}) or ())
    options: dict[str, Any] = {}
    if temperature is not None and "temperature" in fields:
        options["temperature"] = temperature
    if max_tokens is not None:
        for name in ("max_tokens", "max_new_tokens"):
            if name in fields:
                options[name] = max_tokens
                break
    return options


def _message_extras(answer: Answer) -> dict[str, Any]:
    return {"citations": [c.model_dump(mode="json") for c in answer.citations], "validation": answer.validation.model_dump(mode="json")}


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (the last user message is the question)")
async def chat(body: ChatRequest, request: Request, user: User = Depends(caller)) -> Response:
    question = next((m.text() for m in reversed(body.messages) if m.role == "user"), "").strip()
    if not question:
        raise ApiError(422, "no user message with text: the last message with role 'user' is the question")
    name = _generator_name(request, body.model)
    gen = await _load(request, name)
    options = _chat_options(gen, body.temperature, body.max_completion_tokens or body.max_tokens)
    asked = Question(question=question, groups=body.groups, k=body.k, filters=body.filters)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    head = {"id": cid, "created": created, "model": name}
    if not body.stream:
        answer = await _answer(request, await _job(request, user, asked, name, options))
        trace = answer.trace
        usage = {"prompt_tokens": trace.prompt_tokens if trace else 0, "completion_tokens": trace.answer_tokens if trace else 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return Response(json.dumps({
            **head, "object": "chat.completion", "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer.text, **_message_extras(answer)}}],
        }), media_type="application/json")
    queue: asyncio.Queue[DenoiseState] = asyncio.Queue()
    job = await _job(request, user, asked, name, options, on_state=_state_sink(queue))

    def chunk(delta: dict[str, Any], finish: Literal["stop"] | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return "data: " + json.dumps({**head, "object": "chat.completion.chunk", "choices": [choice], **extra}) + "\n\n"

    async def stream() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        async for kind, item in _events(request, job, queue):
            if kind == "state":
                yield chunk({}, canvas=item.model_dump(mode="json"))
            elif kind == "answer":
                yield chunk({"content": item.text, **_message_extras(item)})
                yield chunk({}, "stop")
            elif kind == "error":
                yield "data: " + json.dumps(error_body(item.status, item.message)) + "\n\n"
            else:
                yield ": waiting for the generator\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
