"""The canonical event (schema version 1): its envelope, channels and RFC 3339 event times."""

from __future__ import annotations

from typing import Any

import msgspec

# Event times: parsed and formatted in `times` (compiled by mypyc; this module keeps the Struct,
# which cannot be), re-exported here where every caller has always found them.
from valeur_monitor.engine.times import TIMESTAMP_PATTERN as TIMESTAMP_PATTERN
from valeur_monitor.engine.times import format_time as format_time
from valeur_monitor.engine.times import format_time_by_datetime as format_time_by_datetime
from valeur_monitor.engine.times import parse_time as parse_time

SCHEMA_VERSION = 1

# The event types and the schema of their data live in the catalogue (streams/catalogue.yaml,
# valeur_monitor.catalogue); EVENT_TYPES and REQUEST_STATUSES below are read from it on access.
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


def __getattr__(name: str) -> Any:
    # Former constants, now owned by the catalogue: kept importable for existing callers.
    if name in ("EVENT_TYPES", "REQUEST_STATUSES"):
        from valeur_monitor import catalogue

        active = catalogue.active()
        if name == "EVENT_TYPES":
            return active.required_fields()
        return frozenset(active.enum("request.status_changed", "status"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
