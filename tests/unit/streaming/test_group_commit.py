"""Group commit on the real Redis store: batches processed while a commit is in flight are
committed together once it completes (one script call, each customer encoded once), and a
crash on either side of that commit loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
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


async def test_batches_processed_during_one_commit_make_one_more_script_call(
        redis_db_url: str) -> None:
    store = RedisStore.from_url(redis_db_url)
    p = pipeline(store, set(range(PARTITIONS)))
    publisher = GatedPublisher(held=0)
    runtime = WorkerRuntime(p, publisher)
    parts = batches()
    acked: list[int] = []
    await asyncio.wait_for(runtime.consume(parts[0], lambda: acked.append(0)), 10)
    for n in range(1, 1 + QUEUED):        # processed while batch 0 is in flight
        await asyncio.wait_for(runtime.consume(parts[n], lambda n=n: acked.append(n)), 10)
    assert script_calls(redis_db_url) == 0 and acked == []
    publisher.gate.set()
    await asyncio.wait_for(runtime.flushed(), 10)
    # one script call for batch 0, ONE more for the four batches behind it
    assert script_calls(redis_db_url) == 2 and p.scope.calls == 2
    assert acked == list(range(1 + QUEUED))
    # a customer of several of the queued batches was encoded once
    group = set().union(*(customers(parts[n]) for n in range(1, 1 + QUEUED)))
    per_batch = sum(len(customers(parts[n])) for n in range(1, 1 + QUEUED))
    assert p.scope.states - len(customers(parts[0])) <= len(group) + 10 < per_batch
    # their outputs were all published, in order, before that commit
    assert publisher.calls == 1 + QUEUED
    for n, batch in enumerate(parts[1 + QUEUED:], start=1 + QUEUED):
        await asyncio.wait_for(runtime.consume(batch, lambda n=n: acked.append(n)), 10)
    await asyncio.wait_for(runtime.flushed(), 10)
    assert acked == list(range(len(parts)))
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []
    store.close()


async def test_a_crash_before_the_group_commit_loses_nothing(redis_db_url: str) -> None:
    """Batch 0 committed and acked, the next four queued (their outputs held): the process dies.
    Redelivered from the acked offsets, a new worker reaches the embedded results, and none
    of the redelivered events was committed before (no duplicates)."""
    store = RedisStore.from_url(redis_db_url)
    p = pipeline(store, set(range(PARTITIONS)))
    publisher = GatedPublisher(held=1)
    runtime = WorkerRuntime(p, publisher)
    parts = batches()
    acked: list[int] = []
    for n in range(1 + QUEUED):
        await asyncio.wait_for(runtime.consume(parts[n], lambda n=n: acked.append(n)), 10)
    async def first_acked() -> None:
        while not acked:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_acked(), 30)   # batch 0's commit ends in the commit thread
    assert acked == [0] and script_calls(redis_db_url) == 1
    store.close()           # killed: nothing more of this worker runs
    assert await restart(redis_db_url, parts[1:]) == 0


async def test_a_crash_after_the_group_commit_duplicates_nothing(redis_db_url: str) -> None:
    """The group of four batches is committed to Redis and the process dies before their
    offsets are acked: redelivered, every event of the group is a duplicate and the results
    are the embedded run's (no ledger entry twice)."""
    store = RedisStore.from_url(redis_db_url)
    p = pipeline(store, set(range(PARTITIONS)))
    publisher = GatedPublisher(held=0)
    runtime = WorkerRuntime(p, publisher)
    # after the commit of batch 0 (1), then of the group behind it (2-5): dies at the first
    # batch of the group, before any of its offsets is acked
    runtime.fault = DiesAt("after-commit", 2)
    parts = batches()
    acked: list[int] = []
    for n in range(1 + QUEUED):
        await asyncio.wait_for(runtime.consume(parts[n], lambda n=n: acked.append(n)), 10)
    publisher.gate.set()
    with pytest.raises(Killed):
        await asyncio.wait_for(runtime.flushed(), 10)
    assert acked == [0] and script_calls(redis_db_url) == 2
    store.close()
    group = sum(len(customers(b)) > 0 for b in parts[1:1 + QUEUED])
    duplicates = await restart(redis_db_url, parts[1:])
    decodable = sum(1 for b in parts[1:1 + QUEUED] for r in b if customers([r]))
    # every decodable event of the group was committed before the crash: all duplicates
    assert group == QUEUED and decodable > 0 and duplicates == decodable


