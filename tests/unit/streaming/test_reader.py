"""The reader that fetches on the worker's loop (streaming/reader.py), against the real broker:
it reads exactly the partitions it is placed on, from the offsets it is given, follows seeks,
and keeps the group consumer's poll clock running while that consumer fetches nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.errors import ConsumerStoppedError
from kafka import KafkaProducer

from valeur_monitor.streaming.reader import LoopReader

pytestmark = pytest.mark.integration


async def read(reader: LoopReader, active: set[TopicPartition], clock: Any,
               want: int) -> dict[int, list[int]]:
    """Offsets per partition of the next `want` records (at most 20 s)."""
    got: dict[int, list[int]] = {}
    deadline = time.monotonic() + 20
    while sum(map(len, got.values())) < want and time.monotonic() < deadline:
        for tp, rows in (await reader.getmany(active, 0.5, 100, clock)).items():
            assert tp in active
            got.setdefault(tp.partition, []).extend(r.offset for r in rows)
    return got


async def test_the_reader_reads_where_it_is_placed(kafka_bootstrap: str,
                                                    kafka_topic: Any) -> None:
    topic = kafka_topic(prefix="reader", partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(10):
        producer.send(topic, value=b"a%d" % i, partition=0)
    for i in range(5):
        producer.send(topic, value=b"b%d" % i, partition=1)
    producer.flush(30)
    producer.close()
    reader = LoopReader(lambda: AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap,
                                                 group_id=None, enable_auto_commit=False,
                                                 auto_offset_reset="earliest"))
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    clock = SubscriptionState()     # the group consumer's poll clock, idle for 100 s
    clock._last_fetch_ended = time.monotonic() - 100
    try:
        await reader.place({tp0: 4, tp1: None})     # a committed offset, none (reset: earliest)
        assert await read(reader, {tp0, tp1}, clock, 11) == {0: list(range(4, 10)),
                                                             1: list(range(5))}
        assert clock.fetcher_idle_time < 5           # each fetch was a poll of the group's
        assert reader.state(tp0).highwater == 10 and not reader.buffered()
        reader.seek(tp0, 8)                          # faust seeks: the reader follows
        assert await read(reader, {tp0}, clock, 2) == {0: [8, 9]}
        await reader.place({tp1: 3})                 # a rebalance: only partition 1, from 3
        assert reader.state(tp0) is None
        assert await reader.getmany({tp0}, 0.2, 100, clock) == {}    # not placed: not read
        assert await read(reader, {tp0, tp1}, clock, 2) == {1: [3, 4]}
    finally:
        await reader.stop()
    with pytest.raises(ConsumerStoppedError):    # stopped: no new connection is opened
        await reader.getmany({tp1}, 0.1, 100, clock)
