"""The msgspec structs of a customer's Redis value, and the encoders run for every commit.

Not compiled: apart from `store.record` so that mypyc can compile the rest there (a msgspec
Struct subclass cannot be compiled); the layout is documented in that module. The two encoders
run once per state and per ledger entry of every Redis commit, and read a dozen fields of
msgspec structs each: CPython 3.11 specialises those attribute reads, mypyc's generic ones are
slower (`head_raw` 5.9 µs interpreted against 7.0 compiled, `entry_raw` 0.6 against 1.0:
docs/benchmarks.md, "State, seventh wave"), so they stay interpreted, like `engine/compact.py`.
"""

from __future__ import annotations

import msgspec

from valeur_monitor.engine import compact
from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState

ENTRY_MAGIC = b"\xc1\x01"   # 0xC1 is never a msgpack first byte: older entries are maps


class Row(msgspec.Struct, array_like=True):
    """The head: the score row readers need, then the engine's state bytes (opaque here)."""

    total: float
    at: int
    created: float
    destroyed: float
    dims: dict[str, float]
    reasons: dict[str, float]
    state: bytes


class Entry(msgspec.Struct, array_like=True):
    """A ledger entry without field names (the compact form kept in Redis)."""

    time: int
    seq: int
    customer: str
    rule: str
    outcome: str
    dimension: str
    amount: float
    value: float
    events: tuple[str, ...]
    explain: str
    ref: str
    team: str
    channel: str
    late: bool
    rules_version: str


_row_encoder = msgspec.msgpack.Encoder()
_entry_encoder = msgspec.msgpack.Encoder()


def head_raw(state: CustomerState) -> bytes:
    """The head of a customer's value before its codec byte and compression: the score row
    and the state bytes (msgpack)."""
    s = state.score
    return _row_encoder.encode(Row(s.total, s.at, s.created, s.destroyed, s.dims, state.reasons,
                                   compact.encode(state)))   # = encode_state, called directly


def entry_raw(entry: LedgerEntry) -> bytes:
    """A window frame's payload before its codec byte and compression (`encode_entry` without
    the customer: the key's)."""
    e = entry
    return ENTRY_MAGIC + _entry_encoder.encode(Entry(
        e.time, e.seq, "", e.rule, e.outcome, e.dimension, e.amount, e.value, e.events,
        e.explain, e.ref, e.team, e.channel, e.late, e.rules_version))
