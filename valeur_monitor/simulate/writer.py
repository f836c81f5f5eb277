"""`write_jsonl`: simulated events to a JSONL file or stdout, gzip by suffix, in large chunks."""

from __future__ import annotations

import gc
import gzip as gzip_lib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from valeur_monitor.simulate.clock import SECONDS
from valeur_monitor.simulate.cloudevents import to_cloudevent
from valeur_monitor.simulate.config import SimulationConfig
from valeur_monitor.simulate.generator import simulate
from valeur_monitor.simulate.lifecycle import Operation
from valeur_monitor.simulate.malformed import RAW_KEY

CHUNK_LINES = 8192


def write_jsonl(path: str | Path, config: SimulationConfig | None = None, *,
                gzip: bool | None = None, cloudevents: bool = False,
                compresslevel: int = 3) -> int:
    """Write the simulation as JSON lines to `path` ("-" = stdout); returns the lines written.

    `gzip` None compresses when the path ends in ".gz" (never for stdout unless True).
    `cloudevents` writes the CloudEvents 1.0 form instead of the canonical one. The lines are
    exactly `orjson.dumps` of what `simulate(config)` yields.
    """
    cfg = config if config is not None else SimulationConfig()
    target = str(path)
    compress = gzip if gzip is not None else (target != "-" and target.endswith(".gz"))
    # The generator creates no reference cycles, so the cyclic collector has nothing to free;
    # left on, it would keep scanning the queued events (a large share of the run time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if target == "-":
            stdout = sys.stdout.buffer
            if compress:
                with gzip_lib.GzipFile(fileobj=stdout, mode="wb",
                                       compresslevel=compresslevel) as zipped:
                    count = _write(zipped, cfg, cloudevents)
            else:
                count = _write(stdout, cfg, cloudevents)
            stdout.flush()
            return count
        if compress:
            with gzip_lib.open(target, "wb", compresslevel=compresslevel) as zipped:
                return _write(zipped, cfg, cloudevents)
        with open(target, "wb") as plain:
            return _write(plain, cfg, cloudevents)
    finally:
        if collecting:
            gc.enable()


def _write(out: IO[bytes] | gzip_lib.GzipFile, cfg: SimulationConfig, cloudevents: bool) -> int:
    if cloudevents or cfg.bad_rate > 0:
        return _write_records(out, simulate(cfg), cloudevents)
    return _write_fast(out, cfg)


def _write_records(out: IO[bytes] | gzip_lib.GzipFile, records: Iterable[dict[str, Any]],
                   cloudevents: bool) -> int:
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    chunk: list[bytes] = []
    append = chunk.append
    count = 0
    for record in records:
        if RAW_KEY in record:
            append(record[RAW_KEY].encode() + b"\n")
        elif cloudevents:
            append(dumps(to_cloudevent(record), option=newline))
        else:
            append(dumps(record, option=newline))
        if len(chunk) >= CHUNK_LINES:
            count += len(chunk)
            out.write(b"".join(chunk))
            chunk.clear()
    count += len(chunk)
    out.write(b"".join(chunk))
    return count


def _write_fast(out: IO[bytes] | gzip_lib.GzipFile, cfg: SimulationConfig) -> int:
    """The canonical lines built as text around `orjson.dumps(data)`, hour by hour.

    Byte-identical to `orjson.dumps(record)` (compact, same key order): every field but data
    is an id, a constant or a validated name that needs no JSON escaping.
    """
    operation = Operation(cfg)
    operation.schedule_openings()
    minute_parts = operation.formatter.minute
    dumps = orjson.dumps
    prefix = f'{{"id":"evt-{cfg.seed}-'
    count = 0
    base_minute = operation.sched.base_ms // 60_000
    minute, head, tail = -1, "", ""
    for entries, datas in operation.sched.run(operation.run_deferred):
        lines: list[bytes] = []
        append = lines.append
        for _, seq, second, etype, ctx in entries:
            if second // 60 != minute:
                minute = second // 60
                head, tail = minute_parts(base_minute + minute)
            data = datas[seq - 1]
            datas[seq - 1] = None
            if data:   # pieces, joined once per hour: no intermediate copies of the line
                append(f'{prefix}{seq}","type":"{etype}","time":"{head}{SECONDS[second % 60]}'
                       f'{tail}{ctx[5]},"data":'.encode())
                append(dumps(data))
                append(b"}\n")
            else:
                append(f'{prefix}{seq}","type":"{etype}","time":"{head}{SECONDS[second % 60]}'
                       f'{tail}{ctx[5]}}}\n'.encode())
        count += len(entries)   # one line each
        out.write(b"".join(lines))
    return count
