"""The answering routes over a real `sculptrag serve`: /v1/ask (JSON and SSE), /v1/retrieve, the OpenAI-compatible
/v1/chat/completions (driven by the official `openai` client), generator errors, limits, health and metrics."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.timeout(300)

QUESTION = "When does the canteen serve soup?"


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """(event, data) pairs of a Server-Sent Events response (comments skipped)."""
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
    return events


def test_ask_answers_the_object_sculptrag_ask_json_prints(client):
    r = client().post("/v1/ask", json={"question": QUESTION, "generator": "extractive"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"question", "text", "citations", "generator", "trace", "validation", "timings"}
    assert "Fridays" in answer["text"] and "[1]" in answer["text"]
    cite = answer["citations"][0]
    assert {"marker", "chunk_id", "document_title", "page", "quote", "source_uri"} <= set(cite)
    assert "soup on Fridays" in cite["quote"]
    assert answer["validation"]["status"] == "pass" and answer["validation"]["sentences"]
    assert answer["generator"] == "extractive" and "retrieve_s" in answer["timings"]


def test_ask_streams_denoising_states_then_the_answer(client):
    # the bundled sculpt: the default sampler writes this answer in a call or two, the naive one a slot a call
    for options in ({}, {"sampler": "naive"}):
        with client().stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True, "options": options}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = sse_events(r)
        names = [name for name, _ in events]
        assert names[-1] == "answer" and names.count("answer") == 1
        states = [data for name, data in events if name == "state"]
        assert states and all(name == "state" for name in names[:-1])
        assert [s["step"] for s in states] == list(range(1, len(states) + 1))
        assert all("\u2591" in s["text"] and not s["done"] for s in states[:-1])  # masked until the last step
        assert states[-1]["done"] and states[-1]["masked"] == 0 and "\u2591" not in states[-1]["text"]
        assert [s["masked"] for s in states] == sorted((s["masked"] for s in states), reverse=True)  # it sharpens
        answer = events[-1][1]
        assert answer["generator"] == "sculpt" and "Fridays" in answer["text"] and answer["citations"]
    assert len(states) > 2  # the naive sampler shows the answer forming


def test_retrieve_gives_passages_with_scores(client):
    r = client().post("/v1/retrieve", json={"question": QUESTION, "k": 2})
    assert r.status_code == 200, r.text
    passages = r.json()["passages"]
    assert 1 <= len(passages) <= 2
    assert "soup" in passages[0]["text"] and passages[0]["scores"]["fused"] > 0
    assert passages[0]["document"]["title"]


def test_openai_client_plain_and_streaming(service):
    c = openai.OpenAI(base_url=service["url"] + "/v1", api_key=service["keys"]["reader"], max_retries=0)
    assert "sculpt" in [m.id for m in c.models.list()]
    r = c.chat.completions.create(model="extractive", messages=[{"role": "system", "content": "be brief"},
                                                                {"role": "user", "content": QUESTION}])
    message = r.choices[0].message
    assert "Fridays" in message.content and "[1]" in message.content  # markers stay in the content
    extra = message.model_extra
    assert extra["citations"][0]["marker"] == 1 and "soup" in extra["citations"][0]["quote"]
    assert extra["validation"]["status"] == "pass"
    assert r.model == "extractive" and r.choices[0].finish_reason == "stop"

    chunks = list(c.chat.completions.create(model="sculpt", messages=[{"role": "user", "content": QUESTION}],
                                            stream=True, temperature=0.0, max_tokens=64))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "Fridays" in text
    assert any((ch.model_extra or {}).get("canvas") for ch in chunks)  # the denoising steps ride along
    assert chunks[-1].choices[0].finish_reason == "stop"
    final = next(ch for ch in chunks if ch.choices[0].delta.content)
    assert final.choices[0].delta.model_extra["citations"]


def test_unknown_generator_is_400_listing_the_available_ones(client, service):
    r = client().post("/v1/ask", json={"question": QUESTION, "generator": "gpt-17"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert "gpt-17" in error["message"] and "extractive" in error["message"] and "sculpt" in error["available"]
    c = openai.OpenAI(base_url=service["url"] + "/v1", api_key=service["keys"]["reader"], max_retries=0)
    with pytest.raises(openai.BadRequestError, match="available"):
        c.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": QUESTION}])


def test_a_generator_that_cannot_load_is_503_and_the_service_stays_up(client):
    c = client()
    for _ in range(2):  # it is tried again, and fails again, without harm
        r = c.post("/v1/ask", json={"question": QUESTION, "generator": "broken"})
        assert r.status_code == 503
        assert "broken" in r.json()["error"]["message"] and "no weights" in r.json()["error"]["message"]
        ok = c.post("/v1/ask", json={"question": QUESTION, "generator": "extractive"})
        assert ok.status_code == 200 and "Fridays" in ok.json()["text"]


def test_limits_say_what_to_change(client, service):
    c = client()
    r = c.post("/v1/ask", json={"question": "why " * 200, "generator": "extractive"})
    assert r.status_code == 413 and "MAX_QUESTION_CHARS" in r.json()["error"]["message"]
    r = c.post("/v1/retrieve", json={"question": QUESTION, "k": 21})
    assert r.status_code == 422 and "at most 20" in r.json()["error"]["message"]
    r = c.post("/v1/ask", content=b'{"question": "' + b"x" * 70_000 + b'"}', headers={"content-type": "application/json"})
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["error"]["message"]

    def chunked():  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(10):
            yield b"y" * 10_000
        yield b'"}'
    r = c.post("/v1/ask", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = c.post("/v1/ask", json={"question": QUESTION, "options": {"model_path": "/etc"}})
    assert r.status_code == 422 and "model_path" in r.json()["error"]["message"]
    r = c.post("/v1/ask", json={"question": QUESTION, "generator": "sculpt", "options": {"max_stepz": 3}})
    assert r.status_code == 422 and r.json()["error"]["message"]


def test_every_error_is_json(client, service):
    c = client()
    for r in [c.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"}),
              c.post("/v1/ask", json={"k": 3}), c.get("/v1/nothing-here"), c.delete("/v1/ask"),
              httpx.get(service["url"] + "/v1/documents")]:
        assert r.status_code in (401, 404, 405, 422), r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"]["message"]
    assert "question" in c.post("/v1/ask", json={"k": 3}).json()["error"]["message"]


def test_health_ready_docs_and_metrics(client, service):
    url = service["url"]
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").json()["status"] == "ready"
    assert httpx.get(url + "/openapi.json").json()["paths"]["/v1/chat/completions"]
    assert httpx.get(url + "/docs").status_code == 200
    client().post("/v1/ask", json={"question": QUESTION, "generator": "extractive"})
    text = httpx.get(url + "/metrics").text
    assert 'sculptrag_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'sculptrag_http_request_seconds_bucket{le="0.005",method="POST",route="/v1/ask",status="200"}' in text
    assert 'sculptrag_answers_total{generator="extractive",verdict="pass"}' in text
    assert "sculptrag_queue_depth 0.0" in text
    assert "sculptrag_ingest_files_total" in text or "sculptrag_ingest_runs" in text
