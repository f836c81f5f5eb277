"""Feeding the outbox: from an embedded run's batches, or from the Kafka output topics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from valeur_monitor.service import BatchResult
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView
from valeur_monitor.webhooks.changes import (
    ScoreChanges,
    notice_from_json,
    notice_notes,
    score_row_from_json,
)
from valeur_monitor.webhooks.outbox import Outbox

log = logging.getLogger("valeur_monitor.webhooks")


class BatchFeeder:
    """A batch hook of the embedded runner: alerts, warnings and score changes to the outbox."""

    def __init__(self, outbox: Outbox, changes: ScoreChanges,
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.changes = changes
        self.clock = clock

    def __call__(self, result: BatchResult, seconds: float) -> None:
        self.outbox.add(notice_notes(result.notices))
        scored = dict.fromkeys(e.customer for e in result.entries)
        rows = [score_row(ScoreView.of(result.changed[c]), rules_version=result.rules_version)
                for c in scored if c in result.changed]
        now = self.clock()
        self.changes.offer(rows, now)
        self.changes.flush(now)

    def close(self) -> None:
        """End of input: pending score changes are sent now rather than after the quiet time."""
        self.changes.flush(self.clock(), everything=True)


def feed_from_kafka(consumer: Any, outbox: Outbox, changes: ScoreChanges, *, alerts_topic: str,
                    scores_topic: str, stop: threading.Event,
                    clock: Callable[[], float] = time.time) -> None:
    """Consume both topics; offsets are committed only after the outbox has what they carried."""
    while not stop.is_set():
        polled = consumer.poll(timeout_ms=500, max_records=1000)
        notes, rows = [], []
        for tp, records in polled.items():
            for record in records:
                if tp.topic == alerts_topic:
                    note = notice_from_json(record.value)
                    if note is None:
                        log.warning("unreadable customer-alerts record at %s/%d", tp.partition,
                                    record.offset)
                    else:
                        notes.append(note)
                elif tp.topic == scores_topic:
                    row = score_row_from_json(record.value)
                    if row is None:
                        log.warning("unreadable score-updates record at %s/%d", tp.partition,
                                    record.offset)
                    else:
                        rows.append(row)
        now = clock()
        outbox.add(notes)
        changes.offer(rows, now)
        changes.flush(now)
        if polled:
            consumer.commit()
