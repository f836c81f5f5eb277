"""Per-customer engine state: serialisable structs (the Redis store keeps them compact)."""

from __future__ import annotations

from typing import Any

import msgspec

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.promise import FIELDS
from valeur_monitor.engine.promise import Promise as Promise  # its home since the native class


class Score(msgspec.Struct, gc=False):
    """Running score: value per dimension (benefits positive, costs negative), decayed to `at`."""

    total: float = 0.0
    dims: dict[str, float] = msgspec.field(default_factory=dict)
    at: int = 0
    created: float = 0.0       # undecayed sums, for reports
    destroyed: float = 0.0


class CustomerState(msgspec.Struct, gc=False):
    """Everything the engine knows about one customer; the engine mutates it in place."""

    customer: str
    clock: int = 0                                    # customer's stream time (ms)
    pruned: int = 0                                   # clock at the last pruning of `seen`
    seq: int = 0                                      # ledger entries issued so far
    seen: dict[str, int] = msgspec.field(default_factory=dict)      # event id -> event time
    pending: list[Event] = msgspec.field(default_factory=list)      # sorted by (time, id)
    promises: dict[str, Promise] = msgspec.field(default_factory=dict)
    repeats: dict[str, list[tuple[int, str]]] = msgspec.field(default_factory=dict)  # (time, ref)
    alert_windows: dict[str, list[int]] = msgspec.field(default_factory=dict)
    alerts_fired: list[str] = msgspec.field(default_factory=list)  # alerts awaiting re-arm
    score: Score = msgspec.field(default_factory=Score)
    reasons: dict[str, float] = msgspec.field(default_factory=dict)  # rule -> undecayed value
    # The earliest promise timer (due, slot), kept up to date by the engine as promises change
    # so that advancing never scans the promises; next_at -2 means "not known: scan once".
    next_at: int = -2
    next_slot: str = ""


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Promise):
        return value.to_dict()  # the map a Struct was written as: the same bytes
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Promise and isinstance(value, dict):
        # unknown keys ignored and defaults filled, as for the Struct it was
        return Promise(**{k: v for k, v in value.items() if k in _PROMISE_FIELDS})
    raise NotImplementedError(f"cannot decode {kind.__name__}")


_PROMISE_FIELDS = frozenset(FIELDS)
_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(CustomerState, dec_hook=_dec_hook)


def encode_state(state: CustomerState) -> bytes:
    """Deterministic bytes of a state (same state -> same bytes), in the compact form."""
    from valeur_monitor.engine import compact

    return compact.encode(state)


def decode_state(data: bytes) -> CustomerState:
    """Inverse of `encode_state`; states written in the plain msgpack form are read too."""
    if data[:1] == b"\xc1":
        from valeur_monitor.engine import compact

        return compact.decode(data)
    return _decoder.decode(data)


def encode_plain(state: CustomerState) -> bytes:
    """The plain msgpack form (field names included) written before the compact one."""
    return _encoder.encode(state)
