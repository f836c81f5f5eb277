"""Replaying JSONL into Kafka: keys, raw values, pacing (no broker: a fake producer)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from valeur_monitor.kafka.produce import (
    ProduceReport,
    RateLimiter,
    customer_key,
    produce_lines,
    records,
)

pytestmark = pytest.mark.unit


def test_customer_key() -> None:
    assert customer_key(b'{"customer": "c-1", "id": "e"}') == b"c-1"
    assert customer_key('{"customer": "\u00e9t\u00e9"}'.encode()) == "\u00e9t\u00e9".encode()
    assert customer_key(b'{"specversion": "1.0", "subject": "c-2"}') == b"c-2"
    for line in (b'{"customer": ', b"[1,2]", b'{"customer": 5}', b'{"customer": ""}',
                 b'{"id": "e"}', b"not json"):
        assert customer_key(line) is None


def test_records_keep_the_raw_line_and_skip_blank_lines() -> None:
    good = b'{"id":"e1","customer":"c1",  "type":"x"}'
    lines = [good + b"\n", b"\n", b"   \r\n", b"{broken\r\n"]
    assert list(records(lines)) == [(b"c1", good), (None, b"{broken")]


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_errback(self, fn: Any) -> None:
        if self.error is not None:
            fn(self.error)


class FakeProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.fail_every = fail_every

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> FakeFuture:
        self.sent.append((topic, key, value))
        failed = self.fail_every and len(self.sent) % self.fail_every == 0
        return FakeFuture(RuntimeError("boom") if failed else None)


def test_produce_lines_counts_and_reports_failures() -> None:
    lines = [orjson.dumps({"customer": f"c{i}"}) for i in range(10)] + [b"oops"]
    producer = FakeProducer(fail_every=4)
    progress: list[int] = []
    report = produce_lines(producer, "events", lines, progress=progress.append)
    assert isinstance(report, ProduceReport)
    assert (report.sent, report.keyed, report.unkeyed, report.failed) == (11, 10, 1, 2)
    assert report.errors == ["RuntimeError('boom')"] * 2
    assert producer.sent[0] == ("events", b"c0", lines[0]) and producer.sent[-1][1] is None
    assert sum(progress) == 11


def test_rate_limiter_paces_without_bursting_after_a_pause() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(21):
        limiter.wait()
    assert now[0] == pytest.approx(102.0)          # 21 items at 10/s: the last one at +2 s
    now[0] += 30                                    # a long pause does not allow a burst
    slept.clear()
    for _ in range(5):
        limiter.wait()
    assert sum(slept) == pytest.approx(0.4)
    RateLimiter(None).wait()                        # unlimited: never sleeps
    with pytest.raises(ValueError):
        RateLimiter(0)
