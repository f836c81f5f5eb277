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

from valeur_monitor.codec import default_codec

LIVE_FLUSH = 0.2  # seconds without new input after which received lines are processed
CHUNK = 1 << 20   # bytes read at a time (files and pipes)
BOM = b"\xef\xbb\xbf"  # UTF-8 signature that Windows tools put before a file's first line


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
                 progress: Callable[[int], None] | None = None,
                 max_bytes: int | None = None) -> Iterator[list[bytes]]:
    """Non-empty lines in batches of `size`; `progress` gets compressed-or-plain bytes read.

    Memory and time stay linear in the input whatever the line lengths: a line longer than
    `max_bytes` (default: the codec's record limit) is never held whole; its first bytes stand
    for it, so the codec dead-letters it `too_large`."""
    limit = max_bytes if max_bytes is not None else default_codec().max_bytes
    raw = getattr(stream, "fileobj", None) or stream
    if not raw.seekable():
        # A pipe or terminal: no position to report, and a quiet producer must not hold back
        # the lines already received.
        yield from _live_batches(raw.fileno(), size, limit)
        return
    lines = LineSplitter(limit)
    batch: list[bytes] = []
    last = 0
    while chunk := stream.read(CHUNK):
        batch.extend(lines.feed(chunk))
        while len(batch) >= size:
            yield batch[:size]
            batch = batch[size:]
            if progress is not None:
                pos = raw.tell()
                progress(pos - last)
                last = pos
    batch.extend(lines.end())
    if batch:
        yield batch
    if progress is not None:
        with contextlib.suppress(OSError, ValueError):
            progress(raw.tell() - last)


class LineSplitter:
    """Bytes in, complete non-blank lines out; a line over `limit` is cut to its first
    `limit + 2` bytes (enough for the codec to call it too large) and the rest is skipped.

    A UTF-8 signature (BOM) before the first line is dropped: it marks the file's encoding,
    not the record (RFC 8259 lets a parser ignore it), and Excel or PowerShell exports start
    with one; anywhere else it stays part of its line (and the codec refuses that line)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit + 1        # the newline does not count against the record limit
        self._ink = False             # a byte other than whitespace was cut off the line
        self._parts: list[bytes] = []  # the unfinished line, in pieces (joined once: linear)
        self._size = 0
        self._first = True            # the next line taken is the input's first

    def feed(self, chunk: bytes) -> list[bytes]:
        cut = chunk.find(b"\n")
        if cut < 0:
            self._keep(chunk)
            return []
        self._keep(chunk[:cut])
        first = self._take()
        out = [first + b"\n"] if first is not None else []
        last = chunk.rfind(b"\n")
        if last > cut:
            self._whole(chunk[cut + 1:last + 1], out)
        self._keep(chunk[last + 1:])
        return out

    def _whole(self, lines: bytes, out: list[bytes]) -> None:
        """The non-blank lines of `lines` (whole lines, each ending with a newline) to `out`."""
        limit = self.limit
        if b"\r" in lines:   # splitlines would also cut there: one line at a time
            for line in lines[:-1].split(b"\n"):
                if line.strip():
                    out.append(line[:limit + 1] + b"\n" if len(line) > limit else line + b"\n")
            return
        # each line as one slice of the chunk, its newline kept: no copy per line to add it
        for line in lines.splitlines(True):
            if line[0] != 123 and not line.strip():   # a record starts with "{" (123)
                continue
            out.append(line if len(line) <= limit + 1 else line[:limit + 1] + b"\n")

    def end(self) -> list[bytes]:
        """The last line when the input does not end with a newline."""
        last = self._take()
        return [last] if last is not None else []

    def _keep(self, piece: bytes) -> None:
        # the first line may start with a signature: room for it, so that a first line over
        # the limit is still cut to `limit + 2` bytes of its own (the codec says too_large)
        room = self.limit + 1 + (len(BOM) if self._first else 0) - self._size
        if len(piece) > max(room, 0) and not self._ink:
            # what is cut off still says whether the line is blank (a long line of spaces
            # and then a record is too large, not blank), whatever the chunks
            self._ink = bool(piece[max(room, 0):].strip())
        if room > 0 and piece:
            piece = piece[:room]
            self._parts.append(piece)
            self._size += len(piece)

    def _take(self) -> bytes | None:
        """The line kept so far (cut to the limit), None if the whole line was blank."""
        line = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        if self._first:
            # The first line always passes here (it is the first piece of some chunk), so
            # this is the one place that sees the input's first bytes, however they were cut.
            self._first = False
            if line.startswith(BOM):
                line = line[len(BOM):]
            inked = bool(line.strip())   # before the cut, which may leave only spaces
            line = line[:self.limit + 1]
        else:
            inked = bool(line.strip())
        ink, self._ink = self._ink, False
        return line if inked or ink else None


def _live_batches(fd: int, size: int, limit: int,
                  quiet: float = LIVE_FLUSH) -> Iterator[list[bytes]]:
    """Lines from a pipe: a batch ends at `size` lines or after `quiet` seconds without data."""
    lines = LineSplitter(limit)
    batch: list[bytes] = []
    while True:
        if batch and not select.select([fd], [], [], quiet)[0]:
            yield batch
            batch = []
            continue
        chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        batch.extend(lines.feed(chunk))
        while len(batch) >= size:
            yield batch[:size]
            batch = batch[size:]
    batch.extend(lines.end())
    if batch:
        yield batch
