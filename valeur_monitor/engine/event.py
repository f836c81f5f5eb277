"""The canonical event (schema version 1): its envelope, channels and RFC 3339 event times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

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


# RFC 3339 `date-time` with a mandatory offset, local year 1970..8999 (so every deadline derived
# from it stays inside datetime's range); the same pattern is in the published JSON Schemas.
TIMESTAMP_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    r"(?!\n)$"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_time(value: object) -> int:
    """RFC 3339 timestamp with an explicit offset -> epoch milliseconds; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 string, got {type(value).__name__}")
    if _TIMESTAMP.match(value) is None:
        raise ValueError(f"{value[:40]!r} is not an RFC 3339 timestamp with an offset "
                         "(e.g. 2026-11-02T09:15:00+01:00), year 1970..8999")
    text = value.upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:        # e.g. 2026-02-30: the pattern cannot know month lengths
        raise ValueError(f"{value[:40]!r}: {exc}") from None
    return (parsed - _EPOCH) // _MS


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


def __getattr__(name: str) -> Any:
    # Former constants, now owned by the catalogue: kept importable for existing callers.
    if name in ("EVENT_TYPES", "REQUEST_STATUSES"):
        from valeur_monitor import catalogue

        active = catalogue.active()
        if name == "EVENT_TYPES":
            return active.required_fields()
        return frozenset(active.enum("request.status_changed", "status"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
