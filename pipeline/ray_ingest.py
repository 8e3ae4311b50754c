"""Ingestion on a Ray cluster: parsing and embedding as Ray tasks, the store's commits where they always are.

`sculptrag ingest PATH... --ray ADDRESS` (`ingest(..., ray=ADDRESS)`) discovers, hashes and sorts the inputs
into unchanged / new / changed on the calling machine, as a local ingest does, so nothing unchanged is
shipped. Each file to do becomes one Ray task that is given the file's bytes (the cluster needs no shared
filesystem, and the bytes parsed are the bytes hashed). The task parses, validates and chunks them in a
parse worker of its own (the same `ParsePool` as a local ingest, with its time and memory limits, so a parser
that hangs or crashes costs a rejection, not the Ray worker) and embeds the chunks with the run's embedder.
The caller commits the results as they come back, in batches, one transaction each: the store is written by
one process, as always, and a crash loses at most the batch in flight; a re-run skips what was committed.

A Ray worker that dies (killed, out of memory, its node lost) has its task run again by Ray (`MAX_RETRIES`
times); a task that still fails is reported as rejected ("parse error", with Ray's reason) but not put in
quarantine, so the next run tries the file again.

The result equals a local ingest of the same files: the same documents, chunk ids and texts; vectors equal
to float rounding (each file's chunks are embedded in their own batches).

Addresses: "local" starts Ray on this machine for the run and stops it after; "auto" joins the cluster
started on this machine (`ray start --head`); "HOST:PORT" or "ray://HOST:PORT" joins that one. When Ray is
already initialised in this process (a notebook, a test), it is used as it is.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ingest.process import ParsePool, Processed, Rejection

from .config import Settings
from .embedding import Embedder, make_embedder
from .errors import ConfigError

if TYPE_CHECKING:
    from ingest.discover import FileRecord

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # runs of a task whose worker died, after the first (Ray's default for tasks)

# What a Ray worker keeps between tasks: its parse worker and its embedder, for the settings that made them.
_STATE: tuple[str, ParsePool, Embedder] | None = None


def _worker_state(settings: Settings) -> tuple[ParsePool, Embedder]:
    global _STATE
    key = settings.ingest.model_dump_json() + settings.embedding.model_dump_json()
    if _STATE is not None and _STATE[0] == key:
        return _STATE[1], _STATE[2]
    if _STATE is not None:
        _STATE[1].close()
    embedding = settings.embedding
    if not embedding.threads:  # a task holds one CPU: its embedder runs on one thread, not one per core
        embedding = embedding.model_copy(update={"threads": 1})
    embedder = make_embedder(embedding)
    pool = ParsePool(settings.ingest, str(embedder.path), 1).__enter__()  # limits need a worker process
    _STATE = (key, pool, embedder)
    return pool, embedder


def ingest_file(name: str, data: bytes, size: int, shown: str, settings: Settings) -> tuple[Processed | Rejection, np.ndarray | None]:
    """One Ray task: the bytes of one file (`name` its file name, `shown` its path on the caller's machine)
    parsed, validated and chunked in this worker's parse worker, and the chunks embedded."""
    pool, embedder = _worker_state(settings)
    with tempfile.TemporaryDirectory(prefix="sculptrag-ray-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        item = next(iter(pool.run([(str(path), size)])))
    if isinstance(item, Rejection):
        item.detail = item.detail.replace(str(path), shown)
        return item, None
    return item, embedder.encode([c.embed_text for c in item.chunks])


@contextlib.contextmanager
def connect(address: str) -> Iterator[object]:
    """The `ray` module, initialised for `address` (see the module docstring); shut down after, if started here."""
    try:
        import ray
    except ImportError:
        raise ConfigError("ingest on Ray needs the ray package: pip install 'sculptrag[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    if address == "local":
        ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False)  # a new one
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that nothing answers on fails now: ray.init would wait minutes."""
    if address == "auto":  # Ray finds the local cluster itself, and says so at once when there is none
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray takes local, auto or HOST:PORT (ray://HOST:PORT for a Ray client server), not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {address}: {e.strerror or e}") from None


def run(address: str, files: list["FileRecord"], settings: Settings) -> Iterator[tuple[Processed | Rejection, np.ndarray | None]]:
    """Each file's result as its task finishes: (Processed | Rejection with the file's own path, vectors or None)."""
    with connect(address) as ray:
        task = ray.remote(ingest_file).options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
        window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # one running, one queued per CPU
        todo = list(reversed(files))
        pending: dict = {}
        while todo or pending:
            while todo and len(pending) < window:
                rec = todo.pop()
                try:
                    data = rec.path.read_bytes()
                except OSError as e:
                    yield Rejection(str(rec.path), "not found", f"cannot read: {e.strerror or e}"), None
                    continue
                pending[task.remote(rec.path.name, data, rec.size, str(rec.path), settings)] = rec
            if not pending:
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                rec = pending.pop(ref)
                try:
                    item, vectors = ray.get(ref)
                except ray.exceptions.RayError as e:
                    reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                    log.warning("Ray task for %s failed after %d retries: %s", rec.path, MAX_RETRIES, reason)
                    item = Rejection(str(rec.path), "parse error", f"the Ray task failed {MAX_RETRIES + 1} times "
                                     f"(the next run tries again): {reason}", retry=True)
                    vectors = None
                item.path = str(rec.path)
                yield item, vectors

