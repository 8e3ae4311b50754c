"""Cold start, side by side: what a shell user waits for, each command in a fresh process, median of --repeats.

    python benchmarks/cold_start.py [--repeats 5] [--profile] [--no-service]

Rows: `sculptrag --help`; `sculptrag status`; the first `sculptrag ask` with each generator (sculpt,
extractive) and each embedding backend (torch, onnx); a one-shot `sculptrag ingest` of a few small sample
files into a fresh store, as chunks/s against raw encode of the same chunks in a warm process (target
>= 0.8x). The store is the demo store (the bundled sample corpus, as `sculptrag demo` builds it), made once
in a temporary folder. Targets (issue 17): `ask` with the bundled model under 3.5 s end to end.

Then the same `ask` and ingest from a fresh CLI process against a running `sculptrag serve` (`--api URL`) over
a copy of the demo store, started once and warmed by one ask and one upload, as a shared server is: the CLI
loads no models, the service parses and embeds (its uploaded documents are deleted between runs, untimed).
--no-service leaves these rows out.

--profile also runs one `ask` (sculpt, the default backend) under cProfile and prints where its seconds go:
the import time of the heavy packages and the slowest calls by cumulative time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SAMPLES = ROOT / "app" / "samples" / "docs"
QUESTION = "How many laptops were delivered on January 23, 2023?"
SMALL_FILES = 4  # the one-shot ingest: this many of the sample documents


def sculptrag_cmd() -> list[str]:
    exe = shutil.which("sculptrag")
    return [exe] if exe else [sys.executable, "-m", "app.cli"]


def timed(args: list[str], env: dict[str, str], repeats: int, fresh: Path | None = None,
          before: Callable[[], None] | None = None) -> tuple[float, list[float]]:
    """Median wall time of `sculptrag ARGS` in fresh processes (`fresh`: a folder removed before each run;
    `before`: called before each run, untimed)."""
    times = []
    for _ in range(repeats):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        if before is not None:
            before()
        t0 = time.perf_counter()
        done = subprocess.run(sculptrag_cmd() + args, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            sys.exit(f"sculptrag {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return statistics.median(times), times


def profile_ask(store: Path) -> None:
    """One `ask` in this process under cProfile: the slowest calls by cumulative time."""
    from typer.testing import CliRunner

    from app.cli import cli

    profiler = cProfile.Profile()
    profiler.enable()
    result = CliRunner().invoke(cli, ["ask", QUESTION, "--store", str(store)])
    profiler.disable()
    assert result.exit_code == 0, result.output
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


@contextlib.contextmanager
def running_service(store: Path, work: Path, warm: Path) -> Iterator[tuple[str, str]]:
    """`sculptrag serve` over `store` (serve_load's Server, with its default parse workers), warmed by one ask
    and one upload of `warm` (its models loaded, its parse workers started and their parsers imported: a service
    that has been up a while); yields (URL, an editor's key)."""
    from app.client import ServiceClient
    from app.service.auth import new_key
    from pipeline import Store
    from pipeline.config import Settings
    from serve_load import Server

    key = new_key(Store(Settings(store_dir=store)), "cold-start-bench", ["public"], editor=True)[1]
    server = Server(work, store, max_batch=1, threads=0, parse_workers=None)
    try:
        client = ServiceClient(server.url, key)
        client.ask(QUESTION)
        client.upload_paths([str(warm)], ["public"])
        client.close()
        yield server.url, key
    finally:
        server.close()


def delete_uploads(url: str, key: str, names: set[str]) -> None:
    """Delete the service's documents whose file names are `names` (between timed uploads of the same files)."""
    from app.client import ServiceClient

    client = ServiceClient(url, key)
    for d in client.documents():
        if d["file_name"] in names:
            client.delete_document(d["id"])
    client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="also profile one ask in this process")
    ap.add_argument("--no-service", dest="service", action="store_false",
                    help="leave out the rows against a running `sculptrag serve` (ask and ingest with --api)")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from ingest.chunk import embed_text
    from pipeline import Store, ingest
    from pipeline.config import EmbeddingSettings, Settings
    from pipeline.embedding import make_embedder

    work = Path(tempfile.mkdtemp(prefix="sculptrag-cold-"))
    store = work / "demo"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("SCULPTRAG_EMBEDDING__BACKEND", None)
    ingest([SAMPLES], Settings(store_dir=store), groups=["public"])
    make_embedder(EmbeddingSettings(backend="onnx")).warm_up()  # the export is made once per machine, not per start
    small = work / "small"
    small.mkdir()
    for f in sorted(p for p in SAMPLES.rglob("*") if p.is_file())[:SMALL_FILES]:
        shutil.copy(f, small / f.name)

    rows = []
    rows.append(("sculptrag --help", *timed(["--help"], env, args.repeats)))
    rows.append(("sculptrag status", *timed(["status", "--store", str(store)], env, args.repeats)))
    for generator in ("sculpt", "extractive"):
        for backend in ("torch", "onnx"):
            rows.append((f"sculptrag ask --generator {generator} (embedding: {backend})",
                         *timed(["ask", QUESTION, "--store", str(store), "--generator", generator],
                                {**env, "SCULPTRAG_EMBEDDING__BACKEND": backend}, args.repeats)))
    fresh = work / "fresh"
    ingest_rows = []
    for backend in ("torch", "onnx"):
        t, times = timed(["ingest", str(small), "--store", str(fresh)], {**env, "SCULPTRAG_EMBEDDING__BACKEND": backend},
                         args.repeats, fresh=fresh)
        embedder = make_embedder(EmbeddingSettings(backend=backend))
        embedder.warm_up()
        s = Store(Settings(store_dir=fresh))
        chunks = s.chunks(s.all_vectors()[0])
        texts = [embed_text(c.section, c.text, c.context or "") for c in chunks]
        embedder.encode(texts[:4])
        raw = []
        for _ in range(3):
            t0 = time.perf_counter()
            embedder.encode(texts)
            raw.append(time.perf_counter() - t0)
        ingest_rows.append((backend, len(texts), t, statistics.median(raw)))
        rows.append((f"sculptrag ingest {SMALL_FILES} small files, {len(texts)} chunks (embedding: {backend})", t, times))

    if args.service:  # the same commands against a running service: the CLI process loads no models
        served = work / "served"
        shutil.copytree(store, served)
        names = {f.name for f in small.iterdir()}
        kept = Store(Settings(store_dir=served))  # without the small files' documents: their upload is new work
        kept.delete_documents([d.id for d in kept.documents() if d.source_uri.rsplit("/", 1)[-1] in names])
        with running_service(served, work, small) as (url, key):
            api_env = {**env, "SCULPTRAG_API_KEY": key}
            rows.append(("sculptrag ask --api (a running service; sculpt)",
                         *timed(["ask", QUESTION, "--api", url, "--generator", "sculpt"], api_env, args.repeats)))
            t, times = timed(["ingest", str(small), "--api", url], api_env, args.repeats,
                             before=lambda: delete_uploads(url, key, names))
            rows.append((f"sculptrag ingest --api {SMALL_FILES} small files (a running service)", t, times))
            _, n, _, raw = next(r for r in ingest_rows if r[0] == "onnx")
            ingest_rows.append(("onnx, --api (a running service)", n, t, raw))

    table = Table(title=f"cold start: fresh processes, median of {args.repeats} (demo store; {os.cpu_count()} CPUs)")
    for col in ("command", "median s", "min s", "max s"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for name, med, times in rows:
        table.add_row(name, f"{med:.2f}", f"{min(times):.2f}", f"{max(times):.2f}")
    console = Console(width=150)
    console.print(table)
    t2 = Table(title="one-shot ingest against raw encode of its chunks (warm model)")
    for col in ("embedding", "chunks", "one-shot ingest chunks/s", "raw encode chunks/s", "ratio (target >= 0.8)"):
        t2.add_column(col, justify="left" if col == "embedding" else "right")
    for backend, n, t, raw in ingest_rows:
        t2.add_row(backend, str(n), f"{n / t:.1f}", f"{n / raw:.1f}", f"{(n / t) / (n / raw):.2f}")
    console.print(t2)
    if args.profile:
        profile_ask(store)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
