"""Reading event lines from JSONL files, gzip files or stdin, in batches."""

from __future__ import annotations

import contextlib
import gzip
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


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
    batch: list[bytes] = []
    raw = getattr(stream, "fileobj", None) or stream
    if not raw.seekable():
        progress = None  # a pipe has no position to report
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
