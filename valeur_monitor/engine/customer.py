"""A customer's engine state and running score: native classes when compiled (engine.promise)."""

from __future__ import annotations

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.promise import Promise
from valeur_monitor.engine.rowed import Rowed

# As for Promise (engine/promise.py): msgspec Structs before, read by the compiled engine
# through the generic attribute path; classes of a compiled module are native there (slot
# loads, unboxed ints and floats), classes with slots interpreted. The encodings take their
# fields in declaration order (`row`), so the stored forms are unchanged.

SCORE_FIELDS = ("total", "dims", "at", "created", "destroyed")
STATE_FIELDS = ("customer", "clock", "pruned", "seq", "seen", "pending", "promises", "repeats",
                "alert_windows", "alerts_fired", "score", "reasons", "next_at", "next_slot")


class Score(Rowed):
    """Running score: value per dimension (benefits positive, costs negative), decayed to `at`."""

    __slots__ = ("at", "created", "destroyed", "dims", "total")
    FIELDS = SCORE_FIELDS

    def __init__(self, total: float = 0.0, dims: dict[str, float] | None = None, at: int = 0,
                 created: float = 0.0, destroyed: float = 0.0) -> None:
        self.total = total
        self.dims: dict[str, float] = {} if dims is None else dims
        self.at = at
        self.created = created        # undecayed sums, for reports
        self.destroyed = destroyed

    def row(self) -> tuple[float, dict[str, float], int, float, float]:
        return (self.total, self.dims, self.at, self.created, self.destroyed)



class CustomerState(Rowed):
    """Everything the engine knows about one customer; the engine mutates it in place."""

    __slots__ = ("alert_windows", "alerts_fired", "clock", "customer", "next_at", "next_slot",
                 "pending", "promises", "pruned", "reasons", "repeats", "score", "seen", "seq")
    FIELDS = STATE_FIELDS

    def __init__(self, customer: str, clock: int = 0, pruned: int = 0, seq: int = 0,
                 seen: dict[str, int] | None = None, pending: list[Event] | None = None,
                 promises: dict[str, Promise] | None = None,
                 repeats: dict[str, list[tuple[int, str]]] | None = None,
                 alert_windows: dict[str, list[int]] | None = None,
                 alerts_fired: list[str] | None = None, score: Score | None = None,
                 reasons: dict[str, float] | None = None, next_at: int = -2,
                 next_slot: str = "") -> None:
        self.customer = customer
        self.clock = clock            # customer's stream time (ms)
        self.pruned = pruned          # clock at the last pruning of `seen`
        self.seq = seq                # ledger entries issued so far
        self.seen: dict[str, int] = {} if seen is None else seen   # event id -> event time
        self.pending: list[Event] = [] if pending is None else pending  # sorted by (time, id)
        self.promises: dict[str, Promise] = {} if promises is None else promises
        self.repeats: dict[str, list[tuple[int, str]]] = (
            {} if repeats is None else repeats)   # slot -> (time, ref)
        self.alert_windows: dict[str, list[int]] = {} if alert_windows is None else alert_windows
        self.alerts_fired: list[str] = (
            [] if alerts_fired is None else alerts_fired)   # alerts awaiting re-arm
        self.score: Score = Score() if score is None else score
        self.reasons: dict[str, float] = (
            {} if reasons is None else reasons)   # rule -> undecayed value
        # The earliest promise timer (due, slot), kept up to date by the engine as promises
        # change so that advancing never scans them; next_at -2 means "not known: scan once".
        self.next_at = next_at
        self.next_slot = next_slot

    def row(self) -> tuple[object, ...]:
        """The fields in declaration order (`CustomerState(*row)` is the same state)."""
        return (self.customer, self.clock, self.pruned, self.seq, self.seen, self.pending,
                self.promises, self.repeats, self.alert_windows, self.alerts_fired, self.score,
                self.reasons, self.next_at, self.next_slot)
