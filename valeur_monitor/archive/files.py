"""Archive files: one gzip JSONL per event date, a JSON sidecar of offsets, crash-safe appends.

Layout of an archive directory (readable by `run` and `backtest` like any event file)::

    events-2026-11-02.jsonl.gz        # raw records whose event time is that UTC date
    events-2026-11-02.offsets.json    # {"bytes", "records", "sealed", "offsets": {"t/p": [a, b]}}
    events-undated-2026-11-02.jsonl.gz  # records with no readable time, by Kafka timestamp

Write protocol (idempotent on restart): records are appended as one gzip member and fsynced,
then the sidecar is replaced atomically (tmp + rename) with the new byte size and offsets; only
then are the Kafka offsets considered archived. On restart a data file longer than its sidecar
says is cut back to the sidecar's size (that tail is consumed again), so a record is archived
exactly once. Sealing rewrites a finished day sorted by (event time, id).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from valeur_monitor.errors import ValeurError

DATA_SUFFIX = ".jsonl.gz"
SIDE_SUFFIX = ".offsets.json"


class ArchiveError(ValeurError):
    """An archive directory that cannot be read or written safely."""


@dataclass
class Sidecar:
    """What a data file holds: its valid size, record count and offsets per topic/partition."""

    size: int = 0              # valid bytes of the data file
    records: int = 0
    sealed: bool = False
    offsets: dict[str, list[int]] = field(default_factory=dict)   # "topic/p" -> [first, last]

    def cover(self, topic: str, partition: int, offset: int) -> None:
        key = f"{topic}/{partition}"
        span = self.offsets.get(key)
        if span is None:
            self.offsets[key] = [offset, offset]
        else:
            span[0], span[1] = min(span[0], offset), max(span[1], offset)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"bytes": self.size, "records": self.records, "sealed": self.sealed,
                             "offsets": dict(sorted(self.offsets.items()))},
                            option=orjson.OPT_INDENT_2)

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        try:
            raw = orjson.loads(path.read_bytes())
            return cls(int(raw["bytes"]), int(raw["records"]), bool(raw.get("sealed", False)),
                       {str(k): [int(v[0]), int(v[1])] for k, v in raw["offsets"].items()})
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError,
                IndexError) as exc:
            raise ArchiveError(f"{path}: unreadable offsets sidecar ({exc})") from None


def day_name(day: date | None, fallback: date | None = None) -> str:
    """Base name of a day's files: by event date, or `undated-` + the Kafka timestamp date."""
    if day is not None:
        return f"events-{day.isoformat()}"
    return f"events-undated-{(fallback or date(1970, 1, 1)).isoformat()}"


