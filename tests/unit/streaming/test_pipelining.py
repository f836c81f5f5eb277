"""Pipelined batches: batch N+1 is processed while N is published and applied, same results."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import (
    EXPECTED,
    LINES,
    PARTITIONS,
    RULES,
    UNTIL,
    differences,
    pipeline,
)
from valeur_monitor.engine.state import CustomerState, decode_state, encode_state
from valeur_monitor.service import BatchResult
from valeur_monitor.store.base import Commit
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.drain import drain
from valeur_monitor.streaming.outputs import Message
from valeur_monitor.streaming.runtime import WorkerRuntime
from valeur_monitor.streaming.scope import WorkerScope

pytestmark = pytest.mark.unit


class SlowPublisher(RecordingPublisher):
    """Takes a while to be acknowledged, and notes how many batches were processed by then."""

    def __init__(self, runtime_batches: list[int], store: SharedStore) -> None:
        super().__init__()
        self.processed = runtime_batches
        self.store_ = store
        self.seen: list[tuple[int, int]] = []      # (batches processed, commits applied)

    async def publish(self, messages: Sequence[Message]) -> None:
        await asyncio.sleep(0.01)
        self.seen.append((self.processed[0], self.store_.commit_calls))
        await super().publish(messages)


async def test_pipelined_batches_give_the_embedded_results_in_order() -> None:
    store = SharedStore()
    p = pipeline(store, set(range(PARTITIONS)))
    processed = [0]

    def counting(result: BatchResult, seconds: float) -> None:
        processed[0] += 1   # a runtime hook: runs in the processing thread after each batch

    publisher = SlowPublisher(processed, store)
    runtime = WorkerRuntime(p, publisher)
    runtime.hooks.append(counting)
    acks: list[tuple[int, int]] = []
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 120] for i in range(0, len(records), 120)]
    for n, batch in enumerate(batches):
        await runtime.consume(batch, lambda n=n: acks.append((n, store.commit_calls)))
    await runtime.flushed()
    # every batch acked once, in order, each after the commit that covers it
    assert [n for n, _ in acks] == list(range(len(batches)))
    assert all(commits >= 1 for _, commits in acks)
    assert [c for _, c in acks] == sorted(c for _, c in acks)
    # batches processed while a commit was in flight were committed together (group commit)
    assert acks[-1][1] == store.commit_calls < len(batches)
    # the next batch was processed while one was being published (that is the point)...
    assert any(done > commits + 1 for done, commits in publisher.seen)
    # ...and the outputs of a batch are always published before its commit is applied
    assert all(seen[1] < acked[1] for seen, acked in zip(publisher.seen, acks, strict=True))
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


async def test_a_failed_batch_in_flight_stops_the_next_and_nothing_is_acked_after_it() -> None:
    store = SharedStore()
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 300] for i in range(0, len(records), 300)]

    class Boom(Exception):
        pass

    class FailsSecond(RecordingPublisher):
        async def publish(self, messages: Sequence[Message]) -> None:
            if self.calls == 1:
                raise Boom("permanent")
            await super().publish(messages)

    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), FailsSecond())
    acked: list[int] = []
    await runtime.consume(batches[0], lambda: acked.append(0))
    await runtime.consume(batches[1], lambda: acked.append(1))
    with pytest.raises(Boom):          # the in-flight failure surfaces at a next batch or settle
        await runtime.consume(batches[2], lambda: acked.append(2))
        await runtime.flushed()
    assert acked == [0] and store.commit_calls == 1
    # a restart is redelivered everything after batch 0: same results as a run without crash
    restarted = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), RecordingPublisher())
    for batch in batches[1:]:
        await restarted.consume(batch)
    await restarted.flushed()
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


def test_due_answers_from_prepared_commits_until_they_are_applied() -> None:
    """Redis's due index lags a prepared (not yet applied) commit: `due` must not."""
    inner = MemoryStore()
    inner.commit(Commit(states={c: CustomerState(c) for c in ("early", "late", "plain")},
                        due={"early": 5_000, "late": 100, "plain": 200}))
    scope = WorkerScope(inner)
    assert scope.due(1_000) == ["late", "plain"]
    scope.load(["early", "late"])
    scope.commit(Commit(states={c: scope.cache[c] for c in ("early", "late")},
                        due={"early": 50, "late": -1}))
    pending = scope.prepare()
    assert pending is not None
    assert inner.due(1_000) == ["late", "plain"]          # the store has not seen it yet
    assert sorted(scope.due(1_000)) == ["early", "plain"]
    scope.apply(pending)
    assert inner.due(1_000) == ["early", "plain"]
    assert sorted(scope.due(1_000)) == ["early", "plain"]


