"""Kafka's default partitioner for keyed records (murmur2, Java-compatible): where a key goes."""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def key_hash(key: bytes) -> int:
    """The non-negative murmur2 hash of `key` Kafka's default partitioner takes modulo the
    partition count (Java-compatible)."""
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, Java-compatible) gives to `key`."""
    return key_hash(key) % partitions
