"""The worker's fetches on its own event loop: an aiokafka consumer placed by faust's group.

faust's aiokafka consumer runs in a thread with its own event loop: each fetch is a request
through mode's method queue to that thread and a future handed back, and that thread's loop,
fetcher and wake-ups compete for the GIL with the worker's loop and its processing thread
(docs/benchmarks.md "Worker, ninth wave": ≈ 1.2 ms of CPU per batch cycle in that thread).
`LoopReader` fetches the events topic with a second aiokafka consumer on the worker's own loop,
without a group. faust's consumer keeps everything else: group membership, heartbeats,
rebalances, the committed offsets and the commits of acked offsets. After every seek faust
makes (an assignment, a rebalance seen by the batch loop), the reader is assigned the same
partitions at the group consumer's positions, so it reads exactly what faust would have read.

The group consumer is never asked for records, so aiokafka would count it idle and leave the
group after `max_poll_interval`: each fetch of the reader is also a fetch of the group
consumer's subscription (its idle clock restarts, as when faust fetches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError

log = logging.getLogger(__name__)


class LoopReader:
    """An aiokafka consumer without a group on the running loop, placed from outside."""

    def __init__(self, make: Callable[[], AIOKafkaConsumer]) -> None:
        self._make = make
        self._consumer: AIOKafkaConsumer | None = None
        self._stopped = False
        self.placed: set[TopicPartition] = set()

    async def start(self) -> AIOKafkaConsumer:
        if self._stopped:   # the worker is stopping: never start another connection
            raise ConsumerStoppedError()
        if self._consumer is None:
            consumer = self._make()
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def place(self, positions: Mapping[Any, int | None]) -> None:
        """Read exactly these partitions, each from its offset (None: the reset policy)."""
        consumer = await self.start()
        tps = {TopicPartition(tp.topic, tp.partition): offset
               for tp, offset in positions.items()}
        consumer.assign(list(tps))
        for tp, offset in tps.items():
            if offset is not None and offset >= 0:
                consumer.seek(tp, offset)
        self.placed = set(tps)

    def seek(self, tp: Any, offset: int) -> None:
        """faust moved one partition (a seek): the reader follows if it reads it."""
        where = TopicPartition(tp.topic, tp.partition)
        if self._consumer is not None and where in self.placed:
            self._consumer.seek(where, offset)

    async def getmany(self, active: Iterable[Any], timeout: float, max_records: int | None,
                      idle_clock: Any) -> dict[TopicPartition, list[Any]]:
        """Fetched records of the `active` partitions (as faust's consumer thread returns
        them); `idle_clock` is the group consumer's subscription (its poll clock)."""
        consumer = await self.start()
        wanted = {TopicPartition(tp.topic, tp.partition) for tp in active} & self.placed
        if not wanted:
            return {}
        fetcher = consumer._fetcher
        with idle_clock.fetch_context(), consumer._subscription.fetch_context():
            records: dict[TopicPartition, list[Any]] = await fetcher.fetched_records(
                wanted, timeout=timeout, max_records=max_records)
        return records

    def buffered(self) -> bool:
        """Whether fetched records wait in the reader (no fetch pending for their broker)."""
        return self._consumer is not None and bool(self._consumer._fetcher._records)

    def state(self, tp: Any) -> Any:
        """aiokafka's state of a partition the reader reads (highwater, position), or None."""
        if self._consumer is None:
            return None
        subscription = self._consumer._subscription.subscription
        if subscription is None:
            return None
        where = TopicPartition(tp.topic, tp.partition)
        if where not in self.placed:
            return None
        return subscription.assignment.state_value(where)

    async def stop(self) -> None:
        self._stopped = True
        consumer, self._consumer = self._consumer, None
        self.placed = set()
        if consumer is not None:
            await consumer.stop()
