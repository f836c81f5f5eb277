"""The worker's logic, testable without a broker: batches in, the shared Processor, outputs out.

`StreamPipeline` (synchronous) runs a batch through the shared `Processor` over a `WorkerScope` of
the Redis store, one call per partition (each with its partition's stream time), and builds the
messages to publish. `WorkerRuntime` (asyncio)
orders the steps of every batch so that the Redis commit is the commit point:

    process (commit staged, then encoded) -> publish outputs, wait for acks -> apply the
    commit -> ack offsets

and pipelines batches: N+1 is processed while N is published and applied (in that order).

* crash before the Redis commit: Kafka redelivers the batch; it is processed again from the
  same stored states and its outputs are published again (at-least-once outputs);
* crash after it: the redelivered events are duplicates (dedupe marks are in the committed
  states) and change nothing (exactly-once effect).

The faust agent and timer (`streaming/app.py`) only call `WorkerRuntime.handle` and `tick`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from valeur_monitor.codec import decode
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import EventError
from valeur_monitor.metrics import Metrics
from valeur_monitor.reload import Reloader
from valeur_monitor.runner.observe import record_batch
from valeur_monitor.service import BatchResult, DeadLetter, Processor
from valeur_monitor.store.base import Store
from valeur_monitor.streaming.clock import Partitioner, StreamClock
from valeur_monitor.streaming.faults import fault_from_env
from valeur_monitor.streaming.health import Supervised
from valeur_monitor.streaming.outputs import Message, OutputTopics, Record, build_messages
from valeur_monitor.streaming.scope import Pending, WorkerScope

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One Processor call: its result and the messages to publish before committing it."""

    result: BatchResult
    messages: list[Message]
    rerouted: int = 0
    seconds: float = 0.0
    offsets: dict[int, int] = field(default_factory=dict)   # partition -> next offset to read
    pending: Pending | None = None  # the prepared commit (None: nothing to write)


@dataclass
class _Decoded:
    """One partition's records decoded: its events (and their records), the rest."""

    result: BatchResult         # received count and dead letters so far
    events: list[Event]
    raws: list[bytes]           # each event's record, for its dead letter if it has one
    reroute: list[Message]      # records of another partition's customers, sent there


