"""Stream time per partition and customer ownership."""

from __future__ import annotations

import pytest

from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.streaming.clock import Partitioner, StreamClock

pytestmark = pytest.mark.unit


def test_key_partition_is_kafkas_default_partitioner() -> None:
    # Values of the Java client's murmur2 partitioner (same as kafka-python and aiokafka).
    from kafka.partitioner.default import DefaultPartitioner, murmur2

    for key in (b"cust-00001", b"c1", b"\xc3\xa9t\xc3\xa9", b"x" * 100):
        assert key_partition(key, 12) == (murmur2(key) & 0x7FFFFFFF) % 12
    assert DefaultPartitioner  # the class the producer uses hashes the same way
    part = Partitioner(4)
    assert part("cust-00001") == key_partition(b"cust-00001", 4)
    assert part("cust-00001") == part("cust-00001")
    with pytest.raises(ValueError):
        Partitioner(0)


def test_event_clock_moves_only_with_events_and_per_partition() -> None:
    clock = StreamClock("event", lateness=300_000, wall=lambda: 10**13)
    clock.assign({0, 1})
    assert clock.floor(0) == 0 and clock.floors() == {0: {0, 1}}
    clock.observe(0, 5_000_000)
    assert clock.floor(0) == 5_000_000 and clock.floor(1) == 0
    assert clock.floors() == {5_000_000: {0}, 0: {1}}
    clock.observe(0, 4_000_000)                # never backwards
    assert clock.floor(0) == 5_000_000
    clock.observe(7, 9_000_000)                # not owned: ignored
    assert 7 not in clock.owned
    clock.assign({1, 2})                       # rebalance: kept partitions keep their time
    clock.observe(1, 2_000_000)
    clock.assign({1, 2})
    assert clock.floor(1) == 2_000_000 and clock.floor(2) == 0 and clock.owned == {1, 2}


def test_wall_clock_leads_only_idle_partitions() -> None:
    now = [1_000_000_000]
    clock = StreamClock("wall", lateness=1_000, idle_after=2_000, wall=lambda: now[0])
    clock.assign({0, 1})
    assert clock.floor(1) == 0                 # just assigned: a backlog may be on its way
    now[0] += 2_000
    assert clock.floor(1) == now[0] - 1_000    # idle: now - lateness
    clock.touch(0)                             # partition 0 is receiving records
    clock.observe(0, now[0] - 60_000)          # ... an hour-old backlog, say
    assert clock.floor(0) == now[0] - 60_000   # follows its events, not the wall clock
    assert clock.floors() == {now[0] - 60_000: {0}, now[0] - 1_000: {1}}
    now[0] += 2_000                            # partition 0 went quiet too
    assert clock.floor(0) == now[0] - 1_000
    clock.observe(0, now[0] + 60_000)          # events ahead of the wall clock
    assert clock.floor(0) == now[0] + 60_000
    assert StreamClock("wall", 1_000).floors() == {}   # nothing owned


def test_a_partition_with_a_backlog_is_never_idle() -> None:
    now = [1_000_000]
    waiting = {0: True, 1: False}
    clock = StreamClock("wall", lateness=1_000, idle_after=2_000, wall=lambda: now[0])
    clock.backlog = waiting.__getitem__
    clock.assign({0, 1})
    now[0] += 10_000                              # no record for 10 s on either partition
    assert clock.floor(0) == 0                    # records wait in Kafka: follows its events
    assert clock.floor(1) == now[0] - 1_000       # truly idle: the wall clock leads
    waiting[0] = False
    assert clock.floor(0) == now[0] - 1_000
