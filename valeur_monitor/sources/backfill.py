"""Backfill: read export files (JSON pages, JSON lines, queue_log) chunk by chunk for a mapper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

import orjson

from valeur_monitor.runner.inputs import open_input
from valeur_monitor.sources.mapper import Mapped, Mapper

WHOLE_JSON_LIMIT = 256 * 1024 * 1024   # a single JSON document larger than this is refused
LINES_PER_CHUNK = 2000


def read_chunks(stream: BinaryIO, fmt: str) -> Iterator[tuple[bytes, int]]:
    """(bytes to map, bytes consumed) pieces: one JSON document, or batches of lines."""
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
