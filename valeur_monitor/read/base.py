"""The read protocol: stored scores, ledger windows, rankings and open promises, as stored.

Implementations only fetch; decaying to an `as_of`, filtering, paging and ranking live in
`valeur_monitor.read.views` (pure functions), so memory and Redis cannot disagree on them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import Promise
from valeur_monitor.store.base import ScoreView


@dataclass(frozen=True)
class Snapshot:
    """One customer as stored: score, ledger window (oldest first), open promises."""

    score: ScoreView
    ledger: list[LedgerEntry]
    promises: list[Promise]


class Reader(Protocol):
    """Read-only access to what the processing store committed."""

    def snapshot(self, customer: str) -> Snapshot | None:
        """Everything about one customer, read at once (one round trip on Redis)."""
        ...

    def score(self, customer: str) -> ScoreView | None:
        """The customer's stored score (decayed to its last update), or None if unknown."""
        ...

    def scores(self, customers: Sequence[str]) -> dict[str, ScoreView]:
        """Stored scores of these customers (unknown ones left out)."""
        ...

    def ledger(self, customer: str) -> list[LedgerEntry]:
        """The ledger window kept for the customer, oldest first."""
        ...

    def ledgers(self, customers: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        """Ledger windows of several customers at once (for rankings)."""
        ...

    def last_entries(self, customers: Sequence[str]) -> dict[str, LedgerEntry]:
        """Each customer's most recent ledger entry (customers without one left out)."""
        ...

    def promises(self, customer: str) -> list[Promise]:
        """The customer's promises still open (running or paused, not broken), by deadline."""
        ...

    def ranked(self, start: int, count: int, *, worst: bool = True) -> list[tuple[str, float]]:
        """Customers by stored total (lowest first, or highest), ties by id: a page of it."""
        ...

    def count(self) -> int:
        """How many customers have a score."""
        ...

    def batches(self, size: int = 1000) -> Iterator[list[str]]:
        """Every customer id, in batches (no order promised)."""
        ...

    def watermark(self) -> int:
        """The stream time the processing side reached (ms), 0 before any event."""
        ...

    def ping(self) -> None:
        """Raise StoreError when the backing store cannot answer."""
        ...

    def close(self) -> None: ...


def open_promises(promises: Sequence[Promise]) -> list[Promise]:
    """Promises neither broken nor dropped, earliest deadline first (ties by rule, ref)."""
    return sorted((p for p in promises if p.is_open()),
                  key=lambda p: (p.deadline, p.rule, p.ref))
