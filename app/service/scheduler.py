"""The generator queue: a bounded queue of answer jobs in front of the pipeline, run by one worker thread.

Invariants:
- At most `queue_size` jobs wait; `submit` on a full queue raises QueueFull at once (the route answers 503
  with Retry-After), so a burst never piles up unbounded work or memory.
- One worker thread takes jobs in arrival order. It takes the oldest job and, waiting at most
  `batch_wait_ms` for companions, every other waiting job with the same batch key (generator name,
  options and repair rounds), up to `max_batch`: one batch shares one generator and its settings, which is
  what a batched denoiser needs (the sampler takes a batch; rows differ only by question and passages).
- `_run_batch` is the one place that runs a batch: `RagPipeline.ask_batch` for two or more jobs (one
  batched denoising), `RagPipeline.stream` for one.
- Cancel (a client that went away): a waiting job leaves the queue at once; a running one stops being
  consumed at its next denoising state (closing the pipeline's stream releases the generator's lock), so
  its slot is free for the next job. A job's future always ends: result, exception, or cancelled.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pipeline.errors import SculptragError
from pipeline.rag import BatchItem, RagPipeline
from pipeline.types import Answer, DenoiseState, SearchFilters

log = logging.getLogger(__name__)


class QueueFull(SculptragError):
    """The generator queue is full; the client should retry later."""


@dataclass(eq=False)
class Job:
    """One question waiting for (or being given) an answer. `on_state` gets each DenoiseState (worker thread)."""

    question: str
    groups: tuple[str, ...]
    k: int | None = None
    filters: SearchFilters | None = None
    generator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    repair_rounds: int | None = None  # None: the server's validation.repair_rounds
    on_state: Callable[[DenoiseState], None] | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def batch_key(self) -> tuple[str | None, str]:
        """Jobs with equal keys may be denoised together."""
        return self.generator, json.dumps([self.options, self.repair_rounds], sort_keys=True, default=str)


class Scheduler:
    def __init__(self, pipeline: RagPipeline, *, queue_size: int, max_batch: int, batch_wait_ms: float,
                 on_batch: Callable[[int], None] | None = None, on_depth: Callable[[int], None] | None = None) -> None:
        self.pipeline = pipeline
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.on_batch = on_batch  # called with each batch's size (metrics)
        self.on_depth = on_depth  # called with the number of jobs waiting whenever it changes (metrics)
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the routes' side ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sculptrag-generator-queue", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            for job in self._waiting:
                job.future.cancel()
            self._waiting.clear()
            self._depth_changed()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def depth(self) -> int:
        """Jobs waiting (not counting the batch being run)."""
        return len(self._waiting)

    def submit(self, job: Job) -> Job:
        with self._cond:
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the generator queue is full ({self.queue_size} waiting); retry shortly")
            self._waiting.append(job)
            self._depth_changed()
            self._cond.notify_all()
        return job

    def _depth_changed(self) -> None:  # (holding _cond)
        if self.on_depth is not None:
            self.on_depth(len(self._waiting))

    def cancel(self, job: Job) -> None:
        """The client went away: drop the job if it waits, stop consuming it if it runs."""
        job.cancelled.set()
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                self._depth_changed()
                job.future.cancel()

    # -- the worker ----------------------------------------------------------------------------------
    def _take_batch(self) -> list[Job]:
        """Block for the oldest job, then gather its companions (same key) for up to batch_wait_s."""
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            key = self._waiting[0].batch_key
            deadline = time.monotonic() + self.batch_wait_s
            while self.max_batch > 1 and not self._stopping:
                same = sum(j.batch_key == key for j in self._waiting)
                left = deadline - time.monotonic()
                if same >= self.max_batch or left <= 0 or not self._waiting:
                    break
                self._cond.wait(left)
            batch = [j for j in self._waiting if j.batch_key == key][: self.max_batch]
            for job in batch:
                self._waiting.remove(job)
            self._depth_changed()
            return [j for j in batch if j.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while not self._stopping:
            batch = self._take_batch()
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                _run_batch(self.pipeline, batch)
            except Exception as e:  # noqa: BLE001 - a job's failure is its client's answer; the worker goes on
                log.exception("generator batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)


class _Abandoned(Exception):
    """Every client of a running batch went away: stop denoising it."""


def _run_batch(pipeline: RagPipeline, jobs: Sequence[Job]) -> None:
    """Answer one batch (same generator and options); settle every job's future.

    Two or more live jobs: one `RagPipeline.ask_batch` call (one batched denoising where the generator
    can batch). A job cancelled while its batch runs stops getting states and finishes with the batch,
    its answer dropped; when every job of the batch is cancelled, the batch stops at its next state (the
    denoiser computes the batch's rows together, so one row alone cannot leave it). A lone job runs through
    `stream`, which stops a cancelled job at its next state.
    `groups` is never None here (None would mean default_groups; a caller with no groups reads nothing)."""
    live = []
    for job in jobs:
        if job.cancelled.is_set():
            _end_cancelled(job)
        else:
            live.append(job)
    if len(live) > 1:
        def on_state(i: int, state: DenoiseState) -> None:
            if all(j.cancelled.is_set() for j in live):
                raise _Abandoned
            job = live[i]
            if job.on_state is not None and not job.cancelled.is_set():
                job.on_state(state)

        try:
            answers = pipeline.ask_batch(
                [BatchItem(question=j.question, groups=j.groups, k=j.k, filters=j.filters) for j in live],
                generator=live[0].generator, options=live[0].options or None, on_state=on_state,
                repair_rounds=live[0].repair_rounds)
        except _Abandoned:
            for job in live:
                _end_cancelled(job)
            return
        except Exception as e:  # noqa: BLE001 - reported to every client of the batch
            for job in live:
                job.future.set_exception(e)
            return
        for job, answer in zip(live, answers):
            if job.cancelled.is_set():
                _end_cancelled(job)
            else:
                job.future.set_result(answer)
        return
    for job in live:
        try:
            answer: Answer | None = None
            stream = pipeline.stream(job.question, groups=job.groups, generator=job.generator, k=job.k,
                                     filters=job.filters, options=job.options or None,
                                     repair_rounds=job.repair_rounds)
            try:
                for item in stream:
                    if job.cancelled.is_set():
                        break
                    if isinstance(item, Answer):
                        answer = item
                    elif job.on_state is not None:
                        job.on_state(item)
            finally:
                stream.close()  # a stopped stream leaves the generator's lock
            if answer is None:
                job.future.set_exception(concurrent.futures.CancelledError())
            else:
                job.future.set_result(answer)
        except Exception as e:  # noqa: BLE001 - reported to this job's client
            job.future.set_exception(e)


def _end_cancelled(job: Job) -> None:
    job.future.cancel()  # (already running: a plain cancel is refused, so end it as cancelled)
    if not job.future.done():
        job.future.set_exception(concurrent.futures.CancelledError())
