"""One file -> a processed document (parsed, validated, chunked) or a rejection; and a pool that runs it.

`process_file` is what a worker does: sniff the type, pre-check, parse, validate, chunk. It never
raises for a bad file: it returns a Rejection with a reason. `ParsePool` runs it in worker processes
with a per-file time limit (`parse_timeout_s` + `parse_timeout_s_per_mb` x size) and a per-file memory
limit (RLIMIT_AS set to what the worker maps when the file starts + `parse_memory_mb`, lifted again
before the result is sent); a worker that hangs or dies (a crashing parser library, an allocation that
failed at the limit) is replaced and the file is rejected with a reason that says which limit it hit,
so one bad file never stops the run. Workers get a second file while the main process embeds the
first, so parsing overlaps embedding. Inline (workers=0) there are no time or memory limits.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing as mp
import os
import queue
import resource
import signal
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

from pipeline.config import IngestSettings
from pipeline.errors import IngestError
from pipeline.spawn import main_script_hidden

from .chunk import Chunk, chunk_elements
from pipeline.embedding import token_counter
from .metadata import DocumentMeta
from .parse import gunzipped, gzipped, parse_file, precheck, sniff, utf8_safe
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
    metadata: DocumentMeta | None = None  # title, date, author, entity, period the document states


@dataclass
class Rejection:
    path: str
    reason: str
    detail: str
    media_type: str = ""
    retry: bool = False  # the file was not parsed (its Ray task failed): reported, not quarantined

    def __post_init__(self) -> None:
        self.detail = utf8_safe(self.detail)  # an error message may quote a non-UTF-8 file name


@lru_cache(maxsize=4)
def _counter(model_path: str):
    return token_counter(Path(model_path))


def process_file(
    path: str, size: int, settings: IngestSettings, tokenizer_path: str, memory_mb: int = 0
) -> Processed | Rejection:
    """Parse, validate and chunk one file; never raises for a bad file.

    With `memory_mb` (parse workers only: it sets this process's RLIMIT_AS), everything after sniffing
    runs with at most that much memory on top of what the process maps once its parser is imported."""
    t0 = time.perf_counter()
    media_type = ""
    try:
        with contextlib.ExitStack() as stack:
            source = Path(path)
            file_type, media_type = sniff(source)
            if file_type == "UNK" and gzipped(source):  # read as the file it holds
                source = stack.enter_context(gunzipped(source, size, settings))
                file_type, media_type = sniff(source)
                size = source.stat().st_size
            return _process(path, source, size, file_type, media_type, settings, tokenizer_path, memory_mb, t0)
    except IngestError as e:
        if memory_mb and _out_of_memory(e):  # a parser that wrapped the MemoryError
            return Rejection(path, "oversize", _memory_detail(memory_mb), media_type)
        return Rejection(path, e.reason, e.detail, media_type)
    except MemoryError:
        return Rejection(path, "oversize", _memory_detail(memory_mb), media_type)
    except Exception as e:  # a parser bug on one file must not stop the run
        if memory_mb and _out_of_memory(e):
            return Rejection(path, "oversize", _memory_detail(memory_mb), media_type)
        log.debug("unexpected error on %s", path, exc_info=True)
        return Rejection(path, "parse error", f"{type(e).__name__}: {str(e)[:300]}", media_type)


def _process(path: str, source: Path, size: int, file_type: str, media_type: str, settings: IngestSettings,
             tokenizer_path: str, memory_mb: int, t0: float) -> Processed:
    """process_file's work on the file to read (`source`: `path` itself, or what its gzip stream holds)."""
    count_tokens = _counter(tokenizer_path)
    if memory_mb:
        preload_partitioner(file_type)  # importing maps libraries: not this file's memory
    with memory_limit(memory_mb):
        pages = precheck(source, file_type, size, settings)
        parsed = parse_file(source, file_type, media_type, pages, settings)
        if parsed.pages and parsed.pages > settings.max_pages:
            raise IngestError("oversize", f"{parsed.pages} pages > limit {settings.max_pages}")
        doc = validate_parsed(parsed, settings)
        if doc.text_chars > settings.max_chars:
            raise IngestError("oversize", f"{doc.text_chars:,} characters of text > limit {settings.max_chars:,}")
        chunks = chunk_elements(doc.elements, count_tokens, settings, parsed.metadata)
    if not chunks:
        raise IngestError("empty", "no chunks could be made from the text")
    return Processed(
        path, doc.title, doc.media_type, doc.file_type, doc.pages, chunks, time.perf_counter() - t0, parsed.metadata
    )


def keep_torch_out(settings: IngestSettings) -> None:
    """Make `import torch` fail in this parse worker when nothing it runs needs torch: spaCy's thinc imports
    torch whenever it is installed (1.3 s of every worker's start, of a one-shot ingest's critical path),
    though spaCy's tagger and every partitioner under the fast PDF strategy run without it (the 213 example
    documents parse to the same chunks either way). The other strategies (auto, hi_res, ocr_only) may run
    unstructured's layout and table models, so they keep it; a worker that has torch already keeps it."""
    if settings.pdf_strategy == "fast" and "torch" not in sys.modules:
        sys.modules["torch"] = None  # (Python's own way to make an import raise ImportError)


def _warm_up(tokenizer_path: str) -> None:
    """Load what every parse needs (unstructured, the tokenizer) ahead of time; spaCy's tagger waits for a
    file that needs it (`needs_tagger`)."""
    from .parse import configure_unstructured

    configure_unstructured()
    _counter(tokenizer_path)(["warm up"])  # the tokenizer's thread pool starts here, not under a file's limit


# File types unstructured reads without spaCy's tagger (its title/narrative heuristics never run on them:
# HTML labels come from `parse.narrative_by_look`, and these others are read as HTML or as table cells).
# Checked over the shared example documents: every other type loads it.
TAGGER_FREE = frozenset({"HTML", "MD", "RST", "ORG", "EPUB", "RTF", "CSV", "TSV"})


def needs_tagger(path: str) -> bool:
    """Whether parsing the file will load spaCy's tagger (False for a file that cannot be sniffed: its
    parse is refused before any tagger runs)."""
    try:
        return sniff(Path(path))[0] not in TAGGER_FREE
    except Exception:  # noqa: BLE001 - process_file reports it
        return False


def load_tagger() -> None:
    """Import spaCy and load the tagger unstructured's heuristics use (1.4 s; once per process)."""
    from unstructured.nlp import tokenize

    from .parse import configure_unstructured

    configure_unstructured()
    tokenize._get_nlp()


def preload_partitioner(file_type: str) -> None:
    """Import unstructured's partitioner for `file_type` (the PDF one maps ~1 GB of libraries)."""
    import importlib

    from unstructured.file_utils.model import FileType

    ft = FileType.__members__.get(file_type)
    if ft is not None and ft.is_partitionable:
        with contextlib.suppress(ImportError):  # a missing extra is the parser's to report
            importlib.import_module(ft.partitioner_module_qname)


def _out_of_memory(e: BaseException | None) -> bool:
    """Whether an error, or one it wraps, is what an allocation refused at the memory limit leaves behind."""
    seen = 0
    while e is not None and seen < 10:
        text = str(e).lower()
        if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM):
            return True
        if isinstance(e, (ImportError, OSError, RuntimeError)) and any(
            s in text for s in ("cannot allocate memory", "failed to map segment", "can't start new thread")
        ):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _memory_detail(memory_mb: int) -> str:
    if not memory_mb:
        return "ran out of memory while parsing"
    return f"parsing needed more than {memory_mb:,} MB of memory (the parse_memory_mb limit)"


