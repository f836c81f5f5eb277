"""Writing export rows as CSV, JSON lines or Parquet (pyarrow), streamed in chunks."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from valeur_monitor.engine.ledger import DIMENSIONS
from valeur_monitor.errors import ConfigError

FORMATS = ("csv", "jsonl", "parquet")
CHUNK = 10_000


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    return " ".join(f"{r['rule']}={r['value']:g}" for r in reasons)


def write_table(rows: Iterable[dict[str, Any]], fields: tuple[str, ...], fmt: str,
                out: IO[bytes] | Path) -> int:
    """Write rows in `fmt` to a binary stream or a path; returns the number of rows."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
    if fmt == "parquet":
        return _parquet(rows, fields, out)
    own = isinstance(out, Path)
    stream: IO[bytes] = open(out, "wb") if isinstance(out, Path) else out  # noqa: SIM115
    count = 0
    try:
        if fmt == "jsonl":
            for row in rows:
                stream.write(orjson.dumps(row) + b"\n")
                count += 1
        else:
            text = _TextOut(stream)
            writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                if "top_reasons" in row:
                    row = {**row, "top_reasons": _reasons_text(row["top_reasons"])}
                writer.writerow(row)
                count += 1
    finally:
        if own:
            stream.close()
        else:
            stream.flush()
    return count


class _TextOut:
    """csv wants text; the export goes to bytes (a file or stdout.buffer)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.encode())


def _parquet(rows: Iterable[dict[str, Any]], fields: tuple[str, ...],
             out: IO[bytes] | Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    reason = pa.struct([("rule", pa.string()), ("value", pa.float64())])
    types = {"score": pa.float64(), "created": pa.float64(), "destroyed": pa.float64(),
             "mean": pa.float64(), "worst_score": pa.float64(), "customers": pa.int64(),
             "top_reasons": pa.list_(reason), **dict.fromkeys(DIMENSIONS, pa.float64())}
    schema = pa.schema([(f, types.get(f, pa.string())) for f in fields])
    count = 0
    sink: Any = str(out) if isinstance(out, Path) else out
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                count += len(chunk)
                chunk = []
        if chunk or count == 0:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            count += len(chunk)
    return count