class EncodingStore(SharedStore):
    """Encodes commits apart from applying them (as RedisStore does), each encoding waiting
    until the outputs of its batch were handed to the publisher (10 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.published = [threading.Event() for _ in range(3)]
        self.overlapped: list[bool] = []

    def prepare(self, commit: Commit) -> Commit:
        self.overlapped.append(self.published[len(self.overlapped)].wait(10))
        return Commit(states={c: decode_state(encode_state(s)) for c, s in commit.states.items()},
                      due=dict(commit.due), entries=list(commit.entries),
                      watermark=commit.watermark)

    def apply(self, commit: Commit) -> None:
        self.commit(commit)


async def test_outputs_go_out_while_the_commit_is_still_being_encoded() -> None:
    """A batch's outputs are published as soon as it is processed, while its commit is
    encoded (it would wait 10 s for nothing if they went out after it)."""
    store = EncodingStore()

    class Noting(RecordingPublisher):
        async def publish(self, messages: Sequence[Message]) -> None:
            store.published[self.calls].set()
            await super().publish(messages)

    publisher = Noting()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), publisher)
    acks: list[int] = []
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 200] for i in range(0, len(records), 200)][:3]
    for n, batch in enumerate(batches):
        await runtime.consume(batch, lambda n=n: acks.append(n))
    await runtime.flushed()
    # each group's encoding waited for its last batch's outputs (batches processed while a
    # commit was in flight are encoded together, once it is done)
    assert store.overlapped and all(store.overlapped)
    assert acks == [0, 1, 2] and store.commit_calls == len(store.overlapped) <= 3
    assert publisher.calls == 3


class CommitGatedStore(SharedStore):
    """Encodes commits apart from applying them (as RedisStore does); applying the first
    commit waits until the second batch's outputs were handed to the publisher (2 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.second_published = threading.Event()
        self.overlapped: list[bool] = []

    def prepare(self, commit: Commit) -> Commit:
        return Commit(states={c: decode_state(encode_state(s)) for c, s in commit.states.items()},
                      due=dict(commit.due), entries=list(commit.entries),
                      watermark=commit.watermark)

    def apply(self, commit: Commit) -> None:
        if not self.overlapped:
            self.overlapped.append(self.second_published.wait(2))
        self.commit(commit)


async def test_outputs_go_out_while_the_batch_before_is_still_being_committed() -> None:
    """Batch N+1's outputs are published once N's are acknowledged, while N's commit is on
    its way (the two round trips overlap); commits and acks stay in order, each batch's
    outputs before its own commit."""
    store = CommitGatedStore()
    order: list[str] = []

    class Noting(RecordingPublisher):
        async def publish(self, messages: Sequence[Message]) -> None:
            order.append(f"published {self.calls} after {store.commit_calls} commits")
            if self.calls == 1:
                store.second_published.set()
            await super().publish(messages)

    publisher = Noting()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), publisher)
    acks: list[tuple[int, int]] = []
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 200] for i in range(0, len(records), 200)][:3]
    for n, batch in enumerate(batches):
        await runtime.consume(batch, lambda n=n: acks.append((n, store.commit_calls)))
    await runtime.flushed()
    assert store.overlapped == [True]
    assert order[:2] == ["published 0 after 0 commits", "published 1 after 0 commits"]
    assert [n for n, _ in acks] == [0, 1, 2] and acks[0] == (0, 1) and acks[1][1] == 2
    assert acks[2][1] == store.commit_calls <= 3 and publisher.calls == 3
