"""`run --follow`: keep reading lines appended to a file, and reload rules when asked.

Lines are fed in batches as they arrive (a partial last line waits for its newline); between
two batches a pending reload request (SIGHUP, `rules reload --pid-file`) is applied, and the
switch records how many lines of the file were read before it: lines up to there were scored
by the old rules (if their events were released), the rest by the new ones.
"""

from __future__ import annotations

import threading
from pathlib import Path

from valeur_monitor.reload import Reloader
from valeur_monitor.runner.embedded import EmbeddedRunner

CHUNK = 1 << 20


def follow_file(path: str | Path, runner: EmbeddedRunner, reloader: Reloader | None,
                stop: threading.Event, *, batch: int = 2000, poll: float = 0.2) -> int:
    """Read `path` from its start, then what is appended, until `stop` is set; returns lines."""
    lines_read = 0
    pending = b""
    with open(path, "rb") as fh:
        while not stop.is_set():
            if reloader is not None and reloader.requested:
                reloader.apply(runner.processor, {0: lines_read})
            chunk = fh.read(CHUNK)
            if not chunk:
                stop.wait(poll)
                continue
            parts = (pending + chunk).split(b"\n")
            pending = parts.pop()           # no newline yet: wait for the rest of the line
            lines = [line for line in parts if line.strip()]
            for i in range(0, len(lines), batch):
                runner.feed(lines[i:i + batch])
                lines_read += len(lines[i:i + batch])
                if reloader is not None and reloader.requested:
                    reloader.apply(runner.processor, {0: lines_read})
    if pending.strip():
        runner.feed([pending])
        lines_read += 1
    return lines_read
