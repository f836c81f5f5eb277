"""Group commit on the real Redis store: batches processed while a commit is in flight are
committed together once it completes (one script call, each customer encoded once), and a
crash on either side of that commit loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pytest
import redis

from tests.unit.streaming.fakes import RecordingPublisher, records_for
from tests.unit.streaming.test_pipeline import (
    EXPECTED,
    LINES,
    PARTITIONS,
    RULES,
    UNTIL,
    differences,
    pipeline,
)
from valeur_monitor.codec import decode
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.errors import EventError
from valeur_monitor.runner.observe import metrics_for
from valeur_monitor.service import BatchResult
from valeur_monitor.store.base import Store
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.streaming.drain import drain
from valeur_monitor.streaming.faults import Fault
from valeur_monitor.streaming.outputs import Message, Record
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.integration   # the real Redis store

BATCH = 150
QUEUED = 4          # batches processed while the first commit is in flight


class GatedPublisher(RecordingPublisher):
    """The `held`-th publish (0-based) waits for `gate`: until then its batch stays in flight
    and every later batch's outputs wait behind it."""

    def __init__(self, held: int) -> None:
        super().__init__()
        self.held = held
        self.gate = asyncio.Event()

    async def publish(self, messages: Sequence[Message]) -> None:
        if self.calls == self.held:
            self.calls += 1
            await self.gate.wait()
            self.messages.extend(messages)
            return
        await super().publish(messages)


class Killed(BaseException):
    """The process dying at that point (nothing after it runs; not a retried failure)."""


def batches() -> list[list[Record]]:
    records = records_for(LINES, PARTITIONS)
    return [records[i:i + BATCH] for i in range(0, len(records), BATCH)]


def customers(batch: Sequence[Record]) -> set[str]:
    out = set()
    for record in batch:
        with contextlib.suppress(EventError):
            out.add(decode(record.value).customer)
    return out


def script_calls(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.hget("vm:epoch", "commits") or 0)
    finally:
        client.close()


async def restart(url: str, redelivered: list[list[Record]]) -> float:
    """A new worker over the same Redis, redelivered what was not acked; the duplicates it
    dropped (dedupe marks of committed events)."""
    store = RedisStore.from_url(url)
    metrics = metrics_for(RULES, state_gauges=False)
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), RecordingPublisher(),
                            metrics)
    for batch in redelivered:
        await asyncio.wait_for(runtime.consume(batch), 30)
    await asyncio.wait_for(runtime.flushed(), 30)
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []
    store.close()
    value = metrics.registry.get_sample_value("valeur_events_duplicate_total")
    return value or 0.0


class DiesAt(Fault):
    """The fault hook of the chaos tests, raising instead of SIGKILL (same point, same count)."""

    def reached(self, point: str) -> None:
        if point == self.point:
            self.seen += 1
            if self.seen == self.batch:
                raise Killed(f"kill -9 at {point}:{self.batch}")


class Rig:
    """One worker over the real Redis store (the `held`-th publish gated), the test input in
    batches of `BATCH` records, and the batches acked so far."""

    def __init__(self, url: str, held: int, retry_delay: float = 0.2,
                 wrap: Callable[[RedisStore], Any] | None = None) -> None:
        self.url = url
        self.store = RedisStore.from_url(url)
        self.inner: Store = wrap(self.store) if wrap is not None else self.store
        self.pipeline = pipeline(self.inner, set(range(PARTITIONS)))
        self.publisher = GatedPublisher(held)
        self.runtime = WorkerRuntime(self.pipeline, self.publisher, retry_delay=retry_delay)
        self.parts = batches()
        self.acked: list[int] = []

    async def consume(self, *numbers: int) -> None:
        """Hand over these batches, one after the other (each acks its number)."""
        for n in numbers:
            await asyncio.wait_for(
                self.runtime.consume(self.parts[n], lambda n=n: self.acked.append(n)), 10)

    async def finish(self, after: int) -> None:
        """Hand over every batch after `after`, wait until all are committed and acked, and
        check the store holds the embedded run's results."""
        await self.consume(*range(after + 1, len(self.parts)))
        await asyncio.wait_for(self.runtime.flushed(), 10)
        assert self.acked == list(range(len(self.parts)))
        drain(RULES, self.store, UNTIL)
        assert differences(EXPECTED, self.store) == []

    def script_calls(self) -> int:
        return script_calls(self.url)


@pytest.fixture
def rig(redis_db_url: str) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(held: int, **options: Any) -> Rig:
        made.append(Rig(redis_db_url, held, **options))
        return made[-1]

    yield make
    for r in made:
        r.store.close()


