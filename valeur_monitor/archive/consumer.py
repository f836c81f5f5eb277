"""The archiver: a kafka-python consumer of the events topic writing the daily archive files.

It assigns itself every partition (no consumer group: the archive's sidecars are its offsets),
resumes after the highest archived offset of each partition, and seals a day (rewrites it
sorted) once the newest archived event is `seal_after` past that day's end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from valeur_monitor.archive.files import (
    DayFile,
    archived_offsets,
    day_files,
    day_name,
    event_date,
    expire,
)

log = logging.getLogger("valeur_monitor.archive")
DAY_MS = 86_400_000


@dataclass
class ArchiveReport:
    archived: int = 0
    skipped: int = 0           # already archived (redelivered after a restart)
    sealed: int = 0
    expired: int = 0


class Archiver:
    """Poll, group by event date, append, seal; every step is safe to interrupt."""

    def __init__(self, folder: Path, topic: str, consumer: Any, *, seal_after_ms: int = 3_600_000,
                 keep_days: int = 0) -> None:
        self.folder = folder
        self.topic = topic
        self.consumer = consumer
        self.seal_after_ms = seal_after_ms
        self.keep_days = keep_days
        self.report = ArchiveReport()
        self.days: dict[str, DayFile] = {}
        self.done: dict[tuple[str, int], int] = {}
        self.newest = 0          # latest event time archived (ms)

    def start(self, wait_s: float = 30.0) -> None:
        """Recover the directory, assign every partition, seek past what is archived."""
        from kafka import TopicPartition

        self.folder.mkdir(parents=True, exist_ok=True)
        for day in day_files(self.folder):
            self.days[day.name] = day
        self.done = archived_offsets(self.days.values())
        deadline = time.monotonic() + wait_s
        partitions = self.consumer.partitions_for_topic(self.topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.5)
            partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} not found")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        for tp in tps:
            last = self.done.get((self.topic, tp.partition))
            if last is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, last + 1)

    def poll_once(self, timeout_ms: int = 1000) -> int:
        """Archive one poll's records; returns how many were new."""
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=5000)
        by_day: dict[str, list[tuple[str, int, int, bytes]]] = defaultdict(list)
        for tp, records in batches.items():
            floor = self.done.get((tp.topic, tp.partition), -1)
            for r in records:
                if r.offset <= floor:
                    self.report.skipped += 1
                    continue
                day, ms, _ = event_date(r.value)
                if ms is not None:
                    self.newest = max(self.newest, ms)
                kafka_day = datetime.fromtimestamp(max(0, r.timestamp) / 1000, UTC).date()
                by_day[day_name(day, kafka_day)].append((tp.topic, tp.partition, r.offset,
                                                         r.value))
        count = 0
        for name, records in sorted(by_day.items()):
            day_file = self.days.get(name) or self.days.setdefault(
                name, DayFile(self.folder, name))
            count += day_file.append(records)
            for topic, partition, offset, _ in records:
                key = (topic, partition)
                self.done[key] = max(self.done.get(key, -1), offset)
        self.report.archived += count
        return count

    def seal_finished(self, everything: bool = False) -> None:
        """Seal the days whose end is `seal_after` behind the newest event (all if asked)."""
        for name, day in sorted(self.days.items()):
            if day.meta.sealed or not day.meta.records:
                continue
            end = _day_end_ms(name)
            if everything or (end is not None and end + self.seal_after_ms <= self.newest):
                day.seal()
                self.report.sealed += 1
                log.info("sealed %s (%d records)", day.data.name, day.meta.records)
        if self.keep_days and self.newest:
            newest = datetime.fromtimestamp(self.newest / 1000, UTC).date()
            removed = expire(list(self.days.values()), self.keep_days, newest)
            for path in removed:
                self.days.pop(path.name.split(".")[0], None)
            self.report.expired += len(removed)

    def run(self, stop: threading.Event, *, until_idle: float | None = None,
            on_poll: Callable[[int], None] | None = None) -> ArchiveReport:
        """Archive until `stop` is set (or nothing new came for `until_idle` seconds)."""
        quiet_since = time.monotonic()
        while not stop.is_set():
            n = self.poll_once()
            if on_poll is not None:
                on_poll(n)
            if n:
                quiet_since = time.monotonic()
                self.seal_finished()
            elif until_idle is not None and time.monotonic() - quiet_since >= until_idle:
                break
        self.seal_finished(everything=until_idle is not None)
        return self.report


def _day_end_ms(name: str) -> int | None:
    """End of a dated day's UTC date (ms); None for undated files."""
    try:
        day = date.fromisoformat(name.removeprefix("events-"))
    except ValueError:
        return None
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return int(end.timestamp() * 1000)


def open_consumer(client_config: dict[str, Any]) -> Any:
    """A group-less kafka-python consumer (offsets live in the archive's sidecars)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**client_config, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
