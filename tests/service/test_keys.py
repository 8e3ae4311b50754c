"""API keys: 401 without a valid one, the `sculptrag keys` commands (create prints the key once, list never
shows it, revoke ends it at once), and `sculptrag ask --api` asking the running service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from pipeline.config import Settings
from pipeline.store import Store

pytestmark = pytest.mark.timeout(300)


def sculptrag(*args: str, **env: str) -> subprocess.CompletedProcess:
    exe = shutil.which("sculptrag")
    cmd = ([exe] if exe else [sys.executable, "-m", "app.cli"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_no_wrong_or_revoked_key_is_401(client, service):
    body = {"question": "When does the canteen serve soup?", "generator": "extractive"}
    for c in (client(None), client("revoked")):
        r = c.post("/v1/ask", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(service["url"] + "/v1/ask", json=body, headers={"Authorization": "Bearer sr-not-a-key"})
    assert wrong.status_code == 401
    assert "revoked" in wrong.json()["error"]["message"]  # says what to do, the same for unknown and revoked


def test_keys_cli_create_list_revoke_and_ask_api(service):
    store = str(service["store"])
    made = sculptrag("keys", "create", "--name", "ci-bot", "--groups", "public", "--store", store)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sr-") and len(key) > 40
    stored = {k.name: k for k in Store(Settings(store_dir=service["store"])).api_keys()}["ci-bot"]
    assert stored.key_hash != key and key not in stored.key_hash  # only the hash is kept
    listed = sculptrag("keys", "list", "--store", store)
    assert "ci-bot" in listed.stdout and key not in listed.stdout and key[3:12] not in listed.stdout

    asked = sculptrag("ask", "When does the canteen serve soup?", "--api", service["url"], "--generator", "extractive",
                      "--json", SCULPTRAG_API_KEY=key)
    assert asked.returncode == 0, asked.stderr
    assert "Fridays" in json.loads(asked.stdout)["text"]

    revoked = sculptrag("keys", "revoke", "ci-bot", "--store", store)
    assert revoked.returncode == 0, revoked.stderr
    r = httpx.post(service["url"] + "/v1/retrieve", json={"question": "soup"}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    again = sculptrag("ask", "soup?", "--api", service["url"], SCULPTRAG_API_KEY=key)
    assert again.returncode == 2 and "401" in again.stderr
    assert sculptrag("keys", "create", "--name", "ci-bot", "--groups", "public", "--store", store).returncode == 2