async def test_a_failed_attempt_processes_the_queued_batches_again(redis_db_url: str) -> None:
    """A transient failure after a batch changed states in place, with batches queued behind
    the commit in flight: the states are dropped, so the queued batches (their changes were
    only in memory) are processed again with the failed one; nothing lost, nothing twice."""
    store = RedisStore.from_url(redis_db_url)
    p = pipeline(store, set(range(PARTITIONS)))
    publisher = GatedPublisher(held=0)
    runtime = WorkerRuntime(p, publisher, retry_delay=0.01)
    process_batch = p.process_batch
    seen: list[int] = []

    def fails_once(records):  # type: ignore[no-untyped-def]
        step = process_batch(records)       # states changed in place, commit staged...
        seen.append(len(records))
        if len(seen) == 3:
            raise OSError("connection reset")   # ...then a transient failure
        return step

    p.process_batch = fails_once  # type: ignore[method-assign]
    parts = batches()
    acked: list[int] = []
    for n in range(2):      # batch 0 in flight (its outputs held), batch 1 queued
        await asyncio.wait_for(runtime.consume(parts[n], lambda n=n: acked.append(n)), 10)
    # the retry waits for the commit in flight: let it through a little later
    opened = asyncio.get_running_loop().call_later(0.2, publisher.gate.set)
    for n, batch in enumerate(parts[2:], start=2):
        await asyncio.wait_for(runtime.consume(batch, lambda n=n: acked.append(n)), 10)
    await asyncio.wait_for(runtime.flushed(), 10)
    opened.cancel()
    # the retry took batch 1 (queued) with batch 2: their records once more, together
    assert seen[:4] == [len(parts[0]), len(parts[1]), len(parts[2]),
                        len(parts[1]) + len(parts[2])]
    assert acked == list(range(len(parts)))
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []
    store.close()


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


async def test_a_failed_load_processes_the_queued_batches_again(redis_db_url: str) -> None:
    store = RedisStore.from_url(redis_db_url)
    wrapped = FailingLoads(store, fail_at=3)    # batch 0, batch 1 (queued), then batch 2
    p = pipeline(wrapped, set(range(4)))         # type: ignore[arg-type]
    publisher = GatedPublisher(held=0)
    runtime = WorkerRuntime(p, publisher, retry_delay=0.01)
    parts = batches()
    acked: list[int] = []
    for n in range(2):      # batch 0 in flight (its outputs held), batch 1 queued
        await asyncio.wait_for(runtime.consume(parts[n], lambda n=n: acked.append(n)), 10)
    assert wrapped.loads == 2 and acked == [] and p.scope.staged  # batch 1 staged, queued
    consuming = asyncio.ensure_future(runtime.consume(parts[2], lambda: acked.append(2)))
    while wrapped.loads < 3 or p.scope.staged:   # batch 2's load failed, the states and
        await asyncio.sleep(0.01)                   # batch 1's staged commit dropped: the
    assert not acked                                # retry waits for the commit in flight
    publisher.gate.set()
    await asyncio.wait_for(consuming, 10)
    for n, batch in enumerate(parts[3:], start=3):
        await asyncio.wait_for(runtime.consume(batch, lambda n=n: acked.append(n)), 10)
    await asyncio.wait_for(runtime.flushed(), 10)
    assert acked == list(range(len(parts)))
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []
    store.close()
