"""How the generator queue groups requests into batches, bounds itself and drops cancelled requests (the
worker's choice of batch, without running a generator; the real server's queue is tested in test_queue.py)."""

from __future__ import annotations

import concurrent.futures

import pytest

from app.service.scheduler import Job, QueueFull, Scheduler

pytestmark = pytest.mark.timeout(30)


def queue(max_batch: int, size: int = 16) -> Scheduler:
    return Scheduler(None, queue_size=size, max_batch=max_batch, batch_wait_ms=0)  # type: ignore[arg-type]


def job(generator: str, **options) -> Job:
    return Job(question="q", groups=("public",), generator=generator, options=options)


def test_a_batch_is_the_oldest_request_and_those_with_its_generator_and_options():
    s = queue(max_batch=8)
    a1, b1, a2, a_other, a3 = job("sculpt"), job("extractive"), job("sculpt"), job("sculpt", max_steps=4), job("sculpt")
    for j in (a1, b1, a2, a_other, a3):
        s.submit(j)
    assert s._take_batch() == [a1, a2, a3]  # same generator and options, in arrival order
    assert s._take_batch() == [b1]
    assert s._take_batch() == [a_other]  # other options: another batch
    assert s.depth() == 0


def test_batches_hold_at_most_max_batch_and_the_oldest_goes_first():
    s = queue(max_batch=2)
    a1, a2, b1, a3 = job("sculpt"), job("sculpt"), job("extractive"), job("sculpt")
    for j in (a1, a2, b1, a3):
        s.submit(j)
    assert s._take_batch() == [a1, a2]
    assert s._take_batch() == [b1]
    assert s._take_batch() == [a3]


def test_the_queue_is_bounded_and_a_cancelled_request_leaves_it():
    s = queue(max_batch=4, size=2)
    first, second = s.submit(job("sculpt")), s.submit(job("sculpt"))
    with pytest.raises(QueueFull, match="full"):
        s.submit(job("sculpt"))
    s.cancel(first)
    assert first.future.cancelled() and s.depth() == 1
    third = s.submit(job("sculpt"))  # its place is free again
    assert s._take_batch() == [second, third]
    assert second.future.running() and third.future.running()


@pytest.mark.timeout(300)
def test_a_batch_whose_clients_all_left_stops_at_its_next_state(tmp_path, embedder):
    """The real pipeline with the bundled model: two jobs denoised together; both clients leave after the first
    state, and the batch stops there instead of running its remaining steps."""
    from app.service.scheduler import _run_batch
    from pipeline import ingest
    from pipeline.config import IngestSettings, Settings
    from pipeline.rag import RagPipeline
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "leave.txt").write_text("Staff receive twenty-five days of paid leave per year.\n")
    (tmp_path / "docs" / "parking.txt").write_text("Visitors park in the north lot next to the canteen.\n")
    settings = Settings(store_dir=tmp_path / "store", ingest=IngestSettings(parse_workers=0), generator="sculpt")
    ingest([tmp_path / "docs"], settings, embedder=embedder)
    store = Store(settings)
    rag = RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings))

    def jobs(leave: bool) -> tuple[list[Job], list[int]]:
        seen = [0]
        batch = [Job(question=q, groups=("public",), generator="sculpt", repair_rounds=0,
                     options={"sampler": "naive"})  # one slot a step: many states to leave between
                 for q in ("How many days of paid leave do staff get?", "Where do visitors park?")]

        def on_state(state) -> None:
            seen[0] += 1
            if leave:
                for j in batch:
                    j.cancelled.set()

        for j in batch:
            j.on_state = on_state
        return batch, seen

    stayed, states = jobs(leave=False)
    _run_batch(rag, stayed)
    assert all(j.future.result().text for j in stayed) and states[0] > 2
    left, seen = jobs(leave=True)
    _run_batch(rag, left)
    assert seen[0] == 1  # no state after the one that both clients left on
    for j in left:
        with pytest.raises(concurrent.futures.CancelledError):
            j.future.result(timeout=0)
