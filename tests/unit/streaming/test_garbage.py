"""A batch leaves no reference cycles: its records, outputs and tasks are freed by reference
counting, not by the cyclic GC (whose pauses over them made the worker's latency tail); the
worker's GC policy (streaming/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import LINES, PARTITIONS, pipeline
from valeur_monitor.engine import compact  # noqa: F401  # imported lazily by the state codec:
from valeur_monitor.streaming import heap
from valeur_monitor.streaming.outputs import Record  # its import leaves msgspec's type cycles
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.unit
THRESHOLDS_BEFORE = gc.get_threshold()


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """The cyclic GC off, and what it would have freed kept in `gc.garbage` for inspection."""
    gc.collect()
    enabled, debug = gc.isenabled(), gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(debug)
        gc.garbage.clear()
        if enabled:
            gc.enable()


async def run_batches(batches: list[list[Record]]) -> tuple[WorkerRuntime, list[int]]:
    runtime = WorkerRuntime(pipeline(SharedStore(), set(range(PARTITIONS))),
                            RecordingPublisher())
    acked: list[int] = []
    for n, batch in enumerate(batches):
        await runtime.consume(batch, lambda n=n: acked.append(n))
    await runtime.flushed()
    return runtime, acked


async def test_pipelined_batches_leave_no_cyclic_garbage(saved_garbage: list[object]) -> None:
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 140] for i in range(0, len(records), 140)]
    # first: one-time caches; both runtimes are kept alive till the end (their own structure
    # has cycles: dropping one would leave garbage)
    warm, _ = await run_batches(batches)
    gc.collect()
    saved_garbage.clear()
    runtime, acked = await run_batches(batches)
    gc.collect()
    kinds = Counter(type(o).__qualname__ for o in saved_garbage)
    assert kinds == Counter(), f"left to the cyclic GC by {len(batches)} batches: {kinds}"
    assert acked == list(range(len(batches)))
    assert warm.pipeline.scope.commits == runtime.pipeline.scope.commits > 0


class Node:
    """A reference cycle (itself), observable through a weak reference."""

    def __init__(self) -> None:
        self.me = self


def test_settle_collects_what_is_not_frozen_then_freezes_the_survivors() -> None:
    try:
        dropped, kept = Node(), Node()
        gone, alive = weakref.ref(dropped), weakref.ref(kept)
        del dropped
        heap.settle()
        assert gone() is None                   # a cycle not frozen yet: collected
        frozen = gc.get_freeze_count()
        assert frozen > 0 and not any(o is kept for o in gc.get_objects())  # out of the GC's
        heap.settle()                                                     # generations
        assert gc.get_freeze_count() >= frozen and alive() is kept   # not unfrozen
    finally:
        gc.unfreeze()


async def test_an_assignment_settles_the_heap_between_batches() -> None:
    store = SharedStore()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), RecordingPublisher())
    settled: list[set[int]] = []
    runtime.settle_heap = lambda: settled.append(set(runtime.pipeline.clock.owned))
    records = records_for(LINES, PARTITIONS)
    await runtime.consume(records[:200])
    await runtime.assign({0, 1}, PARTITIONS)
    assert settled == [{0, 1}] and runtime._inflight is None   # after the batch, new owner
    heap.configure()
    try:
        assert gc.get_threshold() == heap.THRESHOLDS
    finally:
        gc.set_threshold(*THRESHOLDS_BEFORE)