def event_date(value: bytes) -> tuple[date | None, int | None, str]:
    """(UTC date, ms, id) of a raw record's `time`, or (None, None, "") when unreadable."""
    from valeur_monitor.engine.event import parse_time

    try:
        doc = orjson.loads(value)
        ms = parse_time(doc["time"])
        return datetime.fromtimestamp(ms / 1000, UTC).date(), ms, str(doc.get("id", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
        return None, None, ""


def one_line(value: bytes | None) -> bytes | None:
    """A record as one archive line; None for a tombstone (a null value: nothing to replay).

    A day file holds one record per line (sealing sorts lines, replays read lines), so line
    breaks inside a record become spaces: in a JSON document they can only be whitespace
    between tokens (a string cannot hold a raw one), so the event read back is the same.
    """
    if value is None:
        return None
    value = value.rstrip(b"\r\n")
    if b"\n" in value or b"\r" in value:
        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
    return value + b"\n"


class DayFile:
    """One day's data file and sidecar in `folder`."""

    def __init__(self, folder: Path, name: str) -> None:
        self.data = folder / f"{name}{DATA_SUFFIX}"
        self.side = folder / f"{name}{SIDE_SUFFIX}"
        self.name = name
        self.meta = Sidecar.read(self.side) if self.side.exists() else Sidecar()

    def recover(self) -> None:
        """Finish or undo an interrupted seal; cut a torn append back to the sidecar's size."""
        data_tmp, side_tmp = _tmp(self.data), _tmp(self.side)
        if side_tmp.exists():
            if data_tmp.exists():     # crashed before the sorted data was in place: undo
                data_tmp.unlink()
                side_tmp.unlink()
            else:                     # the sorted data is in place: finish
                side_tmp.replace(self.side)
        elif data_tmp.exists():
            data_tmp.unlink()
        self.meta = Sidecar.read(self.side) if self.side.exists() else Sidecar()
        if self.data.exists() and self.data.stat().st_size != self.meta.size:
            if self.data.stat().st_size < self.meta.size:
                raise ArchiveError(f"{self.data} is shorter than its sidecar says")
            with self.data.open("r+b") as fh:
                fh.truncate(self.meta.size)
                os.fsync(fh.fileno())

    def append(self, records: Iterable[tuple[str, int, int, bytes | None]]) -> int:
        """Append (topic, partition, offset, value) records as one gzip member; returns count."""
        lines: list[bytes] = []
        for topic, partition, offset, value in records:
            line = one_line(value)
            if line is not None:
                lines.append(line)
            self.meta.cover(topic, partition, offset)   # a tombstone's offset is done too
        if not lines:
            return 0
        with self.data.open("ab") as fh:
            fh.write(gzip.compress(b"".join(lines), compresslevel=6, mtime=0))
            fh.flush()
            os.fsync(fh.fileno())
            self.meta.size = fh.tell()
        self.meta.records += len(lines)
        self.meta.sealed = False
        _write_atomic(self.side, self.meta.to_bytes())
        return len(lines)

    def seal(self) -> None:
        """Rewrite the day sorted by (event time, id), so a replay reads it in stream order."""
        if self.meta.sealed or not self.data.exists():
            return
        with gzip.open(self.data, "rb") as fh:
            lines = [line for line in fh if line.strip()]

        def key(line: bytes) -> tuple[int, str]:
            _day, ms, eid = event_date(line)
            return (ms if ms is not None else 0, eid)

        lines.sort(key=key)
        data_tmp, side_tmp = _tmp(self.data), _tmp(self.side)
        with data_tmp.open("wb") as out:
            out.write(gzip.compress(b"".join(lines), compresslevel=6, mtime=0))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        meta = Sidecar(size, len(lines), True, {k: list(v) for k, v in self.meta.offsets.items()})
        _write_atomic(side_tmp, meta.to_bytes(), rename=False)
        data_tmp.replace(self.data)
        side_tmp.replace(self.side)
        self.meta = meta


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _write_atomic(path: Path, content: bytes, *, rename: bool = True) -> None:
    target = _tmp(path) if rename else path
    with target.open("wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    if rename:
        target.replace(path)


def day_files(folder: Path) -> list[DayFile]:
    """Every day of an archive directory (recovered), in name order."""
    names = sorted({p.name[: -len(SIDE_SUFFIX)] for p in folder.glob(f"events-*{SIDE_SUFFIX}")}
                   | {p.name[: -len(DATA_SUFFIX)] for p in folder.glob(f"events-*{DATA_SUFFIX}")})
    out = []
    for name in names:
        day = DayFile(folder, name)
        day.recover()
        out.append(day)
    return out


def expand_inputs(names: Iterable[str]) -> list[str]:
    """Event inputs with archive directories replaced by their day files, oldest first."""
    out: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            out.extend(str(p) for p in sorted(path.glob(f"events-*{DATA_SUFFIX}")))
        else:
            out.append(name)
    return out


def archived_offsets(days: Iterable[DayFile]) -> dict[tuple[str, int], int]:
    """The highest archived offset of every topic/partition (what a restart resumes after)."""
    out: dict[tuple[str, int], int] = {}
    for day in days:
        for key, (_first, last) in day.meta.offsets.items():
            topic, _, part = key.rpartition("/")
            tp = (topic, int(part))
            out[tp] = max(out.get(tp, -1), last)
    return out


def expire(days: Iterable[DayFile], keep_days: int, newest: date) -> list[Path]:
    """Delete dated days older than `newest − keep_days`; returns the files removed."""
    removed: list[Path] = []
    for day in days:
        stamp = day.name.rsplit("-", 3)[-3:]
        try:
            when = date(int(stamp[0]), int(stamp[1]), int(stamp[2]))
        except ValueError:
            continue
        if (newest - when).days > keep_days:
            for path in (day.data, day.side):
                if path.exists():
                    path.unlink()
                    removed.append(path)
    return removed
