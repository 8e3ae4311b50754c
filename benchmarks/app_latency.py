"""What the app adds to a question's latency, side by side: the library call, the app's script (Streamlit
AppTest, in-process), and a real browser (Playwright driving Chromium against `sculptrag app`).

    python benchmarks/app_latency.py [--rounds 3] [--no-browser]

The bundled sample corpus is ingested into a temporary store; each of its questions is asked `--rounds`
times through:

- library: `RagPipeline.ask` (retrieval, sculpt, validation), warmed up;
- app script: the Ask page run by AppTest (the same pipeline, plus the page's rendering and the canvas);
- browser: typed into the Ask page in Chromium; the time from Enter to the first canvas frame on screen and
  to the final answer's verdict on screen, and the pipeline's own time for that answer (Answer.timings, as
  the answer shows it): the rest is the page's rerun, the websocket and the browser's rendering, on the same
  CPUs as the model.

Printed: the median and p90 seconds per question of each, and the ratio to the library call. Models load
before timing starts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SAMPLES = ROOT / "app" / "samples"
CHROMIUM = "/usr/bin/chromium"


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def library(store: Path, questions: list[str]) -> list[float]:
    from pipeline import RagPipeline, Settings

    rag = RagPipeline(Settings(store_dir=store))
    rag.ask(questions[0])  # load and warm up, untimed
    out = []
    for q in questions:
        t = time.perf_counter()
        rag.ask(q)
        out.append(time.perf_counter() - t)
    return out


def app_script(store: Path, questions: list[str]) -> list[float]:
    from streamlit.testing.v1 import AppTest

    os.environ["SCULPTRAG_STORE_DIR"] = str(store)
    at = AppTest.from_file(str(ROOT / "app" / "ui" / "main.py"), default_timeout=600)
    at.run()
    at.chat_input[0].set_value(questions[0]).run()  # load and warm up, untimed
    out = []
    for q in questions:
        t = time.perf_counter()
        at.chat_input[0].set_value(q).run()
        out.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    return out


def browser(store: Path, questions: list[str]) -> tuple[list[float], list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--store", str(store), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, final, inside = [], [], []
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                  "--disable-background-networking"])
            page = b.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"http://localhost:{port}/")
            for i, q in enumerate([questions[0], *questions]):  # the first one warms up, untimed
                n = page.locator('[data-testid="stChatMessage"]').count()
                page.evaluate("""() => { window.__first = null; if (window.__obs) window.__obs.disconnect();
                    window.__obs = new MutationObserver(() => { if (window.__first === null &&
                        document.querySelector('.sr-canvas')) window.__first = performance.now(); });
                    window.__obs.observe(document.body, {childList: true, subtree: true}); }""")
                box = page.get_by_placeholder("Ask a question about your documents")
                box.fill(q)
                page.evaluate("() => { window.__t0 = performance.now(); }")
                box.press("Enter")
                page.wait_for_function(f"(() => {{ const m = document.querySelectorAll('[data-testid=\"stChatMessage\"]');"
                                       f" return m.length >= {n + 2} && m[m.length - 1].querySelector('.sr-badge'); }})()")
                t = page.evaluate("() => [window.__first, performance.now(), window.__t0]")
                meta = page.locator('[data-testid="stChatMessage"]').last.locator(".sr-meta").first.inner_text()
                seconds = re.search(r"([0-9.]+) s(?: ·|$)", meta)
                if i:
                    if seconds:
                        inside.append(float(seconds.group(1)))
                    final.append((t[1] - t[2]) / 1000)
                    if t[0] is not None:
                        first.append((t[0] - t[2]) / 1000)
            b.close()
    finally:
        proc.terminate()
        proc.wait(20)
    return first, final, inside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    from pipeline import Settings, ingest

    questions = [q["question"] for q in json.loads((SAMPLES / "questions.json").read_text())] * args.rounds
    tmp = Path(tempfile.mkdtemp(prefix="sculptrag-app-bench-"))
    try:
        store = tmp / "store"
        ingest([SAMPLES / "docs"], Settings(store_dir=store))
        rows = [("library: RagPipeline.ask", library(store, questions))]
        rows.append(("app script (AppTest)", app_script(store, questions)))
        if not args.no_browser and Path(CHROMIUM).is_file():
            first, final, inside = browser(store, questions)
            rows.append(("browser: the pipeline's own time (in the app server)", inside))
            rows.append(("browser: first canvas frame", first))
            rows.append(("browser: answer on screen", final))
        lib = statistics.median(rows[0][1])
        print(f"\n{len(questions)} questions ({args.rounds} rounds of the {len(questions) // args.rounds} sample "
              f"questions), generator sculpt, {os.cpu_count()} CPUs\n")
        print("| path | n | median s | p90 s | median / library |")
        print("|---|---|---|---|---|")
        for name, xs in rows:
            if xs:
                med = statistics.median(xs)
                print(f"| {name} | {len(xs)} | {med:.2f} | {p90(xs):.2f} | {med / lib:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
