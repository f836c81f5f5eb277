"""The msgspec structs of a customer's Redis value: its head row and compact ledger entries.

Not compiled: apart from `store.record` so that mypyc can compile the encoder and decoder
there (a msgspec Struct subclass cannot be compiled); the layout is documented in that module.
"""

from __future__ import annotations

import msgspec


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
