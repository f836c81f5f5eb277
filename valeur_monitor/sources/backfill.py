"""Backfill: read export files (JSON pages, JSON lines, queue_log) chunk by chunk for a mapper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from valeur_monitor.errors import BrokerError
from valeur_monitor.runner.inputs import BOM, open_input
from valeur_monitor.service import DeadLetter
from valeur_monitor.settings import Settings
from valeur_monitor.sources.mapper import Mapped, Mapper

WHOLE_JSON_LIMIT = 256 * 1024 * 1024   # a single JSON document larger than this is refused
LINES_PER_CHUNK = 2000


def read_chunks(stream: BinaryIO, fmt: str) -> Iterator[tuple[bytes, int]]:
    """(bytes to map, bytes consumed) pieces: one JSON document, or batches of lines."""
    skipped = _skip_signature(stream)
    for chunk, consumed in _chunks(stream, fmt):
        yield chunk, consumed + skipped
        skipped = 0


def _skip_signature(stream: BinaryIO) -> int:
    """Drops a UTF-8 signature (BOM) that starts the file: it marks the encoding of Windows
    exports, it is not part of the first payload (a JSON document would not parse with it)."""
    peek = getattr(stream, "peek", None)
    if peek is not None and peek(len(BOM))[:len(BOM)] == BOM:
        stream.read(len(BOM))
        return len(BOM)
    return 0


def _chunks(stream: BinaryIO, fmt: str) -> Iterator[tuple[bytes, int]]:
    """The pieces of `read_chunks`, from the first payload on."""
    if fmt == "json":
        data = stream.read(WHOLE_JSON_LIMIT + 1)
        if len(data) <= WHOLE_JSON_LIMIT:
            try:
                orjson.loads(data)      # one (maybe pretty-printed) JSON document
                yield data, len(data)
                return
            except orjson.JSONDecodeError:
                pass
        else:
            data += stream.readline()     # finish the line the size limit cut
        for line in data.splitlines(keepends=True):    # JSON lines: one payload per line
            yield line, len(line)
        for line in stream:
            yield line, len(line)
        return
    batch: list[bytes] = []
    size = 0
    for line in stream:
        batch.append(line)
        size += len(line)
        if len(batch) >= LINES_PER_CHUNK:
            yield b"".join(batch), size
            batch, size = [], 0
    if batch:
        yield b"".join(batch), size


def map_files(mapper: Mapper, names: list[str],
              progress: Callable[[str, int], None] | None = None) -> Iterator[Mapped]:
    """Mapped chunks of every file in order; `progress(name, bytes)` after each chunk."""
    for name in names:
        with open_input(name) as stream:
            for chunk, consumed in read_chunks(stream, mapper.source.format):
                if chunk.strip():
                    yield mapper.map(chunk)
                if progress is not None:
                    progress(name, consumed)


class JsonlOutput:
    """Canonical events appended to a JSONL file (dead letters go to their own file)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, events: list[tuple[bytes, bytes]]) -> None:
        self.file.write(b"".join(value + b"\n" for _key, value in events))

    def dead(self, letters: list[DeadLetter]) -> None:
        raise BrokerError("file output writes dead letters to a file of their own")

    def close(self) -> None:
        self.file.close()


class TopicOutput:
    """kafka-python producer (acks=all, idempotent by default in kafka-python 3)."""

    def __init__(self, settings: Settings) -> None:
        from valeur_monitor.kafka.admin import load_topology
        from valeur_monitor.kafka.produce import open_producer

        topology = load_topology(settings.topology_path(), settings.topics.overrides())
        self.topic = topology.name("events")
        self.dead_topic = topology.name("dead-letters")
        self.producer = open_producer(settings.kafka.client_config())
        self.failed: list[BaseException] = []

    def write(self, events: list[tuple[bytes, bytes]]) -> None:
        for key, value in events:
            self.producer.send(self.topic, key=key, value=value).add_errback(self.failed.append)

    def dead(self, letters: list[DeadLetter]) -> None:
        from valeur_monitor.streaming.outputs import H_DETAIL, H_REASON, MAX_DETAIL

        for letter in letters:
            headers = [(H_REASON, letter.reason.encode()),
                       (H_DETAIL, letter.detail.encode()[:MAX_DETAIL])]
            self.producer.send(self.dead_topic, value=letter.raw,
                               headers=headers).add_errback(self.failed.append)

    def close(self) -> None:
        try:
            self.producer.flush(timeout=120)
        finally:
            self.producer.close(timeout=10)
        if self.failed:
            raise BrokerError(f"{len(self.failed)} record(s) not acknowledged: {self.failed[0]!r}")
