"""In-memory store for the embedded runner, tests and backtests (no server)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit, ScoreView


class MemoryStore:
    """Keeps live state objects (no serialisation); `ledger_cap` None keeps every entry."""

    def __init__(self, ledger_cap: int | None = None) -> None:
        self._states: dict[str, CustomerState] = {}
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._ledgers: dict[str, list[LedgerEntry]] = {}
        self._watermark = 0
        self._cap = ledger_cap

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        states = self._states
        out = {}
        for customer in customers:
            state = states.get(customer)
            out[customer] = state if state is not None else CustomerState(customer)
        return out

    def commit(self, commit: Commit) -> None:
        self._states.update(commit.states)
        for customer, due in commit.due.items():
            if due < 0:
                self._due.pop(customer, None)
            elif self._due.get(customer) != due:  # an older heap item becomes stale
                self._due[customer] = due
                heapq.heappush(self._heap, (due, customer))
        for entry in commit.entries:
            ledger = self._ledgers.setdefault(entry.customer, [])
            ledger.append(entry)
            if self._cap is not None and len(ledger) > self._cap:
                del ledger[: len(ledger) - self._cap]
        self._watermark = max(self._watermark, commit.watermark)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        """A pure query, like Redis's: what it returns stays due until recommitted."""
        out: list[tuple[int, str]] = []
        seen: set[str] = set()
        heap = self._heap
        # Stale heap items (due time changed since, or a second copy of a live one) are dropped
        # for good; live ones go back.
        while heap and heap[0][0] <= until and len(out) < limit:
            due, customer = heapq.heappop(heap)
            if self._due.get(customer) == due and customer not in seen:
                seen.add(customer)
                out.append((due, customer))
        for item in out:
            heapq.heappush(heap, item)
        return [customer for _, customer in out]

    def watermark(self) -> int:
        return self._watermark

    def score(self, customer: str) -> ScoreView | None:
        state = self._states.get(customer)
        return ScoreView.of(state) if state is not None else None

    def ranking(self, n: int, *, worst: bool = True) -> list[tuple[str, float]]:
        items = [(c, s.score.total) for c, s in self._states.items()]
        items.sort(key=lambda cs: (cs[1] if worst else -cs[1], cs[0]))
        return items[:n]

    def ledger(self, customer: str, limit: int | None = None) -> list[LedgerEntry]:
        entries = self._ledgers.get(customer, [])
        return list(entries[-limit:] if limit else entries)

    def customers(self) -> list[str]:
        return sorted(self._states)

    def due_promises(self, until: int) -> list[tuple[str, str, str, int]]:
        out = []
        for customer, state in self._states.items():
            for promise in state.promises.values():
                if promise.broken_at < 0 and promise.paused_at < 0 and promise.deadline <= until:
                    out.append((customer, promise.rule, promise.ref, promise.deadline))
        return sorted(out)

    def close(self) -> None:
        return None
