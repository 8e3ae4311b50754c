"""A store for the app tests: the bundled sample corpus (group public), a document only group hr may read,
and one whose text is markup; the app runs against it with the local user in both groups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline import ingest
from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "ui" / "main.py"
SAMPLES = ROOT / "app" / "samples" / "docs"

SECRET = ("Board minutes, March 2026. The merger with Quillfeather Ltd closes on 14 September 2026. "
          "The purchase price for Quillfeather is 48 million euros, paid in cash.")
MARKUP = ("Release notes for the **intranet** portal ![logo](https://tracker.example/p.png)\n\n"
          "The portal's greeting banner is <script>alert('pwned')</script> rendered on every page. "
          "Its logo is <img src=x onerror=alert(1)> and its footer links to <a href=\"javascript:alert(2)\">help</a>.")


@pytest.fixture(scope="session")
def markup() -> str:
    """Document text full of markup that must show as text."""
    return MARKUP


@pytest.fixture(scope="session")
def app_env(tmp_path_factory):
    """Environment for AppTest runs (the app reads its Settings from SCULPTRAG_... variables)."""
    base = tmp_path_factory.mktemp("app")
    docs = base / "docs"
    shutil.copytree(SAMPLES, docs / "public")
    (docs / "hr").mkdir()
    (docs / "hr" / "board-minutes.txt").write_text(SECRET, encoding="utf-8")
    (docs / "public" / "portal-release-notes.txt").write_text(MARKUP, encoding="utf-8")
    store = base / "store"
    settings = Settings(store_dir=store)
    report = ingest([docs / "public"], settings, groups=["public"])
    assert report.rejected == 0, report.rejections()
    ingest([docs / "hr"], settings, groups=["hr"])
    env = {
        "SCULPTRAG_STORE_DIR": str(store),
        "SCULPTRAG_APP__USER_GROUPS": '["public", "hr"]',
        "SCULPTRAG_APP__EVAL_DIR": str(base / "eval"),
        "SCULPTRAG_APP__FOLDER_ROOTS": json.dumps([str(base)]),  # folder ingest and own eval files: only under here
    }
    return {"env": env, "base": base, "store": store, "main": MAIN}


@pytest.fixture
def app(app_env, monkeypatch):
    """A fresh AppTest session (the models and store stay loaded between tests: one Services per process)."""
    from streamlit.testing.v1 import AppTest

    for k, v in app_env["env"].items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(MAIN), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at
