"""`sculptrag serve --workers 2`: /metrics reports the whole service, whichever worker answers the scrape
(prometheus_client's multiprocess mode; app/service/metrics.py)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from .conftest import running_serve

pytestmark = pytest.mark.slow


def _healthz_count(text: str) -> float:
    m = re.search(r'^sculptrag_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _healthz_by_worker(folder: Path) -> dict[str, float]:
    """/healthz answers counted by each worker, read from its own values file."""
    from prometheus_client.mmap_dict import MmapedDict

    out = {}
    for path in folder.glob("counter_*.db"):
        out[path.stem.split("_")[1]] = sum(value for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
                                           if '"/healthz"' in key and "sculptrag_http_requests" in key
                                           and not key.startswith('["sculptrag_http_requests_created'))
    return out


def test_metrics_of_two_workers_are_summed(service, tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SCULPTRAG_INGEST__PARSE_WORKERS="0",
               SCULPTRAG_GENERATOR="extractive", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    # both workers loaded: several readiness answers in a row
    with running_serve(["--store", str(service["store"]), "--workers", "2"], env, tmp_path, ready_in_a_row=6,
                       timeout=240) as url:
        sent = 0
        while sent < 12 or len([n for n in _healthz_by_worker(metrics_dir).values() if n]) < 2:
            with httpx.Client() as c:  # a new connection each time: the workers take turns accepting
                assert c.get(url + "/healthz").status_code == 200
            sent += 1
            assert sent < 200, "one worker answered every request"
        # a request is counted once its answer has been sent (MetricsMiddleware): the client may read the answer
        # first, so the last count can land a moment later (11 of 12 on a busy machine)
        deadline = time.monotonic() + 10
        while sum((by_worker := _healthz_by_worker(metrics_dir)).values()) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(by_worker) == 2 and sum(by_worker.values()) == sent and min(by_worker.values()) < sent
        for _ in range(6):  # every scrape, whichever worker answers it, reports both workers' requests
            with httpx.Client() as c:
                assert _healthz_count(c.get(url + "/metrics").text) == sent
