"""The store protocol: memory for embedded runs, Redis in production."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState


@dataclass
class Commit:
    """All effects of one batch; a store applies them atomically per customer."""

    states: dict[str, CustomerState] = field(default_factory=dict)
    due: dict[str, int] = field(default_factory=dict)        # customer -> next due (-1: none)
    entries: list[LedgerEntry] = field(default_factory=list)
    watermark: int = 0


@dataclass(frozen=True)
class ScoreView:
    """A customer's score as stored: total and breakdown decayed to `at`, plus top reasons."""

    customer: str
    total: float
    dims: dict[str, float]
    at: int
    created: float
    destroyed: float
    reasons: dict[str, float]

    @classmethod
    def of(cls, state: CustomerState) -> ScoreView:
        s = state.score
        return cls(state.customer, s.total, dict(s.dims), s.at, s.created, s.destroyed,
                   dict(state.reasons))

    def top_reasons(self, n: int = 3) -> list[tuple[str, float]]:
        """Rules that moved the score most, largest magnitude first (ties by rule id)."""
        return top_reasons(self.reasons, n)


def top_reasons(reasons: dict[str, float], n: int = 3) -> list[tuple[str, float]]:
    """The `n` rules of `reasons` that moved a score most, largest magnitude first (ties by
    rule id)."""
    return sorted(reasons.items(), key=_magnitude)[:n]


def _magnitude(kv: tuple[str, float]) -> tuple[float, str]:
    return (-abs(kv[1]), kv[0])


class Store(Protocol):
    """What the Processor needs from a state store (reads for people: valeur_monitor.read)."""

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        """States of these customers (a fresh state for an unknown customer)."""
        ...

    def commit(self, commit: Commit) -> None:
        """Apply a batch's states, due times, ledger entries and watermark atomically."""
        ...

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        """Customers with something due at or before `until`, earliest first (ties by id).

        A pure query: a customer stays due until a commit gives it a new due time.
        """
        ...

    def watermark(self) -> int:
        """The stream time reached so far (ms), 0 before any event."""
        ...

    def close(self) -> None: ...
