"""Prometheus metrics of one service process (prometheus_client, a registry per app: no global state).

Labels are only ever route templates ("/v1/documents/{document_id}"), methods, status codes, generator names
(registered ones: an unknown name is refused before it is counted), verdicts and ingest outcomes: never a
document's id, name or path, a group, a key or a question.

With `--workers N` the workers share their numbers through prometheus_client's multiprocess mode: `serve`
gives them a fresh folder in PROMETHEUS_MULTIPROC_DIR (or uses the one the operator set), each worker
writes its values there, and whichever worker answers /metrics reports the sums over all of them (the queue
depth: over the workers alive). One scrape target, whole-service numbers.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # set before the workers start (and import prometheus_client)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sculptrag_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("sculptrag_http_request_seconds", "time to the end of the answer (streams: to the "
                                 "last event)", ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("sculptrag_answers", "answers given, by generator and validation verdict",
                               ["generator", "verdict"], registry=r)
        self.queue_depth = Gauge("sculptrag_queue_depth", "answer jobs waiting for the generator", registry=r,
                                 multiprocess_mode="livesum")
        self.batch_size = Histogram("sculptrag_batch_size", "jobs per generator batch", buckets=(1, 2, 4, 8, 16, 32),
                                    registry=r)
        self.rejected = Counter("sculptrag_queue_rejected", "answer requests refused because the queue was full", registry=r)
        self.ingest_runs = Counter("sculptrag_ingest_runs", "ingest runs (uploads and server folders)", ["kind"], registry=r)
        self.ingest_files = Counter("sculptrag_ingest_files", "files seen by ingest runs, by outcome", ["status"], registry=r)

    def count_answer(self, generator: str, verdict: str) -> None:
        self.answers.labels(generator, verdict).inc()

    def count_ingest(self, kind: str, report) -> None:
        self.ingest_runs.labels(kind).inc()
        for status in ("ingested", "updated", "unchanged", "removed", "rejected", "skipped"):
            n = getattr(report, status, 0)
            if n:
                self.ingest_files.labels(status).inc(n)

    def render(self) -> tuple[bytes, str]:
        if MULTIPROCESS in os.environ:  # every worker's values, summed (module docstring)
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every answer and times it, by the route template that matched ("unmatched" otherwise)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            labels = (route, scope.get("method", ""), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - t0)
