"""What becomes a webhook: alerts and warnings as they fire, score changes debounced.

A score change is sent when a customer's score moved by at least `score_delta` since the last
score sent for it (the first one: since 0), at most once per `debounce_s` per customer: the
first change opens a quiet period and the latest score at its end is what is compared and sent.
The pending scores, their due times and the last scores sent live in Redis, so a restarted
feeder resumes them; a crash between enqueueing and recording is absorbed by the outbox's
idempotent enqueue (the same change gets the same webhook id).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.ledger import Notice
from valeur_monitor.webhooks.outbox import Notification, Outbox

KINDS = {"alert": "customer.alert", "warning": "customer.warning"}


def notice_notes(notices: Iterable[Notice]) -> list[Notification]:
    return [Notification(KINDS[n.kind], n.customer, n.time, n.to_json())
            for n in notices if n.kind in KINDS]


def notice_from_json(value: bytes | None) -> Notification | None:
    """A customer-alerts topic message (Notice.to_json) as a notification, None if unusable
    (a tombstone included)."""
    try:
        data = orjson.loads(value)  # type: ignore[arg-type]  # None: TypeError, unusable
        kind = KINDS[data["kind"]]
        return Notification(kind, str(data["customer"]), parse_time(data["time"]), data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def score_row_from_json(value: bytes | None) -> dict[str, Any] | None:
    """A score-updates topic message as a row, None if unusable: a tombstone, not an object,
    no customer, a score that is not a finite number, an `at` that is not a time. Checked on
    the way in: a bad row kept pending in Redis would fail every later flush."""
    try:
        row = orjson.loads(value)  # type: ignore[arg-type]
        if not (isinstance(row, dict) and isinstance(row.get("customer"), str)
                and row["customer"] and type(row.get("score")) in (int, float)
                and math.isfinite(row["score"])):
            return None
        if row.get("at"):
            parse_time(row["at"])
    except (orjson.JSONDecodeError, TypeError, ValueError, OverflowError):
        return None
    return row


class ScoreChanges:
    """The debouncer (see the module docstring); `now` is wall-clock seconds."""

    def __init__(self, outbox: Outbox, *, delta: float, debounce_s: float) -> None:
        self.outbox = outbox
        self.delta = delta
        self.debounce = debounce_s
        base = outbox.stream.removesuffix("outbox") + "sc:"
        self.pending_key = base + "pending"     # customer -> latest score row (JSON)
        self.due_key = base + "due"             # customer -> end of its quiet period (s)
        self.sent_key = base + "sent"           # customer -> last score sent
        self._cmd: Any = outbox.client

    def offer(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        """Score rows (as published on score-updates) of customers whose score changed."""
        if not rows:
            return
        pipe = self.outbox.client.pipeline(transaction=False)
        for row in rows:
            pipe.hset(self.pending_key, row["customer"], orjson.dumps(row))
            pipe.zadd(self.due_key, {row["customer"]: now + self.debounce}, nx=True)
        pipe.execute()

    def flush(self, now: float, *, everything: bool = False, limit: int = 1000) -> int:
        """Send the changes whose quiet period ended (all of them with `everything`)."""
        total = 0
        while True:
            until = "+inf" if everything else now
            names = [c.decode() for c in self._cmd.zrangebyscore(self.due_key, "-inf", until,
                                                                 start=0, num=limit)]
            if not names:
                return total
            rows = self._cmd.hmget(self.pending_key, names)
            sent = self._cmd.hmget(self.sent_key, names)
            notes, record = [], {}
            for name, raw, last in zip(names, rows, sent, strict=True):
                if raw is None:
                    continue
                row = orjson.loads(raw)
                previous = float(last) if last is not None else 0.0
                if abs(row["score"] - previous) >= self.delta:
                    data = {**row, "previous_score": previous,
                            "change": row["score"] - previous}
                    at = parse_time(row["at"]) if row.get("at") else 0
                    notes.append(Notification("customer.score_changed", name, at, data))
                    record[name] = repr(float(row["score"]))
            self.outbox.add(notes)
            pipe = self.outbox.client.pipeline(transaction=True)
            if record:
                pipe.hset(self.sent_key, mapping=record)
            pipe.hdel(self.pending_key, *names)
            pipe.zrem(self.due_key, *names)
            pipe.execute()
            total += len(notes)
            if len(names) < limit:
                return total
