"""Stream time per Kafka partition, and which worker owns which customer.

A customer's events all arrive on one partition of the events topic (keyed by customer id), in
the order they were produced. If the input is ordered up to the rules' `lateness`, no future
event of partition p is older than ``max event time seen on p − lateness``: that is the *safe*
stream time of p. A worker advances a customer only up to the safe time of the customer's own
partition, and only if it owns that partition, so:

* no event is ever late because another partition (or worker) ran ahead: results are the same
  as the embedded run over the same events, whatever the number of workers and the batching;
* two workers never advance the same customer (no lost update between them in Redis).

In `wall` mode the safe time of every owned partition is also at least ``now − lateness`` (live
operation: deadlines fire for customers who send nothing more, and an event older than that is
a late event with its documented compensating effect). In `event` mode (replays, tests) stream
time moves only with events, and end of input is an explicit drain (`valeur-monitor advance`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka.partitioner.default import murmur2

from valeur_monitor.settings import ClockMode


def now_ms() -> int:
    return int(time.time() * 1000)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, Java-compatible) gives to `key`."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


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

    def __init__(self, mode: ClockMode, lateness: int,
                 wall: Callable[[], int] = now_ms) -> None:
        self.mode = mode
        self.lateness = lateness
        self.wall = wall
        self.safe: dict[int, int] = {}

    def assign(self, partitions: Iterable[int]) -> None:
        """The full new assignment: kept partitions keep their time, new ones start at 0."""
        wanted = set(partitions)
        self.safe = {p: self.safe.get(p, 0) for p in sorted(wanted)}

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self.safe)

    def wall_floor(self) -> int:
        return self.wall() - self.lateness if self.mode == "wall" else 0

    def floor(self, partition: int) -> int:
        """Stream time partition `partition` may safely be advanced to now."""
        return max(self.safe.get(partition, 0), self.wall_floor())

    def observe(self, partition: int, watermark: int) -> None:
        """A batch of `partition` was applied up to `watermark` (it becomes its safe time)."""
        if partition in self.safe and watermark > self.safe[partition]:
            self.safe[partition] = watermark

    def idle_target(self) -> int:
        """Stream time every owned customer may be advanced to without any event: the lowest
        floor over the owned partitions (0 when nothing is owned)."""
        if not self.safe:
            return 0
        wall = self.wall_floor()
        return min(max(t, wall) for t in self.safe.values())

    def allows(self, partition: int, until: int, current: int | None = None) -> bool:
        """May a customer of `partition` be advanced to `until` now (by a batch of `current`)?"""
        if partition not in self.safe:
            return False
        return partition == current or self.floor(partition) >= until
