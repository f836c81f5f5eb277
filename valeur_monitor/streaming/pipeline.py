"""The worker's logic, testable without a broker: batches in, the shared Processor, outputs out.

`StreamPipeline` (synchronous) runs a batch through the shared `Processor` over a `WorkerScope` of
the Redis store, one call per partition (each with its partition's stream time), and builds the
messages to publish. `WorkerRuntime` (asyncio)
orders the steps of every batch so that the Redis commit is the commit point:

    process (commit staged) -> publish outputs, wait for acks -> apply the commit -> ack offsets

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from valeur_monitor.codec import decode
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import BrokerError, EventError, StoreError, TransientError
from valeur_monitor.masking import mask
from valeur_monitor.metrics import BROKER_OPERATIONS, Metrics
from valeur_monitor.reload import Reloader
from valeur_monitor.runner.observe import record_batch
from valeur_monitor.service import BatchResult, DeadLetter, Processor
from valeur_monitor.store.base import Store
from valeur_monitor.streaming.clock import Partitioner, StreamClock
from valeur_monitor.streaming.faults import fault_from_env
from valeur_monitor.streaming.outputs import Message, OutputTopics, Record, build_messages
from valeur_monitor.streaming.scope import WorkerScope

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures worth retrying in place: the batch stays unacknowledged meanwhile. Permanent store
# errors (authentication, ACL, OOM, script, data lost) are not: the worker stops on them.
TRANSIENT: tuple[type[BaseException], ...] = (TransientError, BrokerError, OSError)


@dataclass
class Step:
    """One Processor call: its result and the messages to publish before committing it."""

    result: BatchResult
    messages: list[Message]
    rerouted: int = 0
    seconds: float = 0.0
    offsets: dict[int, int] = field(default_factory=dict)   # partition -> next offset to read


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
        steps = [self.process(partition, group) for partition, group in groups.items()]
        step = Step(_merge([s.result for s in steps]), [m for s in steps for m in s.messages],
                    sum(s.rerouted for s in steps))
        for s in steps:
            step.offsets.update(s.offsets)
        step.seconds = time.perf_counter() - began
        return step

    def process(self, partition: int, records: Sequence[Record]) -> Step:
        """Apply one partition's records; the commit stays staged until `commit()`."""
        began = time.perf_counter()
        part = self._partition_of()
        clock = self.clock
        result = BatchResult(received=len(records), rules_version=self.processor.rules.version)
        events: list[Event] = []
        raws: list[bytes] = []      # each event's record, for its dead letter if it has one
        reroute: list[Message] = []
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
                reroute.append(Message(self.events_topic, event.customer.encode(), record.value,
                                       record.headers, partition=home))
                result.received -= 1
            else:
                events.append(event)
                raws.append(record.value)

        def allow(customer: str, until: int) -> bool:
            # Only this partition's customers: the batches of one take touch disjoint
            # customers, so their commits can wait and be applied together.
            return part(customer) == partition

        clock.touch(partition)
        self.scope.scoped(clock.floor(partition), allow)
        result = self.processor.process_events(events, result, raws)
        clock.observe(partition, result.watermark)
        self.reached[partition] = max(self.reached.get(partition, 0), result.watermark)
        messages = build_messages(result, self.outputs, source_topic=self.events_topic,
                                  records=records)
        step = Step(result, reroute + messages, len(reroute), time.perf_counter() - began)
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

    def commit(self) -> int:
        """Apply the staged commit(s) to the store: the commit point of the batch."""
        return self.scope.flush()

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


@dataclass
class Health:
    """What /healthz and /readyz report."""

    started: float = field(default_factory=time.monotonic)
    failing_since: float | None = None
    last_error: str = ""
    batches: int = 0
    events: int = 0
    rerouted: int = 0
    first_batch: float | None = None    # wall clock (s) when the first batch started
    last_batch: float | None = None     # wall clock (s) when the last batch was committed
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("process", "publish", "commit"), 0.0))      # time spent per step, for tuning


