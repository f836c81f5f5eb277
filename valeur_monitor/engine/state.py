"""Per-customer engine state: serialisable structs (the Redis store keeps them compact)."""

from __future__ import annotations

import msgspec

from valeur_monitor.engine.event import Event


class Promise(msgspec.Struct, gc=False):
    """One open (or recently broken) obligation of an `expect` rule, keyed by rule and ref."""

    rule: str
    ref: str
    opened_at: int            # event time of the opening event (ms)
    open_event: str           # id of the opening event
    budget: int               # SLA clock budget (ms of calendar time, or wall ms without calendar)
    used: int = 0             # SLA clock consumed before `running_since`
    running_since: int = 0    # when the SLA clock last (re)started (meaningless while paused)
    deadline: int = 0         # instant the promise breaks (recomputed on resume)
    warn_at: int = -1         # instant of the warning, -1 = none or already sent
    broken_at: int = -1       # set once broken; the promise then waits for a late keep
    paused_at: int = -1       # set while the clock is stopped (waiting on the customer)
    warned: bool = False
    due: int = -1             # next instant this promise needs attention (-1: none), see refresh
    tier: str = ""
    team: str = ""
    channel: str = ""

    def is_open(self) -> bool:
        """Still owed: not broken (a paused promise is open, its SLA clock stopped). The one
        definition used by the engine's readers: metrics, the API and the stores."""
        return self.broken_at < 0

    def is_overdue(self, until: int) -> bool:
        """Open, its clock running, and its deadline reached by `until`."""
        return self.broken_at < 0 and self.paused_at < 0 and self.deadline <= until

    def refresh(self, late_window: int, max_pause: int) -> None:
        """Recompute `due` after any change (kept as a field so timers are a cheap scan)."""
        if self.broken_at >= 0:
            self.due = self.broken_at + late_window
        elif self.paused_at >= 0:
            self.due = self.paused_at + max_pause  # waiting on the customer too long: dropped
        else:
            self.due = self.warn_at if self.warn_at >= 0 else self.deadline


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


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CustomerState)


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