def mapped_bytes(pid: int | str = "self") -> int:
    """Address space a process maps now (VmSize, what RLIMIT_AS limits); 0 where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next((line for line in f if line.startswith("VmSize:")), "")
    except OSError:
        return 0
    return int(line.split()[1]) * 1024 if line else 0


@contextlib.contextmanager
def memory_limit(memory_mb: int) -> Iterator[int]:
    """While inside, allocations beyond what the process maps now + `memory_mb` fail (MemoryError in Python,
    an abort in some native code); yields the limit in bytes (0: none: memory_mb is 0 or /proc is missing)."""
    now = mapped_bytes()
    if not memory_mb or not now:
        yield 0
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = now + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _worker(inbox, outbox, settings: IngestSettings, tokenizer_path: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with contextlib.suppress(OSError):  # a process group of its own, with the programs a parser runs (pandoc
        os.setpgid(0, 0)  # for org, rst, epub, odt, rtf), so that stopping the worker stops them too (`_stop`)
    parent = os.getppid()
    keep_torch_out(settings)
    _warm_up(tokenizer_path)
    tagger = False
    while True:
        try:
            task = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the ingest process died (e.g. SIGKILL): stop too
                return
            continue
        if task is None:  # done: flush what was sent, then exit without the interpreter's teardown of
            outbox.close()  # unstructured and spaCy (~1.5 s that every one-shot ingest waited for);
            outbox.join_thread()  # a worker holds nothing else to save
            os._exit(0)
        key, path, size = task
        if not tagger and needs_tagger(path):  # loaded outside the file's time and memory limits, and
            load_tagger()  # never by a worker that reads only HTML (1.4 s of a one-shot ingest's start)
            tagger = True
        outbox.put(("start", key, os.getpid()))
        try:
            result = process_file(path, size, settings, tokenizer_path, settings.parse_memory_mb)
        except MemoryError:  # raised again while a rejection was being made, close to the limit
            result = Rejection(path, "oversize", _memory_detail(settings.parse_memory_mb))
        outbox.put(("done", key, result))  # sent without the limit: pickling a large result needs memory


def _stop(proc) -> None:
    """Kill a parse worker and every program it started: a parser that hangs is often one the worker runs
    (pandoc spun at 100% of a core on a four-line org table; killed alone, the worker left it running,
    adopted by init, after the ingest had reported the file). The worker leads its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives a worker that already died, with what it ran
    proc.kill()
    proc.join(5)


