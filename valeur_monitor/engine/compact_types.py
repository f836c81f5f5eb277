"""The msgspec structs of the compact state encoding, versions 1 to 3 (not compiled).

Apart from `engine.compact` so that mypyc can compile the encoder and decoder there (a msgspec
Struct subclass cannot be compiled); the layout is documented in that module.
"""

from __future__ import annotations

from typing import Any

import msgspec

from valeur_monitor.engine.canonical import Event

Instant = int | None  # relative to a base; None for -1


class EventMap(msgspec.Struct, gc=False):
    """A pending event as states hold it: the map the former Event Struct was written as
    (its fields, order and defaults); read into an `Event` by `events_of`."""

    id: str
    type: str
    time: int
    customer: str
    ref: str = ""
    source: str = ""
    channel: str = ""
    team: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_row = msgspec.structs.astuple


def events_of(maps: list[EventMap]) -> list[Event]:
    """The events of a decoded state's pending list."""
    return [Event(*_row(m)) for m in maps]


class ScoreV1(msgspec.Struct):
    """The score as version 1 wrote it: a map (the former Score Struct's form)."""

    total: float = 0.0
    dims: dict[str, float] = msgspec.field(default_factory=dict)
    at: int = 0
    created: float = 0.0
    destroyed: float = 0.0


class PromiseV1(msgspec.Struct, array_like=True):
    rule: int
    ref: str
    opened_at: int
    open_event: str
    budget: int
    used: int
    running_since: Instant
    deadline: Instant
    warn_at: Instant
    broken_at: Instant
    paused_at: Instant
    warned: bool
    due: Instant
    tier: str
    team: str
    channel: str


class RepeatV1(msgspec.Struct, array_like=True):
    rule: int
    key: str
    ages: list[int]          # clock - time of each contact
    refs: list[str]


class StateV1(msgspec.Struct, array_like=True):
    customer: str
    clock: int
    pruned: Instant
    seq: int
    rules: list[str]
    seen_prefix: str
    seen_ids: list[str]
    seen_ages: list[int]     # clock - event time, same order as the ids
    pending: list[EventMap]
    promises: list[tuple[str | None, PromiseV1]]   # the slot, None when it is `rule\x1fref`
    repeats: list[RepeatV1]
    alert_windows: dict[str, list[int]]
    alerts_fired: list[str]
    score: ScoreV1
    reasons: dict[str, float]
    next_at: int
    next_slot: str


# Version 2: a promise's shared clock, and the promise itself (see the module docstring).
Clock = tuple[str, int, str, int, int, Instant, Instant, Instant, str, str, str]
Own = tuple[int, int, Instant, Instant, bool, Instant, str | None]


class StateV2(msgspec.Struct, array_like=True):
    customer: str
    clock: int
    pruned: Instant
    seq: int
    rules: list[str]
    seen_prefix: str
    seen_ids: list[str]
    seen_ages: list[int]
    pending: list[EventMap]
    clocks: list[Clock]
    promises: list[Own]
    repeats: list[tuple[int, str, list[int], list[str]]]
    alert_windows: dict[str, list[int]]
    alerts_fired: list[str]
    score: tuple[float, dict[str, float], int, float, float]
    reasons: dict[str, float]
    next_at: int
    next_slot: str


# Version 3: the fields of a promise and of the state in declaration order (engine/compact.py).
PromiseV3 = tuple[str, str, int, str, int, int, int, int, int, int, int, bool, int, str, str, str]


class StateV3(msgspec.Struct, array_like=True):
    customer: str
    clock: int
    pruned: int
    seq: int
    seen: dict[str, int]
    pending: list[EventMap]
    promises: list[tuple[str, PromiseV3]]      # (slot, fields)
    repeats: dict[str, list[tuple[int, str]]]
    alert_windows: dict[str, list[int]]
    alerts_fired: list[str]
    score: tuple[float, dict[str, float], int, float, float]
    reasons: dict[str, float]
    next_at: int
    next_slot: str
