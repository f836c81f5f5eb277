"""Reading event lines from JSONL files, gzip files or stdin, in batches."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import select
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

LIVE_FLUSH = 0.2  # seconds without new input after which received lines are processed


def open_input(name: str) -> BinaryIO:
    """`-` is stdin; a `.gz` suffix (or gzip magic) is decompressed."""
    if name == "-":
        return sys.stdin.buffer
    raw = open(name, "rb")  # noqa: SIM115 - the caller closes it
    gzipped = raw.peek(2)[:2] == b"\x1f\x8b" if isinstance(raw, io.BufferedReader) else (
        name.endswith(".gz"))
    if gzipped:
        return gzip.open(raw, "rb")  # type: ignore[return-value]
    return raw


def input_size(name: str) -> int | None:
    """Bytes on disk, for the progress bar (None for stdin)."""
    return None if name == "-" else Path(name).stat().st_size


def read_batches(stream: BinaryIO, size: int,
                 progress: Callable[[int], None] | None = None) -> Iterator[list[bytes]]:
    """Non-empty lines in batches of `size`; `progress` gets compressed-or-plain bytes read."""
    raw = getattr(stream, "fileobj", None) or stream
    if not raw.seekable():
        # A pipe or terminal: no position to report, and a quiet producer must not hold back
        # the lines already received.
        yield from _live_batches(raw.fileno(), size)
        return
    batch: list[bytes] = []
    last = 0
    for line in stream:
        if line.strip():
            batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
            if progress is not None:
                pos = raw.tell()
                progress(pos - last)
                last = pos
    if batch:
        yield batch
    if progress is not None:
        with contextlib.suppress(OSError, ValueError):
            progress(raw.tell() - last)


def _live_batches(fd: int, size: int, quiet: float = LIVE_FLUSH) -> Iterator[list[bytes]]:
    """Lines from a pipe: a batch ends at `size` lines or after `quiet` seconds without data."""
    pending = b""
    batch: list[bytes] = []
    while True:
        if batch and not select.select([fd], [], [], quiet)[0]:
            yield batch
            batch = []
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        batch.extend(line + b"\n" for line in lines if line.strip())
        while len(batch) >= size:
            yield batch[:size]
            batch = batch[size:]
    if pending.strip():
        batch.append(pending)
    if batch:
        yield batch