def _soft_memory_limit(pid: int) -> int:
    """A worker's RLIMIT_AS while it parses a file under one (0: none, or unknown)."""
    try:
        soft = resource.prlimit(pid, resource.RLIMIT_AS)[0]
    except (OSError, AttributeError):  # gone, or not Linux
        return 0
    return 0 if soft == resource.RLIM_INFINITY else soft


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

    def grow(self, workers: int) -> None:
        """Start workers up to `workers` in all (a pool that parses inline stays inline; none is stopped)."""
        while self._slots and len(self._slots) < workers:
            self._slots.append(self._start_slot())
        self.workers = max(self.workers, len(self._slots))

    def close(self) -> None:
        """Stop the workers (a no-op when none run)."""
        for slot in self._slots:
            slot["inbox"].put(None)
        for slot in self._slots:
            slot["proc"].join(2)
            if slot["proc"].is_alive():
                _stop(slot["proc"])
        self._slots = []

    def _start_slot(self) -> dict:
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_worker, args=(inbox, self._outbox, self.settings, self.tokenizer_path), daemon=True
        )
        with main_script_hidden():
            proc.start()
        return {"proc": proc, "inbox": inbox, "queued": [], "started": None, "seen": (0, 0)}

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
                slot["started"] = (key, time.monotonic(), self.time_limit(by_key[key][1]))
                slot["seen"] = (0, 0)
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
                key, reason, detail = failure
                _stop(slot["proc"])
                requeue = [k for k in slot["queued"] if k != key]
                pending.extend((k, by_key[k]) for k in reversed(requeue))
                slots[i] = self._start_slot()
                feed(slots[i])
                if key is not None:
                    done += 1
                    yield Rejection(by_key[key][0], reason, detail)

    def time_limit(self, size: int) -> float:
        """Seconds a file of `size` bytes may take to parse."""
        return self.settings.parse_timeout_s + self.settings.parse_timeout_s_per_mb * size / 1e6

    def _failure(self, slot: dict) -> tuple[int | None, str, str] | None:
        """(file key, reason, detail) when the slot's worker overran its time or died; else None."""
        started, proc = slot["started"], slot["proc"]
        if started and time.monotonic() - started[1] > started[2]:
            return started[0], "parse error", (
                f"parsing did not finish within {started[2]:.0f} s (parse_timeout_s, parse_timeout_s_per_mb); "
                "the file is malformed or too complex for the parser"
            )
        if proc.is_alive():
            if started:  # what it maps, and its limit: if it dies, was it at the limit?
                slot["seen"] = (max(slot["seen"][0], mapped_bytes(proc.pid)), _soft_memory_limit(proc.pid) or slot["seen"][1])
            return None
        key = started[0] if started else (slot["queued"][0] if slot["queued"] else None)
        code, memory_mb = proc.exitcode, self.settings.parse_memory_mb
        peak, limit = slot["seen"]
        if memory_mb and limit and peak >= limit - memory_mb * 1024 * 1024 // 4:
            return key, "oversize", f"{_memory_detail(memory_mb)}; the parser process stopped there (exit code {code})"
        if memory_mb and code == -signal.SIGABRT:  # native code (Rust, C++) aborts when an allocation fails
            return key, "oversize", f"the parser process aborted, most likely at its memory limit: {_memory_detail(memory_mb)}"
        if code == -signal.SIGKILL:
            return key, "oversize", "the parser process was killed (SIGKILL), most likely because the machine ran out of memory"
        return key, "parse error", f"the parser process crashed (exit code {code})"