class StreamPipeline:
    """Synchronous core: records -> Processor per partition -> staged commits + messages."""

    def __init__(self, rules: RuleSet, store: Store, *, events_topic: str,
                 outputs: OutputTopics, clock: StreamClock) -> None:
        self.scope = WorkerScope(store)
        self.processor = Processor(rules, self.scope)
        self.events_topic = events_topic
        self.outputs = outputs
        self.clock = clock
        self.partitioner: Partitioner | None = None
        self.reached: dict[int, int] = {}   # partition -> stream time its customers were swept to

    # -- assignment ----------------------------------------------------------------------------
    def assign(self, partitions: set[int], total: int) -> None:
        """The worker's full assignment on the events topic, out of `total` partitions."""
        if self.partitioner is None or self.partitioner.partitions != total:
            self.partitioner = Partitioner(total)
            self.scope.forget()
        else:       # keep only states of partitions owned throughout
            part, kept = self.partitioner, self.clock.owned & partitions
            self.scope.forget(lambda customer: part(customer) in kept)
        self.clock.assign(partitions)
        self.reached = {}

    def revoke(self, partitions: set[int]) -> None:
        """Partitions given up: their customers' states may change elsewhere from now on."""
        self.clock.assign(self.clock.owned - partitions)
        part = self.partitioner
        if part is not None:
            self.scope.forget(lambda customer: part(customer) not in partitions)

    @property
    def assigned(self) -> bool:
        return self.partitioner is not None

    def _partition_of(self) -> Partitioner:
        if self.partitioner is None:
            raise RuntimeError("no partition assignment yet")
        return self.partitioner

    # -- steps ---------------------------------------------------------------------------------
    def process_batch(self, records: Sequence[Record]) -> Step:
        """Apply a batch (any mix of partitions): one Processor call per partition, with that
        partition's stream time, touching only that partition's customers; the commits stay
        staged until `commit()`."""
        began = time.perf_counter()
        groups: dict[int, list[Record]] = {}
        for record in records:
            groups.setdefault(record.partition, []).append(record)
        decoded = {partition: self._decode(partition, group) for partition, group in groups.items()}
        # the states of every partition's customers in one store round trip (cache misses)
        self.scope.load(dict.fromkeys(e.customer for d in decoded.values() for e in d.events))
        steps = [self._apply(partition, groups[partition], d) for partition, d in decoded.items()]
        step = Step(_merge([s.result for s in steps]), [m for s in steps for m in s.messages],
                    sum(s.rerouted for s in steps))
        for s in steps:
            step.offsets.update(s.offsets)
        step.seconds = time.perf_counter() - began
        return step

    def process(self, partition: int, records: Sequence[Record]) -> Step:
        """Apply one partition's records; the commit stays staged until `commit()`."""
        began = time.perf_counter()
        step = self._apply(partition, records, self._decode(partition, records))
        step.seconds = time.perf_counter() - began
        return step

    def _decode(self, partition: int, records: Sequence[Record]) -> _Decoded:
        part = self._partition_of()
        result = BatchResult(received=len(records), rules_version=self.processor.rules.version)
        decoded = _Decoded(result, [], [], [])
        for record in records:      # each record is decoded once, here
            try:
                event = decode(record.value)
            except EventError as exc:
                result.dead_letters.append(DeadLetter(record.value, exc.reason, exc.detail))
                continue
            home = part(event.customer)
            if home != partition:
                # Not keyed by customer (or keyed for another partition count): send it to the
                # customer's partition, where it is ordered with that customer's other events.
                decoded.reroute.append(Message(self.events_topic, event.customer.encode(),
                                               record.value, record.headers, partition=home))
                result.received -= 1
            else:
                decoded.events.append(event)
                decoded.raws.append(record.value)
        return decoded

    def _apply(self, partition: int, records: Sequence[Record], decoded: _Decoded) -> Step:
        part = self._partition_of()
        clock = self.clock

        def allow(customer: str, until: int) -> bool:
            # Only this partition's customers: the batches of one take touch disjoint
            # customers, so their commits can wait and be applied together.
            return part(customer) == partition

        clock.touch(partition)
        self.scope.scoped(clock.floor(partition), allow)
        result = self.processor.process_events(decoded.events, decoded.result, decoded.raws)
        clock.observe(partition, result.watermark)
        self.reached[partition] = max(self.reached.get(partition, 0), result.watermark)
        messages = build_messages(result, self.outputs, source_topic=self.events_topic,
                                  records=records)
        reroute = decoded.reroute
        step = Step(result, reroute + messages, len(reroute))
        if records:
            step.offsets[partition] = records[-1].offset + 1
        return step

    def advance(self) -> Step | None:
        """Timer tick: advance the customers of each owned partition whose stream time moved
        without events (wall mode, idle partitions) to it. None when nothing moved."""
        part = self._partition_of()
        began = time.perf_counter()
        results = []
        for until, partitions in sorted(self.clock.floors().items()):
            behind = {p for p in partitions if self.reached.get(p, 0) < until}
            if not behind or until <= 0:
                continue

            def allow(customer: str, at: int, mine: set[int] = behind) -> bool:
                return part(customer) in mine

            self.scope.scoped(until, allow)
            results.append(self.processor.advance_to(until))
            for p in behind:
                self.reached[p] = until
        if not results:
            return None
        result = _merge(results)
        return Step(result, build_messages(result, self.outputs), 0,
                    time.perf_counter() - began)

    def commit(self, pending: Pending | None = None) -> int:
        """Apply a prepared batch, else the staged commit(s), to the store: the commit point
        of the batch. Returns how many Processor commits that was."""
        if pending is None:
            return self.scope.flush()
        self.scope.apply(pending)
        return pending.count

    def prepare(self) -> Pending | None:
        """Encode the staged commit(s): the next batch may then be processed (and change the
        same states in place) while this one is published and applied."""
        return self.scope.prepare()

    def discard(self) -> None:
        self.scope.discard()