class WorkerRuntime:
    """Asyncio side: serialises batches and ticks, orders process/publish/commit, retries."""

    def __init__(self, pipeline: StreamPipeline, publisher: Publisher,
                 metrics: Metrics | None = None, *, retry_delay: float = 0.2,
                 max_retry_delay: float = 5.0, unhealthy_after: float = 60.0) -> None:
        self.pipeline = pipeline
        self.publisher = publisher
        self.metrics = metrics
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.unhealthy_after = unhealthy_after
        self.health = Health()
        self.lock = asyncio.Lock()
        self._assignment = asyncio.Event()
        self.positions: dict[int, int] = {}   # partition -> next offset after the last commit
        self.fault = fault_from_env()          # chaos tests only (streaming/faults.py)
        self.reloader: Reloader | None = None  # `rules reload` / SIGHUP (valeur_monitor/reload)

    def _reload_if_asked(self) -> None:
        """Between batches, under the lock: switch rules if a reload was requested."""
        if self.reloader is not None and self.reloader.requested:
            self.reloader.apply(self.pipeline.processor, self.positions, self.pipeline.reached)

    # -- entry points (the faust agent, timer and rebalance signal call these) -----------------
    async def assign(self, partitions: set[int], total: int) -> None:
        """Rebalance done: the full new assignment of the events topic."""
        async with self.lock:
            self.pipeline.assign(partitions, total)
        self._assignment.set()
        log.info("assigned partitions %s of %d", sorted(partitions), total)

    async def revoke(self, partitions: set[int]) -> None:
        """Rebalance starts: stop advancing customers of these partitions (waits for a batch
        in progress, so the new owner never works on a customer at the same time)."""
        async with self.lock:
            self.pipeline.revoke(partitions)
            for partition in partitions:
                self.positions.pop(partition, None)

    async def consume(self, records: Sequence[Record], ack: Callable[[], None]) -> None:
        """The batch consumer's entry point (streaming/consumer.py)."""
        await self.handle(records, ack)

    async def idle(self) -> None:
        """Return once no batch or tick is in progress (a rebalance waits for this)."""
        async with self.lock:
            return

    async def handle(self, records: Sequence[Record],
                     ack: Callable[[], None] | None = None) -> None:
        """Process a batch (any mix of partitions); returns once all of it is committed.
        `ack` runs right after the commit, under the lock (before any revocation)."""
        if not self.pipeline.assigned:   # events before the assignment signal: wait for it
            await self._assignment.wait()
        if self.health.first_batch is None:
            self.health.first_batch = time.time()
        async with self.lock:
            self._reload_if_asked()
            began = time.perf_counter()
            step = await self._retry(
                "process", lambda: asyncio.to_thread(self.pipeline.process_batch, records),
                undo=self.pipeline.discard)
            self.health.seconds["process"] += time.perf_counter() - began
            if self.fault is not None:
                self.fault.reached("after-process")
            await self._finish(step, batch=True)
            if self.fault is not None:
                self.fault.reached("after-commit")   # committed to Redis, offsets not acked
            if ack is not None:
                ack()

    async def tick(self) -> None:
        """Timer: advance stream time while idle (wall mode), or drain what became due."""
        if not self.pipeline.assigned:
            return
        async with self.lock:
            self._reload_if_asked()
            step = await self._retry("advance", lambda: asyncio.to_thread(self.pipeline.advance),
                                     undo=self.pipeline.discard)
            if step is not None:
                await self._finish(step, batch=False)

    # -- internals -------------------------------------------------------------------------------
    async def _finish(self, step: Step, *, batch: bool) -> None:
        """Publish, then commit (the commit point), then count."""
        h = self.health
        began = time.perf_counter()
        if step.messages:
            await self._retry("publish", lambda: self.publisher.publish(step.messages))
        if batch and self.fault is not None:
            self.fault.reached("after-publish")
        published = time.perf_counter()
        await self._retry("commit", lambda: asyncio.to_thread(self.pipeline.commit))
        committed = time.perf_counter()
        self.positions.update(step.offsets)
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

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]],
                     undo: Callable[[], None] | None = None) -> T:
        """Run `call` until it succeeds, backing off on transient failures."""
        delay = self.retry_delay
        while True:
            try:
                value = await call()
            except TRANSIENT as exc:
                if undo is not None:
                    undo()
                self._failed(operation, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            if self.health.failing_since is not None:
                log.info("%s recovered", operation)
            self.health.failing_since = None
            return value

    def _failed(self, operation: str, exc: BaseException) -> None:
        h = self.health
        if h.failing_since is None:
            h.failing_since = time.monotonic()
        h.last_error = mask(f"{operation}: {exc}")   # shown on /healthz and /readyz
        log.warning("%s failed (will retry): %s", operation, exc)
        if self.metrics is not None:
            if operation in BROKER_OPERATIONS:
                self.metrics.broker_error(operation)
            else:   # the store call that failed (load, commit, due...), not the step
                self.metrics.store_error(exc.operation if isinstance(exc, StoreError)
                                         else operation)

    # -- probes ----------------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        h = self.health
        failing = 0.0 if h.failing_since is None else time.monotonic() - h.failing_since
        if failing > self.unhealthy_after:
            return False, f"failing for {failing:.0f}s: {h.last_error}"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.pipeline.assigned:
            return False, "waiting for a partition assignment"
        if self.health.failing_since is not None:
            return False, self.health.last_error
        return True, "ok"
