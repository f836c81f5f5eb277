"""Smoke test of the real Kafka broker with kafka-python: keyed partitioning and ordering."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.serializer import DefaultSerializer

pytestmark = pytest.mark.integration

MESSAGES = 10_000
KEYS = 100
PARTITIONS = 3


def test_keyed_messages_keep_partition_and_order(kafka_bootstrap: str, kafka_topic) -> None:
    topic = kafka_topic(prefix="smoke", partitions=PARTITIONS)

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        linger_ms=5,
        batch_size=256 * 1024,
        key_serializer=DefaultSerializer(),
        value_serializer=DefaultSerializer(),
    )
    try:
        counters: dict[str, int] = defaultdict(int)
        futures = []
        for i in range(MESSAGES):
            key = f"customer-{i % KEYS:03d}"
            seq = counters[key]
            counters[key] += 1
            futures.append((key, producer.send(topic, key=key, value=f"{key}:{seq}")))
        producer.flush(timeout=30)
        produced_partition: dict[str, set[int]] = defaultdict(set)
        for key, future in futures:
            produced_partition[key].add(future.get(timeout=30).partition)
    finally:
        producer.close(timeout=10)
    assert all(len(parts) == 1 for parts in produced_partition.values())

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"smoke-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
        key_deserializer=DefaultSerializer(),
        value_deserializer=DefaultSerializer(),
    )
    records = []
    try:
        deadline = time.monotonic() + 45
        while len(records) < MESSAGES and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # Nothing more may arrive: exactly MESSAGES, no duplicates.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        consumer.commit()
    finally:
        consumer.close()

    assert len(records) == MESSAGES
    assert len({r.value for r in records}) == MESSAGES

    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    seqs_of_key: dict[str, list[int]] = defaultdict(list)
    for r in records:
        partitions_of_key[r.key].add(r.partition)
        value_key, seq = r.value.rsplit(":", 1)
        assert value_key == r.key
        seqs_of_key[r.key].append(int(seq))

    assert set(partitions_of_key) == set(counters)
    for key, parts in partitions_of_key.items():
        assert parts == produced_partition[key], key  # one partition, the producer's choice
    for key, seqs in seqs_of_key.items():
        assert seqs == list(range(counters[key])), key  # per-key order preserved
    assert {p for parts in partitions_of_key.values() for p in parts} == set(range(PARTITIONS))
