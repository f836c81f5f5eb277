"""The canonical event as a plain class with slots: a native class when compiled by mypyc."""

from __future__ import annotations

from typing import Any

from valeur_monitor.engine.rowed import Rowed

# Why not a msgspec Struct (it was one, as Promise and CustomerState were): compiled, the
# engine read a Struct's fields through the generic attribute path (type look-up, member
# descriptor), 15-20 reads per event; a class of a compiled module is native there, its fields
# loaded from the object and `time` an unboxed int. msgspec decodes records into the codec's
# Record (codec_types) and states' pending events into `compact_types.EventMap`, the map the
# Struct was written as; both encodings write an Event as that same map (`to_dict`).

EventRow = tuple[str, str, int, str, str, str, str, str, dict[str, Any]]

EVENT_FIELDS = ("id", "type", "time", "customer", "ref", "source", "channel", "team", "data")


class Event(Rowed):
    """One support/service event; `time` is event time in epoch milliseconds (UTC)."""

    __slots__ = ("channel", "customer", "data", "id", "ref", "source", "team", "time", "type")
    FIELDS = EVENT_FIELDS

    def __init__(self, id: str, type: str, time: int, customer: str, ref: str = "",
                 source: str = "", channel: str = "", team: str = "",
                 data: dict[str, Any] | None = None) -> None:
        self.id = id
        self.type = type
        self.time = time
        self.customer = customer
        self.ref = ref
        self.source = source
        self.channel = channel
        self.team = team
        self.data: dict[str, Any] = {} if data is None else data

    def row(self) -> EventRow:
        """The fields in declaration order (`Event(*row)` is an equal event)."""
        return (self.id, self.type, self.time, self.customer, self.ref, self.source,
                self.channel, self.team, self.data)

    def sort_key(self) -> tuple[int, str]:
        """Total order used everywhere events are replayed: event time, then id."""
        return (self.time, self.id)