def _merge(results: Sequence[BatchResult]) -> BatchResult:
    """One BatchResult for several Processor calls (disjoint customers)."""
    if len(results) == 1:
        return results[0]
    out = BatchResult()
    for result in results:
        out.absorb(result)
    return out


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Message]) -> None:
        """Send every message; return once the broker acknowledged all of them."""
        ...


class WorkerRuntime(Supervised):
    """Asyncio side: orders process/publish/commit/ack of batches and ticks, retries.

    Batches are pipelined: batch N+1 is processed while batch N (already encoded by
    `StreamPipeline.prepare`) is published and applied. The order of effects stays the
    serial one: N's outputs are acknowledged before N's commit, N's commit before N+1's, and
    N's offsets are acked only after N's commit. At most one batch is in flight while the next
    is processed; a tick, a rebalance, a reload and a retried failure first let it finish.
    """

    def __init__(self, pipeline: StreamPipeline, publisher: Publisher,
                 metrics: Metrics | None = None, *, retry_delay: float = 0.2,
                 max_retry_delay: float = 5.0, unhealthy_after: float = 60.0) -> None:
        super().__init__(metrics, retry_delay=retry_delay, max_retry_delay=max_retry_delay,
                         unhealthy_after=unhealthy_after)
        self.pipeline = pipeline
        self.publisher = publisher
        self.lock = asyncio.Lock()
        self._assignment = asyncio.Event()
        self.positions: dict[int, int] = {}   # partition -> next offset after the last commit
        self.fault = fault_from_env()          # chaos tests only (streaming/faults.py)
        self.reloader: Reloader | None = None  # `rules reload` / SIGHUP (valeur_monitor/reload)
        self._inflight: asyncio.Task[None] | None = None   # the batch being published/applied
        self._retrying = False

    async def _reload_if_asked(self) -> None:
        """Between batches, under the lock: switch rules if a reload was requested."""
        if self.reloader is not None and self.reloader.requested:
            await self._settle()
            self.reloader.apply(self.pipeline.processor, self.positions, self.pipeline.reached)

    async def _settle(self) -> None:
        """Wait until the batch in flight is published, applied and acked (re-raises its
        permanent failure: the caller fails-stop)."""
        task = self._inflight
        if task is not None:
            try:
                await asyncio.shield(task)
            finally:
                if task.done():
                    self._inflight = None

    # -- entry points (the faust agent, timer and rebalance signal call these) -----------------
    async def assign(self, partitions: set[int], total: int) -> None:
        """Rebalance done: the full new assignment of the events topic."""
        async with self.lock:
            await self._settle()
            self.pipeline.assign(partitions, total)
        self._assignment.set()
        log.info("assigned partitions %s of %d", sorted(partitions), total)

    async def revoke(self, partitions: set[int]) -> None:
        """Rebalance starts: stop advancing customers of these partitions (waits for the batch
        in progress to be committed, so the new owner never works on a customer at the same
        time)."""
        async with self.lock:
            await self._settle()
            self.pipeline.revoke(partitions)
            for partition in partitions:
                self.positions.pop(partition, None)


    async def idle(self) -> None:
        """Return once no batch or tick is in progress or in flight (a rebalance waits)."""
        async with self.lock:
            await self._settle()

    async def handle(self, records: Sequence[Record],
                     ack: Callable[[], None] | None = None) -> None:
        """Process a batch (any mix of partitions); returns once all of it is committed and
        `ack` has run (one batch at a time: no pipelining)."""
        await self.consume(records, ack)
        await self.flushed()

    async def consume(self, records: Sequence[Record],
                      ack: Callable[[], None] | None = None) -> None:
        """The batch consumer's entry point (streaming/consumer.py): process a batch (any mix
        of partitions) and set it in flight: it is published, committed, then acked (`ack`,
        before any revocation completes) while the next batch is processed. Returns once the
        previous batch is settled."""
        if not self.pipeline.assigned:   # events before the assignment signal: wait for it
            await self._assignment.wait()
        if self.health.first_batch is None:
            self.health.first_batch = time.time()
        async with self.lock:
            await self._reload_if_asked()
            began = time.perf_counter()
            step = await self._retry("process", lambda: self._process(records),
                                     undo=self._undo)
            self.health.seconds["process"] += time.perf_counter() - began
            if self.fault is not None:
                self.fault.reached("after-process")
            await self._settle()            # N-1 done: offsets and commits stay in order
            self._inflight = asyncio.create_task(self._finish(step, ack, batch=True))

    async def flushed(self) -> None:
        """Wait until every batch handed over so far is committed and acked."""
        async with self.lock:
            await self._settle()

    async def tick(self) -> None:
        """Timer: advance stream time while idle (wall mode), or drain what became due."""
        if not self.pipeline.assigned:
            return
        async with self.lock:
            await self._settle()
            await self._reload_if_asked()
            step = await self._retry("advance", lambda: asyncio.to_thread(self._advance),
                                     undo=self._undo)
            if step is not None:
                await self._finish(step, None, batch=False)

    # -- internals -------------------------------------------------------------------------------
    def _undo(self) -> None:
        """A failed attempt: its in-place changes must not survive (states reloaded)."""
        self.pipeline.discard()
        self._retrying = True

    async def _process(self, records: Sequence[Record]) -> Step:
        if self._retrying:      # states were dropped: reload them once Redis has the batch
            await self._settle()  # in flight (its states are no longer in memory)
            self._retrying = False
        return await asyncio.to_thread(self._process_sync, records)

    def _process_sync(self, records: Sequence[Record]) -> Step:
        step = self.pipeline.process_batch(records)
        step.pending = self.pipeline.prepare()
        return step

    def _advance(self) -> Step | None:
        step = self.pipeline.advance()
        if step is not None:
            step.pending = self.pipeline.prepare()
        return step

    async def _finish(self, step: Step, ack: Callable[[], None] | None, *, batch: bool) -> None:
        """Publish, then commit (the commit point), then ack and count."""
        h = self.health
        began = time.perf_counter()
        if step.messages:
            await self._retry("publish", lambda: self.publisher.publish(step.messages))
        if batch and self.fault is not None:
            self.fault.reached("after-publish")
        published = time.perf_counter()
        pending = step.pending
        if pending is not None:
            await self._retry("commit",
                              lambda: asyncio.to_thread(self.pipeline.commit, pending))
        committed = time.perf_counter()
        if batch and self.fault is not None:
            self.fault.reached("after-commit")   # committed to Redis, offsets not acked
        self.positions.update(step.offsets)
        if ack is not None:
            ack()
        h.seconds["publish"] += published - began
        h.seconds["commit"] += committed - published
        seconds = step.seconds + (committed - began)
        result = step.result
        if batch:
            h.batches += 1
            h.events += result.received
            h.rerouted += step.rerouted
            h.last_batch = time.time()
        if self.metrics is None:
            return
        if batch or result.entries or result.notices or result.outcomes or result.dead_letters:
            record_batch(self.metrics, result, seconds)
        elif result.watermark:       # a tick that only moved stream time: not a batch
            self.metrics.set_watermark(result.watermark, int(time.time() * 1000))

    def ready(self) -> tuple[bool, str]:
        if not self.pipeline.assigned:
            return False, "waiting for a partition assignment"
        return super().ready()
