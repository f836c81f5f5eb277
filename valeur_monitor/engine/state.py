"""Per-customer engine state (engine.customer, engine.promise) and its encodings."""

from __future__ import annotations

from typing import Any

import msgspec

from valeur_monitor.engine.customer import CustomerState as CustomerState
from valeur_monitor.engine.customer import Score as Score
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.promise import FIELDS
from valeur_monitor.engine.promise import Promise as Promise  # its home since the native class


class _PlainScore(msgspec.Struct):
    total: float = 0.0
    dims: dict[str, float] = msgspec.field(default_factory=dict)
    at: int = 0
    created: float = 0.0
    destroyed: float = 0.0


class _PlainState(msgspec.Struct):
    """The plain msgpack form a state was written in before the compact one (field names)."""

    customer: str
    clock: int = 0
    pruned: int = 0
    seq: int = 0
    seen: dict[str, int] = msgspec.field(default_factory=dict)
    pending: list[Event] = msgspec.field(default_factory=list)
    promises: dict[str, Promise] = msgspec.field(default_factory=dict)
    repeats: dict[str, list[tuple[int, str]]] = msgspec.field(default_factory=dict)
    alert_windows: dict[str, list[int]] = msgspec.field(default_factory=dict)
    alerts_fired: list[str] = msgspec.field(default_factory=list)
    score: _PlainScore = msgspec.field(default_factory=_PlainScore)
    reasons: dict[str, float] = msgspec.field(default_factory=dict)
    next_at: int = -2
    next_slot: str = ""


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Promise | Score | CustomerState):
        return value.to_dict()  # the map a Struct was written as: the same bytes
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Promise and isinstance(value, dict):
        # unknown keys ignored and defaults filled, as for the Struct it was
        return Promise(**{k: v for k, v in value.items() if k in _PROMISE_FIELDS})
    raise NotImplementedError(f"cannot decode {kind.__name__}")


_PROMISE_FIELDS = frozenset(FIELDS)
_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(_PlainState, dec_hook=_dec_hook)


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
        p.customer, p.clock, p.pruned, p.seq, p.seen, p.pending, p.promises, p.repeats,
        p.alert_windows, p.alerts_fired, Score(c.total, c.dims, c.at, c.created, c.destroyed),
        p.reasons, p.next_at, p.next_slot)


def encode_plain(state: CustomerState) -> bytes:
    """The plain msgpack form (field names included) written before the compact one."""
    return _encoder.encode(state)
