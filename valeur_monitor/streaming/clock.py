"""Stream time per Kafka partition, and which worker owns which customer.

A customer's events all arrive on one partition of the events topic (keyed by customer id), in
the order they were produced. If the input is ordered up to the rules' `lateness`, no future
event of partition p is older than ``max event time seen on p − lateness``: that is the *safe*
stream time of p. A worker advances a customer only up to the safe time of the customer's own
partition, and only if it owns that partition, so:

* no event is ever late because another partition (or worker) ran ahead: results are the same
  as the embedded run over the same events, whatever the number of workers and the batching;
* two workers never advance the same customer (no lost update between them in Redis).

In `wall` mode a partition that received no record for `idle_after` (2 s) and has no backlog
(consumer lag 0, when the worker can tell) follows the wall clock: its safe time is at least
``now − lateness``, so deadlines fire for customers who send
nothing more (an event arriving later than that is a late event, with its documented
compensating effect). An active partition follows its events, so a backlog after downtime is
replayed in event time, not turned into late events. In `event` mode (replays, tests) stream
time moves only with events, and end of input is an explicit drain (`valeur-monitor advance`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.settings import ClockMode


def _no_backlog(partition: int) -> bool:
    return False


def now_ms() -> int:
    return int(time.time() * 1000)


class Partitioner:
    """customer id -> partition of the events topic (cached; the cache is bounded)."""

    def __init__(self, partitions: int, cache_size: int = 1_000_000) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def __call__(self, customer: str) -> int:
        part = self._cache.get(customer)
        if part is None:
            part = key_partition(customer.encode(), self.partitions)
            if len(self._cache) < self._cache_size:
                self._cache[customer] = part
        return part


class StreamClock:
    """Safe stream time of each partition this worker owns (see the module docstring)."""

    def __init__(self, mode: ClockMode, lateness: int, *, idle_after: int = 2_000,
                 wall: Callable[[], int] = now_ms) -> None:
        self.mode = mode
        self.lateness = lateness
        self.idle_after = idle_after          # ms without a record before the wall clock leads
        self.wall = wall
        self.safe: dict[int, int] = {}
        self.last_seen: dict[int, int] = {}   # wall ms of the last record of each partition
        # partition -> records are waiting in Kafka (or unknown yet): never idle then, so a
        # backlog after a restart or a slow fetch is replayed in event time, not made late
        self.backlog: Callable[[int], bool] = _no_backlog

    def assign(self, partitions: Iterable[int]) -> None:
        """The full new assignment: kept partitions keep their time, new ones start at 0 (and
        count as active: their backlog, if any, arrives before the wall clock may lead)."""
        now = self.wall()
        wanted = sorted(set(partitions))
        self.safe = {p: self.safe.get(p, 0) for p in wanted}
        self.last_seen = {p: self.last_seen.get(p, now) for p in wanted}

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self.safe)

    def touch(self, partition: int) -> None:
        """Records of `partition` arrived now."""
        if partition in self.last_seen:
            self.last_seen[partition] = self.wall()

    def wall_floor(self, partition: int) -> int:
        """`now − lateness` for an idle partition in wall mode, else 0."""
        if self.mode != "wall":
            return 0
        now = self.wall()
        if now - self.last_seen.get(partition, now) < self.idle_after or self.backlog(partition):
            return 0      # active: stream time follows its events (a backlog is not late)
        return now - self.lateness

    def floor(self, partition: int) -> int:
        """Stream time partition `partition` may safely be advanced to now."""
        return max(self.safe.get(partition, 0), self.wall_floor(partition))

    def observe(self, partition: int, watermark: int) -> None:
        """A batch of `partition` was applied up to `watermark` (it becomes its safe time)."""
        if partition in self.safe and watermark > self.safe[partition]:
            self.safe[partition] = watermark

    def floors(self) -> dict[int, set[int]]:
        """Owned partitions grouped by the stream time they may be advanced to now."""
        groups: dict[int, set[int]] = {}
        for partition in self.safe:
            groups.setdefault(self.floor(partition), set()).add(partition)
        return groups
