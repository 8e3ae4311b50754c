"""The service under load, side by side: answers/s and p50/p95 latency of `POST /v1/ask` at concurrency 1, 4
and 16, one at a time (`MAX_BATCH=1`) against batched (`MAX_BATCH=16`), for the bundled sculpt model and for
the LLaDA-shaped model of benchmarks/sampler_bench.py, in one run.

Everything stays on this machine: a store is built in a temporary folder from RGB's passages
(../shared/data/qa/rgb: the positive and negative passages of the first --requests questions, one text file
each), a key is made, and `sculptrag serve` is started on a free localhost port, once per mode (the queue's
batch size is a start-up setting). The LLaDA-shaped model (random weights, seed 0; 128-token answers, 64
steps, prefix cache) is served as a plugin through the "sculptrag.generators" entry point
(benchmarks/serve_plugins), as any installed generator would be.

For each model and concurrency c, --requests questions are asked by c client threads (each sends its next
question when its answer arrives): answers/s = requests / wall time; latency per request from send to answer,
queue wait included. Each model gets one warm-up request first. "same answers": the share of batched
answers whose text equals the one-at-a-time answer to the same question. The loop is bounded (--requests per
cell) and talks to 127.0.0.1 only. Threads in the server: --threads (torch's and numpy's BLAS; 1 by default,
steadier on a shared machine and the setting of benchmarks/batch_generate.py; 0 leaves their defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sampler_bench import rgb_rows, table  # noqa: E402

PLUGINS = ROOT / "benchmarks" / "serve_plugins"
HEADERS = ("model", "concurrency", "mode", "answers/s", "p50 latency s", "p95 latency s", "x one at a time",
           "mean batch", "same answers")
MODES = {"one at a time": 1, "batched": 16}


def build_store(base: Path, rows: list[dict]) -> tuple[Path, str]:
    """A store over the rows' passages (one text file per passage) and a reader key for it."""
    from app.service.auth import new_key
    from pipeline import ingest
    from pipeline.config import IngestSettings, Settings
    from pipeline.store import Store

    docs = base / "docs"
    docs.mkdir(parents=True)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        for j, text in enumerate(list(row["positive"]) + list(row["negative"])):
            if text not in seen:
                seen.add(text)
                (docs / f"q{i:03d}-{j:02d}.txt").write_text(text + "\n")
    settings = Settings(store_dir=base / "store", ingest=IngestSettings(parse_workers=0))
    report = ingest([docs], settings, groups=["public"])
    if report.rejected:
        sys.exit(f"the benchmark store rejected {report.rejected} files")
    _, key = new_key(Store(settings), "load", ["public"], editor=False)
    return base / "store", key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plugin_path(base: Path) -> str:
    """A folder that makes the LLaDA-shaped generator and sculpt-torch installed plugins (dist-info + entry
    points)."""
    info = base / "site" / "sculptrag_bench_generators-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sculptrag-bench-generators\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sculptrag.generators]\nllada-shaped = sculptrag_bench_generators:build_llada_shaped\n"
        "sculpt-torch = sculptrag_bench_generators:build_sculpt_torch\n")
    return os.pathsep.join([str(base / "site"), str(PLUGINS)])


