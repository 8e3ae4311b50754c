"""One file -> a processed document (parsed, validated, chunked) or a rejection; and a pool that runs it.

`process_file` is what a worker does: sniff the type, pre-check, parse, validate, chunk. It never
raises for a bad file: it returns a Rejection with a reason. `ParsePool` runs it in worker processes
with a per-file time limit; a worker that hangs or dies (a crashing parser library) is replaced and the
file is rejected, so one bad file never stops the run. Workers get a second file while the main process
embeds the first, so parsing overlaps embedding.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

from pipeline.config import IngestSettings
from pipeline.errors import IngestError

from .chunk import Chunk, chunk_elements
from .embed import token_counter
from .parse import parse_file, precheck, sniff
from .validate import validate_parsed

log = logging.getLogger(__name__)


@dataclass
class Processed:
    path: str
    title: str
    media_type: str
    file_type: str
    pages: int | None
    chunks: list[Chunk]
    parse_s: float


@dataclass
class Rejection:
    path: str
    reason: str
    detail: str
    media_type: str = ""


@lru_cache(maxsize=4)
def _counter(model_path: str):
    return token_counter(Path(model_path))


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start a spawned worker without it re-running the parent's __main__ script.

    A spawned child imports the parent's __main__ from its file when __main__ has no import name. Hosts
    that run scripts as __main__ (Streamlit runs each page that way) would have that page run again in
    every worker. Workers need nothing from __main__ (their target lives in this module), so while a
    worker starts, __main__ is a bare module."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield
        return
    with _MAIN_LOCK:
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def process_file(path: str, size: int, settings: IngestSettings, tokenizer_path: str) -> Processed | Rejection:
    t0 = time.perf_counter()
    media_type = ""
    try:
        file_type, media_type = sniff(Path(path))
        pages = precheck(Path(path), file_type, size, settings)
        parsed = parse_file(Path(path), file_type, media_type, pages, settings)
        if parsed.pages and parsed.pages > settings.max_pages:
            raise IngestError("oversize", f"{parsed.pages} pages > limit {settings.max_pages}")
        doc = validate_parsed(parsed, settings)
        if doc.text_chars > settings.max_chars:
            raise IngestError("oversize", f"{doc.text_chars:,} characters of text > limit {settings.max_chars:,}")
        chunks = chunk_elements(doc.elements, _counter(tokenizer_path), settings)
        if not chunks:
            raise IngestError("empty", "no chunks could be made from the text")
        return Processed(path, doc.title, doc.media_type, doc.file_type, doc.pages, chunks, time.perf_counter() - t0)
    except IngestError as e:
        return Rejection(path, e.reason, e.detail, media_type)
    except MemoryError:
        return Rejection(path, "oversize", "ran out of memory while parsing", media_type)
    except Exception as e:  # a parser bug on one file must not stop the run
        log.debug("unexpected error on %s", path, exc_info=True)
        return Rejection(path, "parse error", f"{type(e).__name__}: {str(e)[:300]}", media_type)


def _warm_up(tokenizer_path: str) -> None:
    """Load what the first parse would load (unstructured, spaCy, the tokenizer) ahead of time."""
    from unstructured.nlp import tokenize

    from .parse import configure_unstructured

    configure_unstructured()
    tokenize._get_nlp()
    _counter(tokenizer_path)


def _worker(inbox, outbox, settings: IngestSettings, tokenizer_path: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parent = os.getppid()
    _warm_up(tokenizer_path)
    while True:
        try:
            task = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the ingest process died (e.g. SIGKILL): stop too
                return
            continue
        if task is None:
            return
        key, path, size = task
        outbox.put(("start", key, os.getpid()))
        outbox.put(("done", key, process_file(path, size, settings, tokenizer_path)))


class ParsePool:
    """Runs process_file over many files in `workers` processes, yielding results as they finish.

    Use as a context manager: workers start (and warm up) on entry, while the caller loads its own
    models, and stop on exit. With workers=0 files are processed inline, without time limits.
    """

    def __init__(self, settings: IngestSettings, tokenizer_path: str, workers: int) -> None:
        self.settings = settings
        self.tokenizer_path = tokenizer_path
        self.workers = workers
        self._ctx = mp.get_context("spawn")
        self._outbox = None
        self._slots: list[dict] = []

    def __enter__(self) -> "ParsePool":
        if self.workers:
            self._outbox = self._ctx.Queue()
            self._slots = [self._start_slot() for _ in range(self.workers)]
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (a no-op when none run)."""
        for slot in self._slots:
            slot["inbox"].put(None)
        for slot in self._slots:
            slot["proc"].join(2)
            if slot["proc"].is_alive():
                slot["proc"].kill()
        self._slots = []

    def _start_slot(self) -> dict:
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_worker, args=(inbox, self._outbox, self.settings, self.tokenizer_path), daemon=True
        )
        with _main_script_hidden():
            proc.start()
        return {"proc": proc, "inbox": inbox, "queued": [], "started": None}

    def run(self, files: Sequence[tuple[str, int]]) -> Iterator[Processed | Rejection]:
        if not self._slots:
            for path, size in files:
                yield process_file(path, size, self.settings, self.tokenizer_path)
            return
        slots = self._slots
        pending = list(enumerate(files))[::-1]  # pop() from the end keeps the given order
        by_key = dict(enumerate(files))
        done = 0

        def feed(slot: dict) -> None:
            while pending and len(slot["queued"]) < 2:  # one running, one waiting: overlap with embedding
                key, (path, size) = pending.pop()
                slot["queued"].append(key)
                slot["inbox"].put((key, path, size))

        for slot in slots:
            feed(slot)
        while done < len(files):
            try:
                kind, key, payload = self._outbox.get(timeout=0.5)
            except queue.Empty:
                kind = None
            if kind == "start":
                slot = next(s for s in slots if key in s["queued"])
                slot["started"] = (key, time.monotonic())
            elif kind == "done":
                slot = next(s for s in slots if key in s["queued"])
                slot["queued"].remove(key)
                slot["started"] = None
                done += 1
                feed(slot)
                yield payload
            for i, slot in enumerate(slots):
                failure = self._failure(slot)
                if failure is None:
                    continue
                key, detail = failure
                slot["proc"].kill()
                slot["proc"].join(5)
                requeue = [k for k in slot["queued"] if k != key]
                pending.extend((k, by_key[k]) for k in reversed(requeue))
                slots[i] = self._start_slot()
                feed(slots[i])
                if key is not None:
                    done += 1
                    yield Rejection(by_key[key][0], "parse error", detail)

    def _failure(self, slot: dict) -> tuple[int | None, str] | None:
        started = slot["started"]
        if started and time.monotonic() - started[1] > self.settings.parse_timeout_s:
            return started[0], f"parsing took longer than {self.settings.parse_timeout_s:.0f} s; refused"
        if not slot["proc"].is_alive():
            key = started[0] if started else (slot["queued"][0] if slot["queued"] else None)
            return key, f"the parser process crashed (exit code {slot['proc'].exitcode})"
        return None
