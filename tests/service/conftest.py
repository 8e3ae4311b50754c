"""The real service for the tests: `sculptrag serve` in a subprocess on a free localhost port, over a small
store built here (two public notes, the bundled sample memo, an hr-only note holding SECRET).

Keys (made through the Store API; the CLI's own path is tested in test_keys.py): `reader` (public),
`editor` (public, editor), `hr` (public + hr, editor), `revoked`. Limits are small so tests can cross them.
Two extra generators come in through the "sculptrag.generators" entry point, as any plugin would
(tests/service/plugins): `broken` (cannot load) and `slow` (holds the queue for a few seconds).
The server also trusts a sign-in proxy (groups header + secret), the alternative to keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.service.auth import new_key
from pipeline import ingest
from pipeline.config import IngestSettings, Settings
from pipeline.store import Store

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).resolve().parent / "plugins"
SAMPLES = ROOT / "app" / "samples" / "docs"

SECRET = "Zanzibar-7741"  # appears only in the hr note: it must never reach a caller without hr
HR_TITLE = "salary-review"
PROXY_SECRET = "proxy-secret-for-tests-0123456789"
LIMITS = {"SCULPTRAG_SERVICE__MAX_QUESTION_CHARS": "500", "SCULPTRAG_SERVICE__MAX_K": "20",
          "SCULPTRAG_SERVICE__MAX_BODY_BYTES": "65536", "SCULPTRAG_SERVICE__MAX_UPLOAD_BYTES": "20000",
          "SCULPTRAG_SERVICE__QUEUE_SIZE": "2", "SCULPTRAG_SERVICE__MAX_BATCH": "4",
          "SCULPTRAG_SERVICE__RETRY_AFTER_S": "3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plugin_path(base: Path) -> str:
    """A folder that makes the test generators an installed distribution (dist-info + entry points)."""
    site = base / "site"
    info = site / "sculptrag_test_generators-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sculptrag-test-generators\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sculptrag.generators]\nbroken = sculptrag_test_generators:build_broken\n"
                                           "slow = sculptrag_test_generators:build_slow\n")
    return os.pathsep.join([str(site), str(PLUGINS)])


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """The running service: {"url", "keys", "store", "base", "roots", "hr_id"}."""
    base = tmp_path_factory.mktemp("service")
    docs = base / "docs"
    (docs / "public").mkdir(parents=True)
    (docs / "hr").mkdir()
    shutil.copy(SAMPLES / "fake-memo.pdf", docs / "public")
    (docs / "public" / "canteen.txt").write_text("The canteen opens at eight and serves soup on Fridays.\n")
    (docs / "public" / "parking.txt").write_text("Parking permits are renewed every January at the front desk.\n")
    (docs / "hr" / f"{HR_TITLE}.txt").write_text(
        f"Confidential salary review. The bonus code word is {SECRET}. Salaries rise four percent in March.\n")
    roots = base / "roots"
    (roots / "handbook").mkdir(parents=True)
    (roots / "handbook" / "holidays.txt").write_text("Staff get twenty-five days of paid holiday every year.\n")

    store_dir = base / "store"
    settings = Settings(store_dir=store_dir, ingest=IngestSettings(parse_workers=0))
    assert ingest([docs / "public"], settings, groups=["public"]).rejected == 0
    assert ingest([docs / "hr"], settings, groups=["hr"]).ingested == 1
    store = Store(settings)
    keys = {name: new_key(store, name, groups, editor=editor)[1] for name, groups, editor in [
        ("reader", ["public"], False), ("editor", ["public"], True), ("hr", ["public", "hr"], True),
        ("revoked", ["public", "hr"], True)]}
    store.revoke_api_key("revoked")
    hr_id = next(d.id for d in store.documents() if d.title == HR_TITLE or HR_TITLE in d.source_uri)

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **LIMITS,
               SCULPTRAG_INGEST__PARSE_WORKERS="0",
               SCULPTRAG_APP__FOLDER_ROOTS=json.dumps([str(roots)]),
               SCULPTRAG_APP__GROUPS_HEADER="X-Forwarded-Groups", SCULPTRAG_APP__PROXY_SECRET=PROXY_SECRET,
               SCULPTRAG_APP__EDITOR_GROUPS='["staff"]',
               PYTHONPATH=os.pathsep.join([_plugin_path(base), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with running_serve(["--store", str(store_dir)], env, base) as url:
        yield {"url": url, "keys": keys, "store": store_dir, "base": base, "roots": roots, "hr_id": hr_id,
               "log": base / "serve.log"}


@contextlib.contextmanager
def running_serve(args: list[str], env: dict, folder: Path, ready_in_a_row: int = 1, timeout: float = 180):
    """`sculptrag serve ARGS` on a free localhost port in a subprocess (its log: folder/serve.log), once /readyz
    said ready `ready_in_a_row` times in a row (several workers: each loads its own models); yields its URL and
    stops it after."""
    port = _free_port()
    exe = shutil.which("sculptrag")
    cmd = ([exe] if exe else [sys.executable, "-m", "app.cli"]) + ["serve", *args, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with open(folder / "serve.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            deadline, ready = time.time() + timeout, 0
            while ready < ready_in_a_row:
                try:
                    ready = ready + 1 if httpx.get(url + "/readyz", timeout=2).status_code == 200 else 0
                except httpx.HTTPError:
                    ready = 0
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"sculptrag serve did not become ready:\n{(folder / 'serve.log').read_text()[-3000:]}")
                if ready < ready_in_a_row:
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def client(service):
    """An httpx client for the service, with a key chosen per call: client(key="reader")."""
    clients: list[httpx.Client] = []

    def make(key: str | None = "reader", **headers: str) -> httpx.Client:
        auth = {"Authorization": f"Bearer {service['keys'][key]}"} if key else {}
        c = httpx.Client(base_url=service["url"], headers={**auth, **headers}, timeout=60)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
