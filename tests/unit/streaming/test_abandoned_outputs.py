"""A batch whose commit cannot be encoded (it is encoded with its group, once the commit before
it is done): a transient failure is retried in place and the outputs go out once; a permanent
one stops the worker with the batch unacknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import LINES, PARTITIONS, pipeline
from valeur_monitor.engine.state import decode_state, encode_state
from valeur_monitor.errors import StorePermanentError
from valeur_monitor.store.base import Commit
from valeur_monitor.streaming.outputs import Message, Record
from valeur_monitor.streaming.runtime import WorkerRuntime


class PreparingStore(SharedStore):
    """Encodes commits apart from applying them, as RedisStore does; the `fail_at`-th
    `prepare` raises `failure`."""

    def __init__(self, failure: BaseException, fail_at: int) -> None:
        super().__init__()
        self.failure, self.fail_at, self.prepared = failure, fail_at, 0

    def prepare(self, commit: Commit) -> Commit:
        self.prepared += 1
        if self.prepared == self.fail_at:
            raise self.failure
        return Commit(states={c: decode_state(encode_state(s)) for c, s in commit.states.items()},
                      due=dict(commit.due), entries=list(commit.entries),
                      watermark=commit.watermark)

    def apply(self, commit: Commit) -> None:
        self.commit(commit)


class GatedPublisher(RecordingPublisher):
    """The first batch's publishing waits for `gate`: that batch stays in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.batches: list[list[Message]] = []

    async def publish(self, messages: Sequence[Message]) -> None:
        if not self.batches:
            await self.gate.wait()
        self.batches.append(list(messages))
        await super().publish(messages)


def two_batches() -> tuple[list[Record], list[Record]]:
    records = records_for(LINES, PARTITIONS)
    return records[:200], records[200:400]


async def until(condition: object, what: str) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_retried_encoding_publishes_the_batch_outputs_once() -> None:
    """The second batch is processed while the first is in flight: its commit is encoded once
    the first is committed (group commit); a transient failure there is retried in place (the
    encoding only reads the states), its outputs published once."""
    store = PreparingStore(OSError("transient while encoding"), fail_at=2)
    publisher = GatedPublisher()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), publisher,
                            retry_delay=0.01)
    first, second = two_batches()
    acked: list[str] = []
    await runtime.consume(first, lambda: acked.append("first"))   # in flight, publish held
    await runtime.consume(second, lambda: acked.append("second"))  # queued behind it
    assert store.prepared == 1 and acked == []
    publisher.gate.set()
    await until(lambda: runtime.health.failing_since is not None, "the failed encoding")
    await runtime.flushed()
    assert store.prepared == 3 and store.commit_calls == 2
    assert acked == ["first", "second"]
    assert len(publisher.batches) == 2, f"published {len(publisher.batches)} times"
    assert publisher.batches[0] and publisher.batches[1]


async def test_a_batch_whose_commit_cannot_be_encoded_stops_the_worker_unacked() -> None:
    """A state that cannot be encoded (a permanent failure) stops the worker with its batch
    unacknowledged, the batch before committed; its outputs may have gone out meanwhile
    (at-least-once outputs, as after a crash between publishing and committing)."""
    store = PreparingStore(StorePermanentError("cannot encode the batch for Redis",
                                               operation="commit"), fail_at=2)
    publisher = GatedPublisher()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), publisher)
    first, second = two_batches()
    acked: list[str] = []
    await runtime.consume(first, lambda: acked.append("first"))
    await runtime.consume(second, lambda: acked.append("second"))
    publisher.gate.set()
    with pytest.raises(StorePermanentError):
        await runtime.flushed()
    assert acked == ["first"] and store.commit_calls == 1 and store.prepared == 2