class Server:
    """`sculptrag serve` in a subprocess on a free localhost port, ready when /readyz says so. `parse_workers`:
    the service's parse workers (None: its default, one per core; this benchmark's stores need none)."""

    def __init__(self, base: Path, store: Path, max_batch: int, threads: int, parse_workers: int | None = 0) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   SCULPTRAG_SERVICE__MAX_BATCH=str(max_batch), SCULPTRAG_SERVICE__BATCH_WAIT_MS="20",
                   PYTHONPATH=os.pathsep.join([_plugin_path(base), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if parse_workers is not None:
            env["SCULPTRAG_INGEST__PARSE_WORKERS"] = str(parse_workers)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        exe = shutil.which("sculptrag")
        cmd = ([exe] if exe else [sys.executable, "-m", "app.cli"]) + [
            "serve", "--store", str(store), "--port", str(self.port)]
        self.log_path = base / f"serve-{max_batch}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=base)
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                sys.exit(f"sculptrag serve did not become ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.5)

    def batch_sizes(self) -> tuple[float, float]:
        """(sum, count) of the sculptrag_batch_size histogram so far."""
        total = count = 0.0
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith("sculptrag_batch_size_sum"):
                total = float(line.split()[-1])
            elif line.startswith("sculptrag_batch_size_count"):
                count = float(line.split()[-1])
        return total, count

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def ask(client: httpx.Client, url: str, key: str, question: str, generator: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = client.post(url + "/v1/ask", headers={"Authorization": f"Bearer {key}"}, timeout=600,
                    json={"question": question, "k": 5, "generator": generator})
    if r.status_code != 200:
        raise RuntimeError(f"{generator}: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - t0, r.json()["text"]


def load(server: Server, key: str, questions: list[str], generator: str, concurrency: int) -> dict:
    """All questions asked by `concurrency` client threads; per-request latency, wall time, answers."""
    before = server.batch_sizes()
    with httpx.Client() as client, ThreadPoolExecutor(concurrency) as pool:
        t0 = time.perf_counter()
        done = list(pool.map(lambda q: ask(client, server.url, key, q, generator), questions))
        wall = time.perf_counter() - t0
    after = server.batch_sizes()
    batches = after[1] - before[1]
    return {"latency": [d[0] for d in done], "texts": [d[1] for d in done], "wall": wall,
            "mean_batch": (after[0] - before[0]) / batches if batches else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sculpt,llada-shaped", help="comma-separated generator names")
    ap.add_argument("--requests", type=int, default=16, help="questions per (model, concurrency, mode) cell")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server (0: torch's default)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = rgb_rows()[: args.requests]
    questions = [r["query"] for r in rows]

    base = Path(tempfile.mkdtemp(prefix="sculptrag-serve-load-"))
    try:
        t0 = time.perf_counter()
        store, key = build_store(base, rows)
        print(f"store: {len(questions)} questions' passages ingested in {time.perf_counter() - t0:.0f} s", flush=True)
        cells: dict[tuple[str, int, str], dict] = {}
        for mode, max_batch in MODES.items():
            server = Server(base, store, max_batch, args.threads)
            try:
                with httpx.Client() as client:
                    for model in models:
                        ask(client, server.url, key, questions[0], model)  # loads and warms the model
                for model in models:
                    for c in levels:
                        cells[model, c, mode] = load(server, key, questions, model, c)
                        cell = cells[model, c, mode]
                        print(f"  {model} c={c} {mode}: {len(questions) / cell['wall']:.2f} answers/s", flush=True)
            finally:
                server.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    out = []
    for model in models:
        for c in levels:
            one = cells[model, c, "one at a time"]
            for mode in MODES:
                cell = cells[model, c, mode]
                rate = len(questions) / cell["wall"]
                same = (None if mode == "one at a time" else
                        sum(a == b for a, b in zip(one["texts"], cell["texts"])) / len(questions))
                out.append({"model": model, "concurrency": c, "mode": mode, "answers_per_s": rate,
                            "p50_s": float(np.percentile(cell["latency"], 50)),
                            "p95_s": float(np.percentile(cell["latency"], 95)),
                            "speedup": rate / (len(questions) / one["wall"]), "mean_batch": cell["mean_batch"],
                            "same_answers": same})
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    threads = args.threads or "torch's default"
    table(f"POST /v1/ask under load on localhost ({len(questions)} requests per cell, server torch threads: "
          f"{threads})",
          [(r["model"], r["concurrency"], r["mode"], f"{r['answers_per_s']:.2f}", f"{r['p50_s']:.2f}",
            f"{r['p95_s']:.2f}", f"{r['speedup']:.2f}", f"{r['mean_batch']:.1f}",
            "-" if r["same_answers"] is None else f"{r['same_answers']:.2f}") for r in out], HEADERS)


if __name__ == "__main__":
    main()
