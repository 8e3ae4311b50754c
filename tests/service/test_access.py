"""Access control through every route: a document only `hr` may read never reaches a caller without `hr`
(answers, passages, chat, streams, document lists, files, deletes, errors, metrics), groups narrow but never
widen, and the trusted sign-in proxy is the alternative to keys."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from .conftest import HR_TITLE, PROXY_SECRET, SECRET

pytestmark = pytest.mark.timeout(300)

ASK = "What is the bonus code word in the salary review?"


def test_the_hr_document_reaches_hr_only(client, service):
    hr = client("hr")
    answer = hr.post("/v1/ask", json={"question": ASK, "generator": "extractive"}).json()
    assert SECRET in answer["text"]  # the question does find it, for a caller who may read it
    assert SECRET in json.dumps(hr.post("/v1/retrieve", json={"question": ASK}).json())

    reader = client("reader")
    seen = [reader.post("/v1/ask", json={"question": ASK, "generator": "extractive"}).text,
            reader.post("/v1/retrieve", json={"question": ASK, "k": 20}).text,
            reader.get("/v1/documents").text]
    with reader.stream("POST", "/v1/ask", json={"question": ASK, "stream": True}) as r:
        seen.append(r.read().decode())
    c = openai.OpenAI(base_url=service["url"] + "/v1", api_key=service["keys"]["reader"], max_retries=0)
    seen.append(c.chat.completions.create(model="extractive", messages=[{"role": "user", "content": ASK}]).model_dump_json())
    seen.append("".join(ch.model_dump_json() for ch in c.chat.completions.create(
        model="sculpt", messages=[{"role": "user", "content": ASK}], stream=True)))
    hr_id = service["hr_id"]
    file_r, gone_r = reader.get(f"/v1/documents/{hr_id}/file"), reader.get("/v1/documents/999999/file")
    editor = client("editor")  # an editor without hr
    delete_r, delete_gone = editor.delete(f"/v1/documents/{hr_id}"), editor.delete("/v1/documents/999999")
    seen += [file_r.text, delete_r.text, httpx.get(service["url"] + "/metrics").text]
    for text in seen:
        assert SECRET not in text and HR_TITLE not in text
    # an unreadable document answers exactly as a missing one
    assert file_r.status_code == gone_r.status_code == delete_r.status_code == delete_gone.status_code == 404
    assert file_r.json()["error"]["message"].replace(str(hr_id), "N") == gone_r.json()["error"]["message"].replace("999999", "N")
    assert hr_id in {d["id"] for d in hr.get("/v1/documents").json()["documents"]}  # and it is still there


def test_groups_narrow_never_widen(client):
    hr = client("hr")
    narrowed = hr.post("/v1/retrieve", json={"question": ASK, "groups": ["public"], "k": 20}).text
    assert SECRET not in narrowed
    docs = hr.get("/v1/documents", params={"groups": "public"}).json()["documents"]
    assert docs and all(HR_TITLE not in d["source_uri"] for d in docs)

    reader = client("reader")
    for r in [reader.post("/v1/ask", json={"question": ASK, "groups": ["hr"], "generator": "extractive"}),
              reader.post("/v1/retrieve", json={"question": ASK, "groups": ["public", "hr"]}),
              reader.post("/v1/chat/completions", json={"model": "extractive", "groups": ["hr"],
                                                        "messages": [{"role": "user", "content": ASK}]}),
              reader.get("/v1/documents", params={"groups": "hr"})]:
        assert r.status_code == 403, r.text
        assert "not among this key's groups" in r.json()["error"]["message"]


def test_the_sign_in_proxy_is_an_alternative_to_keys(service):
    url = service["url"]
    proof = {"X-Sculptrag-Proxy-Secret": PROXY_SECRET}
    as_hr = httpx.post(url + "/v1/retrieve", json={"question": ASK}, headers={**proof, "X-Forwarded-Groups": "hr"})
    assert as_hr.status_code == 200 and SECRET in as_hr.text
    as_public = httpx.post(url + "/v1/retrieve", json={"question": ASK, "k": 20},
                           headers={**proof, "X-Forwarded-Groups": "public"})
    assert as_public.status_code == 200 and SECRET not in as_public.text
    forged = httpx.post(url + "/v1/retrieve", json={"question": ASK}, headers={"X-Forwarded-Groups": "hr"})
    assert forged.status_code == 401 and SECRET not in forged.text  # groups without the proxy's proof: nobody
    wrong = httpx.post(url + "/v1/retrieve", json={"question": ASK},
                       headers={"X-Sculptrag-Proxy-Secret": "x" * 33, "X-Forwarded-Groups": "hr"})
    assert wrong.status_code == 401
    # editing behind the proxy needs a group in editor_groups ("staff")
    assert httpx.delete(url + "/v1/documents/999999", headers={**proof, "X-Forwarded-Groups": "hr"}).status_code == 403
    assert httpx.delete(url + "/v1/documents/999999", headers={**proof, "X-Forwarded-Groups": "hr,staff"}).status_code == 404
