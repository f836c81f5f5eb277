"""The canonical event (schema version 1) and the catalogue of event types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

SCHEMA_VERSION = 1

# type -> data fields that must be present (and how they are checked by the codec)
EVENT_TYPES: dict[str, dict[str, str]] = {
    "request.opened": {},
    "request.agent_replied": {},
    "request.customer_replied": {},
    "request.status_changed": {"status": "status"},
    "request.resolved": {},
    "request.reopened": {},
    "callback.promised": {"promised_at": "time"},
    "callback.completed": {},
    "callback.cancelled": {},
    "contact.inbound": {"topic": "str"},
    "visit.scheduled": {"window_start": "time", "window_end": "time"},
    "visit.confirmed": {},
    "visit.rescheduled": {"window_start": "time", "window_end": "time"},
    "visit.cancelled": {},
    "visit.completed": {},
    "visit.no_show": {},
    "survey.answered": {"score": "number"},
}

REQUEST_STATUSES = frozenset({"pending", "on_hold", "open"})
CHANNELS = ("phone", "email", "chat", "web", "sms", "field")


class Event(msgspec.Struct, gc=False):
    """One support/service event; `time` is event time in epoch milliseconds (UTC)."""

    id: str
    type: str
    time: int
    customer: str
    ref: str = ""
    source: str = ""
    channel: str = ""
    team: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    def sort_key(self) -> tuple[int, str]:
        """Total order used everywhere events are replayed: event time, then id."""
        return (self.time, self.id)


def parse_time(value: object) -> int:
    """RFC 3339 timestamp with an explicit offset -> epoch milliseconds; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 string, got {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return int(parsed.timestamp() * 1000)


def format_time(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 in UTC, second precision unless milliseconds matter."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def to_canonical(event: Event) -> dict[str, Any]:
    """The JSON-ready canonical form of an event (what the simulator and dead letters write)."""
    out: dict[str, Any] = {"id": event.id, "type": event.type, "time": format_time(event.time),
                           "customer": event.customer}
    for name in ("ref", "source", "channel", "team"):
        value = getattr(event, name)
        if value:
            out[name] = value
    if event.data:
        out["data"] = event.data
    return out
