"""The app in a real browser: `sculptrag app` on localhost, driven by Playwright in Debian's Chromium.

The browser reaches the app through a small sign-in proxy that sets each person's groups in a header, as
behind a company's proxy. Upload a shared document and one whose text is markup, ask questions, watch the
answer form on the canvas, open a citation's source, run an evaluation, and save a screenshot of each page (to $SCULPTRAG_SCREENSHOTS
when set: that is how docs/screenshots are made). Skips without Chromium or Playwright, unless
SCULPTRAG_REQUIRE_BROWSER=1 (CI sets it), where their absence fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("SCULPTRAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
HANDBOOK = "docs/debian-handbook-en/case-study.html"
GROUPS_HEADER = "X-Test-Groups"
PROXY_SECRET = "browser-test-proxy-secret-5f2c9a"  # what only the sign-in proxy sends (SCULPTRAG_APP__PROXY_SECRET)
SLOW_MS = 240_000  # what loads models or embeds (the first ask, an ingest, an evaluation) may take this long on 2 cores


def _require_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("SCULPTRAG_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    base = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = dict(os.environ, SCULPTRAG_APP__EVAL_DIR=str(base / "eval"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               # as behind a company's sign-in proxy: each request names its user's groups
               SCULPTRAG_APP__GROUPS_HEADER=GROUPS_HEADER, SCULPTRAG_APP__USER_HEADER="X-Test-User",
               SCULPTRAG_APP__PROXY_SECRET=PROXY_SECRET, SCULPTRAG_APP__EDITOR_GROUPS='["staff"]',
               SCULPTRAG_APP__FOLDER_ROOTS=json.dumps([str(base)]))
    exe = shutil.which("sculptrag")
    cmd = ([exe] if exe else [sys.executable, "-m", "app.cli"]) + ["app", "--store", str(base / "store"), "--port", str(port)]
    log = open(base / "app.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    url = f"http://localhost:{port}"  # the app itself; the browser goes through the proxies below
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"sculptrag app did not start:\n{(base / 'app.log').read_text()[-3000:]}")
            time.sleep(0.5)
        assert b"streamlit" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # `sculptrag app` became Streamlit
        ana = GroupsProxy(port, "public, staff", "ana")  # the person who runs the main test (staff edit)
        bo = GroupsProxy(port, "finance", "bo")  # someone whose groups hold no document
        # a local process talking to the app directly, naming the groups it wants, without the proxy's secret
        forger = GroupsProxy(port, "public, staff", "mallory", secret=None)
        yield {"url": f"http://localhost:{ana.port}", "url_bo": f"http://localhost:{bo.port}",
               "url_forged": f"http://localhost:{forger.port}", "base": base}
        for proxy in (ana, bo, forger):
            proxy.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.browser = browser
        pg.set_default_timeout(60_000)
        dialogs: list[str] = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.dialogs = dialogs
        yield pg
        browser.close()


# -- a sign-in proxy, as a company puts in front of the app ---------------------------------------------------
class GroupsProxy:
    """A reverse proxy on its own port that forwards to the app and sets GROUPS_HEADER on every request
    (dropping any the browser sent), with the groups of the "signed-in" person it was started for, and the
    proxy's secret that proves the request came through it: what an authenticating proxy does (with
    `secret=None`, what a forger does). It handles keep-alive requests with bodies and websocket upgrades
    (Streamlit reads its headers from the websocket's handshake, which a browser-side header option does
    not reach)."""

    def __init__(self, upstream_port: int, groups: str, user: str, secret: str | None = PROXY_SECRET) -> None:
        import asyncio
        import threading

        self.upstream_port, self.inject = upstream_port, [(GROUPS_HEADER, groups), ("X-Test-User", user)]
        if secret is not None:
            self.inject.append(("X-Sculptrag-Proxy-Secret", secret))
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _client(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[:-2]
                names = {n.lower() for n, _ in self.inject}
                kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(":", 1)[0].strip().lower() not in names]
                kept += [f"{n}: {v}" for n, v in self.inject]
                up_writer.write(("\r\n".join(kept) + "\r\n\r\n").encode("latin-1"))
                fields = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip() for ln in kept[1:] if ":" in ln}
                if fields.get("upgrade", "").lower() == "websocket":
                    await self._pipe(reader, up_writer)  # from here on, frames both ways
                    break
                length = int(fields.get("content-length", "0") or 0)
                if length:
                    up_writer.write(await reader.readexactly(length))
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            up_writer.close()
            back.cancel()
            writer.close()

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def shot(page, name: str, tmp: Path) -> None:
    folder = Path(os.environ.get("SCULPTRAG_SCREENSHOTS") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let the last rerun paint
    page.set_viewport_size({"width": 1280, "height": 1280})  # Streamlit scrolls inside the page: a taller window shows more
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def ask(page, question: str):
    """Type a question; return the new answer's chat message once its verdict shows. Records whether the
    denoising canvas appeared while the answer formed."""
    before = page.locator('[data-testid="stChatMessage"]').count()
    page.evaluate("""() => { window.__canvas = false;
        new MutationObserver(() => { if (document.querySelector('.sr-canvas')) window.__canvas = true; })
            .observe(document.body, {childList: true, subtree: true}); }""")
    box = page.get_by_placeholder("Ask a question about your documents")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('[data-testid=\"stChatMessage\"]').length >= {before + 2}"
                           " && document.querySelectorAll('.sr-badge').length > 0", timeout=SLOW_MS)
    page.wait_for_function("(() => { const m = document.querySelectorAll('[data-testid=\"stChatMessage\"]');"
                           " return m[m.length - 1].querySelector('.sr-badge') !== null; })()", timeout=SLOW_MS)
    return page.locator('[data-testid="stChatMessage"]').last


def test_ingest_ask_cite_evaluate_in_a_real_browser(server, page, shared_data, markup, tmp_path):
    url, base = server["url"], server["base"]
    notes = base / "portal-release-notes.txt"
    notes.write_text(markup, encoding="utf-8")

    # Documents: upload a shared document and the markup one, ingest with progress
    page.goto(url + "/documents")
    page.get_by_text("Add documents").wait_for()
    who = page.locator('[data-testid="stSidebar"] .sr-meta')
    who.wait_for()
    assert "ana" in who.inner_text() and "public, staff" in who.inner_text()  # who the proxy says
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        [str(shared_data / HANDBOOK), str(notes)])
    uploader = page.locator('[data-testid="stFileUploader"]')
    uploader.get_by_text("case-study.html").wait_for()
    uploader.get_by_text("notes.txt").wait_for()  # (the uploader shortens long names)
    page.get_by_role("button", name="Ingest the uploaded files").click()
    page.get_by_text("Last ingest").wait_for(timeout=SLOW_MS)
    page.get_by_text("Your documents").wait_for()
    page.locator('[data-testid="stDataFrame"]').last.wait_for()
    assert "Falcot" in page.locator("body").inner_text() or page.locator('[data-testid="stDataFrame"]').count() >= 2
    shot(page, "documents", tmp_path)

    # Ask: the answer forms on the canvas, then shows with its citations and verdict
    page.get_by_role("link", name="Ask").click()
    msg = ask(page, "How many employees work at the Falcot Corp facility in Saint-Étienne?")
    assert page.evaluate("window.__canvas"), "the denoising canvas never showed"
    text = msg.locator(".sr-answer").inner_text()
    assert "150" in text and "[1]" in text, text
    verdict = msg.locator(".sr-badge").first.inner_text().strip()
    assert verdict.startswith(("✓ Validation PASS", "! Validation WARN")), verdict  # (WARN: the markup passage)
    cite = msg.get_by_role("button", name="[1]", exact=False).first
    cite.click()
    source = page.locator(".sr-passage")
    source.wait_for()
    assert any("150" in mark for mark in source.locator("mark").all_inner_texts())  # every quote is highlighted
    with page.expect_download() as download:  # the file behind the citation
        page.get_by_role("button", name="Open the file").click()
    assert download.value.suggested_filename == "case-study.html"
    assert Path(download.value.path()).read_bytes() == (shared_data / HANDBOOK).read_bytes()
    shot(page, "ask", tmp_path)

    # a document whose text is markup shows as text, and runs nothing
    msg = ask(page, "What is the greeting banner of the intranet portal?")
    msg.get_by_role("button", name="Release notes", exact=False).first.click()
    passage = msg.locator(".sr-passage")
    passage.wait_for()
    assert "<script>alert('pwned')</script>" in passage.inner_text()
    assert page.locator(".sr-passage script, .sr-passage img").count() == 0
    label = msg.get_by_role("button", name="Release notes", exact=False).first  # the title, Markdown and all
    assert "**intranet**" in label.inner_text() and label.locator("img").count() == 0
    assert page.dialogs == []

    # Settings
    page.get_by_role("link", name="Settings").click()
    page.get_by_text("Passages retrieved (k)").wait_for()
    shot(page, "settings", tmp_path)

    # Evaluate: run one (your own questions) and see the report
    corpus = base / "eval-corpus"
    corpus.mkdir()
    shutil.copy(shared_data / HANDBOOK, corpus / "case-study.html")
    questions = base / "falcot.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "How many employees work at the Falcot Corp facility in Saint-Étienne?", "gold_answer": "150",
         "gold_sources": ["case-study.html"]},
        {"question": "Who is the CEO of Falcot Corp?", "answerable": False},
    ]))
    page.get_by_role("link", name="Evaluate").click()
    page.get_by_text("Run an evaluation").click()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Dataset").locator("input").click()
    page.get_by_role("option", name="your own questions", exact=False).click()
    page.get_by_label("Question file").fill(str(questions))
    page.get_by_label("Question file").press("Enter")
    page.get_by_label("Its documents (folder)").fill(str(corpus))
    page.get_by_label("Its documents (folder)").press("Enter")
    page.get_by_role("button", name="Run").click()
    page.get_by_text("Quality vs latency").wait_for(timeout=SLOW_MS)
    page.locator('[data-testid="stImage"] img').first.wait_for()  # the quality-vs-latency plot
    assert (base / "eval" / "falcot" / "report.json").is_file()
    shot(page, "evaluate", tmp_path)


def test_groups_come_from_the_proxy_header(server, page):
    """Another person, whose proxy header names only a group no document has, sees and retrieves nothing,
    even after the first test ingested documents for public."""
    ctx = page.browser.new_context(viewport={"width": 1280, "height": 900})
    other = ctx.new_page()
    other.set_default_timeout(60_000)
    other.goto(server["url_bo"] + "/documents")
    other.get_by_text("There are no documents you can read yet").wait_for()
    who = other.locator('[data-testid="stSidebar"] .sr-meta')
    who.wait_for()
    assert "bo" in who.inner_text() and "finance" in who.inner_text()
    other.goto(server["url_bo"] + "/")
    box = other.get_by_placeholder("Ask a question about your documents")
    box.fill("How many employees work at the Falcot Corp facility in Saint-Étienne?")
    box.press("Enter")
    other.locator(".sr-answer").wait_for(timeout=SLOW_MS)
    assert "150" not in other.locator(".sr-answer").inner_text()
    assert other.locator('[data-testid="stChatMessage"] button:has-text("[1]")').count() == 0
    ctx.close()


def test_a_forged_groups_header_without_the_proxy_secret_reads_nothing(server, page):
    """A client that reaches the app's port directly (HTTP and websocket) naming ana's groups, but without
    the proxy's secret, is anonymous: no groups, no documents, no editing, no reports."""
    ctx = page.browser.new_context(viewport={"width": 1280, "height": 900})
    other = ctx.new_page()
    other.set_default_timeout(60_000)
    other.goto(server["url_forged"] + "/documents")
    other.get_by_text("There are no documents you can read yet").wait_for()
    who = other.locator('[data-testid="stSidebar"] .sr-meta')
    who.wait_for()
    assert "anonymous" in who.inner_text() and "groups: none" in who.inner_text() and "mallory" not in who.inner_text()
    assert other.get_by_text("Add documents").count() == 0
    assert "Falcot" not in other.locator("body").inner_text()
    other.goto(server["url_forged"] + "/evaluate")
    other.get_by_text("No reports for your groups yet", exact=False).wait_for()
    ctx.close()
