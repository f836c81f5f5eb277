"""Replaying JSONL event files into the events topic with kafka-python's KafkaProducer.

Every non-blank line is sent as is (raw bytes, trailing newline removed), so malformed lines
reach the workers and become dead letters with their reason. The key is the customer id read
from the line (codec.routing_key: `customer`, else CloudEvents `subject`); a line whose customer
cannot be read is sent without a key (the producer then picks a partition).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from valeur_monitor.codec import routing_key
from valeur_monitor.errors import BrokerError
from valeur_monitor.kafka.partition import key_partition


def customer_key(line: bytes) -> bytes | None:
    """The Kafka key of one line: its customer id as UTF-8, or None when it cannot be read.

    The one routing-key function (codec.routing_key): the same precedence as the decoder, so
    a CloudEvents record keyed by its `customer` extension lands where it is processed."""
    return routing_key(line)


def placed(lines: Iterable[bytes], partitions: int) -> list[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, line) of each line produced keyed by `customer_key` into a
    fresh topic of `partitions` partitions: a keyed line where the default partitioner puts it
    (murmur2 of the key), an unkeyed one round-robin by its rank (the producer's choice is
    random: a fixed one keeps tests and benchmarks reproducible); offsets count from 0."""
    offsets = [0] * partitions
    out: list[tuple[int, int, bytes | None, bytes]] = []
    for line in lines:
        key = customer_key(line)
        part = key_partition(key, partitions) if key is not None else len(out) % partitions
        out.append((part, offsets[part], key, line))
        offsets[part] += 1
    return out


def records(lines: Iterable[bytes]) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) for every non-blank line."""
    for line in lines:
        value = line.rstrip(b"\r\n")
        if value.strip():
            yield customer_key(value), value


class RateLimiter:
    """Paces calls to at most `rate` per second on average (no burst beyond one second)."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._count = 0

    def wait(self, n: int = 1) -> None:
        """Account for `n` more items, sleeping first if they would come too early."""
        if self.rate is None:
            return
        now = self._clock()
        if self._start is None or now - (self._start + self._count / self.rate) > 1.0:
            # first call, or we fell behind by more than a second: restart the schedule
            self._start, self._count = now, 0
        due = self._start + self._count / self.rate
        if due > now:
            self._sleep(due - now)
        self._count += n


@dataclass
class ProduceReport:
    """What `produce_lines` sent."""

    sent: int = 0
    keyed: int = 0
    unkeyed: int = 0
    bytes: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def producer_config(client_config: dict[str, Any]) -> dict[str, Any]:
    """KafkaProducer settings for replays: batched (linger 20 ms, 256 KiB), acks=all."""
    return {**client_config, "acks": "all", "linger_ms": 20, "batch_size": 256 * 1024,
            "max_request_size": 1_048_576}


def open_producer(client_config: dict[str, Any]) -> Any:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(**producer_config(client_config))
    except KafkaError as exc:
        servers = ",".join(client_config.get("bootstrap_servers", []))
        raise BrokerError(f"cannot reach Kafka at {servers}: {exc}") from exc


def produce_lines(producer: Any, topic: str, lines: Iterable[bytes], *,
                  rate: float | None = None, report: ProduceReport | None = None,
                  progress: Callable[[int], None] | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> ProduceReport:
    """Send every line to `topic`; does not flush (call `finish`). `progress(n)` per 1000."""
    report = report if report is not None else ProduceReport()
    limiter = RateLimiter(rate)
    began = time.perf_counter()

    def failed(exc: BaseException) -> None:
        report.failed += 1
        if len(report.errors) < 5:
            report.errors.append(repr(exc))

    pending = 0
    for key, value in records(lines):
        limiter.wait()
        future = producer.send(topic, key=key, value=value, headers=headers)
        future.add_errback(failed)
        report.sent += 1
        report.bytes += len(value)
        if key is None:
            report.unkeyed += 1
        else:
            report.keyed += 1
        pending += 1
        if progress is not None and pending >= 1000:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    report.seconds += time.perf_counter() - began
    return report


def finish(producer: Any, report: ProduceReport, timeout: float = 60.0) -> ProduceReport:
    """Flush (every record acknowledged or failed) and close the producer."""
    began = time.perf_counter()
    try:
        producer.flush(timeout=timeout)
    finally:
        producer.close(timeout=10)
    report.seconds += time.perf_counter() - began
    return report
