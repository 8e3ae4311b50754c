"""The generator queue over a real `sculptrag serve` (queue_size 2): a full queue is a 503 with Retry-After,
and a client that goes away frees its place, waiting or running. The `slow` test generator holds the
worker (40 states, 0.1 s apart)."""

from __future__ import annotations

import re
import threading
import time
from typing import ContextManager, Iterator

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)

QUESTION = "When does the canteen serve soup?"


def queue_depth(url: str) -> float:
    return float(re.search(r"^sculptrag_queue_depth (\S+)$", httpx.get(url + "/metrics").text, re.M).group(1))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def start_slow(client) -> tuple[Iterator[str], ContextManager[httpx.Response]]:
    """A streamed `slow` answer, open, with its first state read (so it holds the worker)."""
    ctx = client.stream("POST", "/v1/ask", json={"question": QUESTION, "generator": "slow", "stream": True})
    r = ctx.__enter__()
    assert r.status_code == 200
    lines = r.iter_lines()
    while not next(lines).startswith("event: state"):
        pass
    return lines, ctx  # (keep `lines`: dropping it would close the response, as a client going away does)


def test_full_queue_is_503_with_retry_after_and_a_dropped_stream_frees_the_worker(client, service):
    url, key = service["url"], service["keys"]["reader"]
    running, ctx = start_slow(client())
    results: list[httpx.Response] = []

    def ask() -> None:
        results.append(httpx.post(url + "/v1/ask", json={"question": QUESTION, "generator": "extractive"},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=60))

    waiting = [threading.Thread(target=ask) for _ in range(2)]
    for t in waiting:
        t.start()
    wait_for(lambda: queue_depth(url) == 2)
    full = client().post("/v1/ask", json={"question": QUESTION, "generator": "extractive"})
    assert full.status_code == 503
    assert full.headers["retry-after"] == "3" and "queue is full" in full.json()["error"]["message"]
    assert "sculptrag_queue_rejected_total 1.0" in httpx.get(url + "/metrics").text

    t0 = time.time()
    ctx.__exit__(None, None, None)  # the streaming client goes away mid-answer (about 4 s of it left)
    for t in waiting:
        t.join(30)
    assert time.time() - t0 < 3.0  # the two waiting answers did not wait for the rest of the slow one
    assert [r.status_code for r in results] == [200, 200]
    assert queue_depth(url) == 0


def test_a_waiting_client_that_goes_away_leaves_the_queue(client, service):
    url = service["url"]
    running, ctx = start_slow(client())
    try:
        with client().stream("POST", "/v1/ask", json={"question": QUESTION, "generator": "extractive",
                                                      "stream": True}) as waiting:
            assert waiting.status_code == 200
            wait_for(lambda: queue_depth(url) == 1)
        wait_for(lambda: queue_depth(url) == 0, timeout=5)  # gone while the slow answer still runs
        next(running)  # the slow answer still streams (StopIteration had it ended)
    finally:
        ctx.__exit__(None, None, None)
    ok = client().post("/v1/ask", json={"question": QUESTION, "generator": "extractive"})
    assert ok.status_code == 200
