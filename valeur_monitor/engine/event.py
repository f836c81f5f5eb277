"""The canonical event (schema version 1): its envelope, channels and RFC 3339 event times."""

from __future__ import annotations

from typing import Any

# The event itself is a native class of the compiled `canonical` (a msgspec Struct before), and
# event times are parsed and formatted in `times` (compiled too; this module has a module
# `__getattr__`, which mypyc cannot compile): re-exported here where every caller finds them.
from valeur_monitor.engine.canonical import Event as Event
from valeur_monitor.engine.times import TIMESTAMP_PATTERN as TIMESTAMP_PATTERN
from valeur_monitor.engine.times import format_time as format_time
from valeur_monitor.engine.times import format_time_by_datetime as format_time_by_datetime
from valeur_monitor.engine.times import parse_time as parse_time

SCHEMA_VERSION = 1

# The event types and the schema of their data live in the catalogue (streams/catalogue.yaml,
# valeur_monitor.catalogue); EVENT_TYPES and REQUEST_STATUSES below are read from it on access.
CHANNELS = ("phone", "email", "chat", "web", "sms", "field")


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
