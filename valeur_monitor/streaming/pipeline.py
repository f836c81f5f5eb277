"""The worker's logic, testable without a broker: batches in, the shared Processor, outputs out.

`StreamPipeline` (synchronous) runs a batch through the shared `Processor` over a `WorkerScope` of
the Redis store, one call per partition (each with its partition's stream time), and builds the
messages to publish. `WorkerRuntime` (asyncio, `streaming/runtime.py`)
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

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from valeur_monitor.codec import decode, record_bytes
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import EventError
from valeur_monitor.service import BatchResult, DeadLetter, Processor
from valeur_monitor.store.base import Store
from valeur_monitor.streaming.clock import Partitioner, StreamClock
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
        self.scope.owns = self._owns
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

    def _owns(self, customer: str) -> bool:
        part = self.partitioner
        return part is not None and part(customer) in self.clock.owned

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
            value = record.value
            try:
                event = decode(value)
            except EventError as exc:
                # the bytes kept as the codec keeps them (b"" for a tombstone: the reason says)
                result.dead_letters.append(DeadLetter(record_bytes(value)[0], exc.reason,
                                                      exc.detail))
                continue
            assert value is not None    # decoded, so it had bytes
            home = part(event.customer)
            if home != partition:
                # Not keyed by customer (or keyed for another partition count): send it to the
                # customer's partition, where it is ordered with that customer's other events.
                decoded.reroute.append(Message(self.events_topic, event.customer.encode(),
                                               value, record.headers, partition=home))
                result.received -= 1
            else:
                decoded.events.append(event)
                decoded.raws.append(value)
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