async def test_batches_processed_during_one_commit_make_one_more_script_call(
        rig: Callable[..., Rig]) -> None:
    r = rig(held=0)
    await r.consume(0, *range(1, 1 + QUEUED))   # 1..QUEUED processed while 0 is in flight
    assert r.script_calls() == 0 and r.acked == []
    r.publisher.gate.set()
    await asyncio.wait_for(r.runtime.flushed(), 10)
    # one script call for batch 0, ONE more for the four batches behind it
    assert r.script_calls() == 2 and r.pipeline.scope.calls == 2
    assert r.acked == list(range(1 + QUEUED))
    # a customer of several of the queued batches was encoded once
    group = set().union(*(customers(r.parts[n]) for n in range(1, 1 + QUEUED)))
    per_batch = sum(len(customers(r.parts[n])) for n in range(1, 1 + QUEUED))
    assert r.pipeline.scope.states - len(customers(r.parts[0])) <= len(group) + 10 < per_batch
    # their outputs were all published, in order, before that commit
    assert r.publisher.calls == 1 + QUEUED
    await r.finish(after=QUEUED)


async def test_a_crash_before_the_group_commit_loses_nothing(rig: Callable[..., Rig]) -> None:
    """Batch 0 committed and acked, the next four queued (their outputs held): the process dies.
    Redelivered from the acked offsets, a new worker reaches the embedded results, and none
    of the redelivered events was committed before (no duplicates)."""
    r = rig(held=1)
    await r.consume(*range(1 + QUEUED))

    async def first_acked() -> None:
        while not r.acked:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_acked(), 30)   # batch 0's commit ends in the commit thread
    assert r.acked == [0] and r.script_calls() == 1
    r.store.close()           # killed: nothing more of this worker runs
    assert await restart(r.url, r.parts[1:]) == 0


async def test_a_crash_after_the_group_commit_duplicates_nothing(
        rig: Callable[..., Rig]) -> None:
    """The group of four batches is committed to Redis and the process dies before their
    offsets are acked: redelivered, every event of the group is a duplicate and the results
    are the embedded run's (no ledger entry twice)."""
    r = rig(held=0)
    # after the commit of batch 0 (1), then of the group behind it (2-5): dies at the first
    # batch of the group, before any of its offsets is acked
    r.runtime.fault = DiesAt("after-commit", 2)
    await r.consume(*range(1 + QUEUED))
    r.publisher.gate.set()
    with pytest.raises(Killed):
        await asyncio.wait_for(r.runtime.flushed(), 10)
    assert r.acked == [0] and r.script_calls() == 2
    r.store.close()
    group = sum(len(customers(b)) > 0 for b in r.parts[1:1 + QUEUED])
    duplicates = await restart(r.url, r.parts[1:])
    decodable = sum(1 for b in r.parts[1:1 + QUEUED] for rec in b if customers([rec]))
    # every decodable event of the group was committed before the crash: all duplicates
    assert group == QUEUED and decodable > 0 and duplicates == decodable


async def test_a_failed_attempt_processes_the_queued_batches_again(
        rig: Callable[..., Rig]) -> None:
    """A transient failure after a batch changed states in place, with batches queued behind
    the commit in flight: the states are dropped, so the queued batches (their changes were
    only in memory) are processed again with the failed one; nothing lost, nothing twice."""
    r = rig(held=0, retry_delay=0.01)
    seen: list[int] = []

    def fails_once(result: BatchResult, seconds: float) -> None:
        # a runtime hook runs in the processing thread once the batch changed the states in
        # place and staged its commit (a seam that replaces no compiled method)
        seen.append(result.received)
        if len(seen) == 3:
            raise OSError("connection reset")   # ...then a transient failure

    r.runtime.hooks.append(fails_once)
    await r.consume(0, 1)   # batch 0 in flight (its outputs held), batch 1 queued
    # the retry waits for the commit in flight: let it through a little later
    opened = asyncio.get_running_loop().call_later(0.2, r.publisher.gate.set)
    await r.finish(after=1)
    opened.cancel()
    # the retry took batch 1 (queued) with batch 2: their records once more, together
    parts = r.parts
    assert seen[:4] == [len(parts[0]), len(parts[1]), len(parts[2]),
                        len(parts[1]) + len(parts[2])]


class FailingLoads:
    """The Redis store, whose `load` fails once, transiently, at its `fail_at`-th call (a plain
    wrapper: compiled methods cannot be replaced)."""

    def __init__(self, inner: RedisStore, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.loads = 0

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        self.loads += 1
        if self.loads == self.fail_at:
            raise OSError("connection reset")
        return self.inner.load(customers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_failed_load_processes_the_queued_batches_again(
        rig: Callable[..., Rig]) -> None:
    r = rig(held=0, retry_delay=0.01,    # loads: batch 0, batch 1 (queued), then batch 2 fails
            wrap=lambda store: FailingLoads(store, fail_at=3))
    wrapped = r.inner
    assert isinstance(wrapped, FailingLoads)
    await r.consume(0, 1)   # batch 0 in flight (its outputs held), batch 1 queued
    assert wrapped.loads == 2 and r.acked == [] and r.pipeline.scope.staged  # 1 staged, queued
    consuming = asyncio.ensure_future(r.consume(2))
    while wrapped.loads < 3 or r.pipeline.scope.staged:  # batch 2's load failed, the states
        await asyncio.sleep(0.01)       # and batch 1's staged commit dropped: the retry waits
    assert not r.acked                  # for the commit in flight
    r.publisher.gate.set()
    await asyncio.wait_for(consuming, 10)
    await r.finish(after=2)
