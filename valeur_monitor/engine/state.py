"""Per-customer engine state (engine.customer, engine.promise) and its encodings."""

from __future__ import annotations

import msgspec

from valeur_monitor.engine.compact_types import EventMap, ScoreV1, events_of
from valeur_monitor.engine.customer import CustomerState as CustomerState
from valeur_monitor.engine.customer import Score as Score
from valeur_monitor.engine.promise import Promise as Promise  # its home since the native class
from valeur_monitor.engine.rowed import as_map


class _PlainPromise(msgspec.Struct):
    """A promise in the plain form (the map its Struct was written as): decoded here, so its
    fields' types are checked in both builds, as the Struct checked them."""

    rule: str
    ref: str
    opened_at: int
    open_event: str
    budget: int
    used: int = 0
    running_since: int = 0
    deadline: int = 0
    warn_at: int = -1
    broken_at: int = -1
    paused_at: int = -1
    warned: bool = False
    due: int = -1
    tier: str = ""
    team: str = ""
    channel: str = ""


class _PlainState(msgspec.Struct):
    """The plain msgpack form a state was written in before the compact one (field names)."""

    customer: str
    clock: int = 0
    pruned: int = 0
    seq: int = 0
    seen: dict[str, int] = msgspec.field(default_factory=dict)
    pending: list[EventMap] = msgspec.field(default_factory=list)
    promises: dict[str, _PlainPromise] = msgspec.field(default_factory=dict)
    repeats: dict[str, list[tuple[int, str]]] = msgspec.field(default_factory=dict)
    alert_windows: dict[str, list[int]] = msgspec.field(default_factory=dict)
    alerts_fired: list[str] = msgspec.field(default_factory=list)
    score: ScoreV1 = msgspec.field(default_factory=ScoreV1)   # the score's map form
    reasons: dict[str, float] = msgspec.field(default_factory=dict)
    next_at: int = -2
    next_slot: str = ""


_encoder = msgspec.msgpack.Encoder(enc_hook=as_map)   # the maps the Structs were written as
_decoder = msgspec.msgpack.Decoder(_PlainState)
_row = msgspec.structs.astuple


def encode_state(state: CustomerState) -> bytes:
    """Deterministic bytes of a state (same state -> same bytes), in the compact form."""
    from valeur_monitor.engine import compact

    return compact.encode(state)


def decode_state(data: bytes) -> CustomerState:
    """Inverse of `encode_state`; states written in the plain msgpack form are read too."""
    if data[:1] == b"\xc1":
        from valeur_monitor.engine import compact

        return compact.decode(data)
    p = _decoder.decode(data)
    c = p.score
    return CustomerState(
        p.customer, p.clock, p.pruned, p.seq, p.seen, events_of(p.pending),
        {slot: Promise(*_row(q)) for slot, q in p.promises.items()}, p.repeats,
        p.alert_windows, p.alerts_fired, Score(c.total, c.dims, c.at, c.created, c.destroyed),
        p.reasons, p.next_at, p.next_slot)


def encode_plain(state: CustomerState) -> bytes:
    """The plain msgpack form (field names included) written before the compact one."""
    return _encoder.encode(state)
