"""The compact encoding of a customer state (version 3): what the Redis store keeps per customer.

Every state is encoded again at each store commit that touches it (the worker and `run --store
redis://`), so this form is built to be written by msgspec in one call, with no Python work per
dedupe mark, promise or repeat time:

* positional arrays instead of maps: the state, its score and each promise are arrays of their
  fields in declaration order (no field names); a promise is preceded by its slot;
* instants as they are (epoch ms, -1 for none): nothing is relative to the customer's clock, so
  the bytes of a part that did not change — the dedupe marks already kept, an untouched promise,
  the repeat windows — are the same at every commit, whatever the clock did;
* the dedupe marks as the engine keeps them (event id -> event time), pruned as before.

Plain epoch milliseconds and full ids repeat the same bytes all over a state: the store
compresses each head with a zstandard dictionary trained on this form (`store/record.py`, codec
2), which takes them back to the size of the relative form of version 2 — at a quarter of its
encoding cost (docs/benchmarks.md, "State encoding, fifth wave").

It starts with 0xC1 (never a msgpack first byte) and the version, so states stored in the plain
form or in versions 1 and 2 (`engine.compact_old`) are still read: `decode` takes them all, and
`decode(encode(s)) == s` for every state the engine makes.
"""

from __future__ import annotations

import msgspec

from valeur_monitor.engine import compact_old
from valeur_monitor.engine.compact_types import StateV3 as _State3
from valeur_monitor.engine.compact_types import events_of
from valeur_monitor.engine.rowed import as_map
from valeur_monitor.engine.state import CustomerState, Promise, Score

MAGIC = b"\xc1\x03"   # 0xC1: never a msgpack first byte; then the format version

_enc = msgspec.msgpack.Encoder(enc_hook=as_map).encode   # pending events: their maps
_decoder3 = msgspec.msgpack.Decoder(_State3)


def encode(state: CustomerState) -> bytes:
    """Compact, deterministic bytes of a state (version 3)."""
    promises = state.promises
    return MAGIC + _enc((
        state.customer, state.clock, state.pruned, state.seq, state.seen, state.pending,
        [(slot, p.row()) for slot, p in promises.items()], state.repeats,
        state.alert_windows, state.alerts_fired, state.score.row(), state.reasons,
        state.next_at, state.next_slot))


def decode(data: bytes) -> CustomerState:
    """Inverse of `encode`, and of versions 1 and 2 (`engine.compact_old`)."""
    version = data[:2]
    if version != MAGIC:
        if version == compact_old.MAGIC_V2:
            return compact_old.decode_v2(data)
        if version == compact_old.MAGIC_V1:
            return compact_old.decode_v1(data)
        raise ValueError(f"unknown compact state version {data[1:2]!r} (written by a newer "
                         "version?)")
    s = _decoder3.decode(memoryview(data)[len(MAGIC):])
    total, dims, score_at, created, destroyed = s.score
    return CustomerState(
        s.customer, s.clock, s.pruned, s.seq, s.seen, events_of(s.pending),
        {slot: Promise(*fields) for slot, fields in s.promises}, s.repeats, s.alert_windows,
        s.alerts_fired, Score(total, dims, score_at, created, destroyed), s.reasons, s.next_at,
        s.next_slot)
