"""Where accepted webhooks go: Kafka (acks=all, idempotent producer) or a local JSONL file.

`send` returns only once every record is durable: acknowledged by all in-sync replicas, or
written and fsync'ed. Anything else raises BrokerError, and the route answers 503 so that the
sender retries; the retry maps to the same event ids, so the worker's dedupe absorbs a record
that did reach Kafka after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson

from valeur_monitor.errors import BrokerError
from valeur_monitor.service import DeadLetter
from valeur_monitor.settings import KafkaSettings
from valeur_monitor.streaming.outputs import H_DETAIL, H_REASON, H_SOURCE, MAX_DETAIL


class EventSink(Protocol):
    """Durable destination of mapped events and dead letters."""

    async def send(self, events: list[tuple[bytes, bytes]], dead: list[DeadLetter],
                   source: str) -> None: ...

    async def close(self) -> None: ...


def dead_letter_row(letter: DeadLetter, source: str) -> bytes:
    """A dead letter as one JSON line (the shape `run --dead-letters` writes), plus its source."""
    return orjson.dumps({"reason": letter.reason, "detail": letter.detail, "source": source,
                         "record": letter.raw.decode("utf-8", "replace")})


class FileSink:
    """Appends events (and dead letters, to their own file) with fsync before returning."""

    def __init__(self, events: Path, dead_letters: Path) -> None:
        for path in (events, dead_letters):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.events_path, self.dead_path = events, dead_letters
        self._lock = threading.Lock()

    def _append(self, path: Path, lines: list[bytes]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            data = b"".join(line + b"\n" for line in lines)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, events: list[tuple[bytes, bytes]], dead: list[DeadLetter],
               source: str) -> None:
        with self._lock:     # one writer at a time: lines of two requests never interleave
            if events:
                self._append(self.events_path, [value for _key, value in events])
            if dead:
                self._append(self.dead_path, [dead_letter_row(d, source) for d in dead])

    async def send(self, events: list[tuple[bytes, bytes]], dead: list[DeadLetter],
                   source: str) -> None:
        try:
            await asyncio.to_thread(self._write, events, dead, source)
        except OSError as exc:
            raise BrokerError(f"cannot append to {self.events_path}: {exc.strerror}") from exc

    async def close(self) -> None:
        return None


def aiokafka_config(kafka: KafkaSettings) -> dict[str, Any]:
    """AIOKafkaProducer keyword arguments for the configured cluster and security."""
    kafka.check()
    config: dict[str, Any] = {"bootstrap_servers": kafka.servers, "client_id": kafka.client_id,
                              "security_protocol": kafka.security_protocol,
                              "request_timeout_ms": int(kafka.request_timeout_s * 1000)}
    if kafka.uses_ssl:
        from aiokafka.helpers import create_ssl_context

        config["ssl_context"] = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.uses_sasl:
        assert kafka.sasl_password is not None
        config.update(sasl_mechanism=kafka.sasl_mechanism,
                      sasl_plain_username=kafka.sasl_username,
                      sasl_plain_password=kafka.sasl_password.get_secret_value())
    return config


class KafkaSink:
    """An idempotent aiokafka producer (acks=all), (re)started on demand.

    A producer that failed (broker unreachable, acknowledgement timeout) is dropped; the next
    request starts a fresh one, so the server recovers by itself when Kafka is back.
    """

    def __init__(self, kafka: KafkaSettings, events_topic: str, dead_topic: str,
                 timeout_s: float) -> None:
        self.config = {**aiokafka_config(kafka), "acks": "all", "enable_idempotence": True,
                       "linger_ms": 2, "max_batch_size": 256 * 1024}
        self.events_topic, self.dead_topic = events_topic, dead_topic
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._starting = asyncio.Lock()

    async def _ready(self) -> Any:
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(**self.config)
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except Exception as exc:
                    await self._discard(producer)
                    raise BrokerError(f"Kafka unreachable: {type(exc).__name__}") from exc
                self._producer = producer
        return self._producer

    async def _discard(self, producer: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 2.0)

    async def send(self, events: list[tuple[bytes, bytes]], dead: list[DeadLetter],
                   source: str) -> None:
        producer = await self._ready()
        try:
            futures = [await producer.send(self.events_topic, value=value, key=key)
                       for key, value in events]
            for letter in dead:
                headers = [(H_REASON, letter.reason.encode()),
                           (H_DETAIL, letter.detail.encode()[:MAX_DETAIL]),
                           (H_SOURCE, f"ingest/{source}".encode())]
                futures.append(await producer.send(self.dead_topic, value=letter.raw,
                                                   headers=headers))
            if futures:
                await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except Exception as exc:
            if self._producer is producer:
                self._producer = None
                await self._discard(producer)
            raise BrokerError(f"Kafka did not acknowledge: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.timeout_s)
