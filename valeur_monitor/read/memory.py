"""The read protocol over a live MemoryStore (embedded runs, `run --serve`, tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import Promise
from valeur_monitor.read.base import Snapshot, open_promises
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore


class MemoryReader:
    """Reads the store's live objects; safe while no batch is being committed."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def snapshot(self, customer: str) -> Snapshot | None:
        state = self.store.state(customer)
        if state is None:
            return None
        return Snapshot(ScoreView.of(state), self.store.ledger(customer),
                        open_promises(list(state.promises.values())))

    def score(self, customer: str) -> ScoreView | None:
        state = self.store.state(customer)
        return ScoreView.of(state) if state is not None else None

    def scores(self, customers: Sequence[str]) -> dict[str, ScoreView]:
        return {c: v for c in customers if (v := self.score(c)) is not None}

    def ledger(self, customer: str) -> list[LedgerEntry]:
        return self.store.ledger(customer)

    def ledgers(self, customers: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        return {c: self.store.ledger(c) for c in customers}

    def last_entries(self, customers: Sequence[str]) -> dict[str, LedgerEntry]:
        return {c: e[-1] for c in customers if (e := self.store.ledger(c))}

    def promises(self, customer: str) -> list[Promise]:
        state = self.store.state(customer)
        return open_promises(list(state.promises.values())) if state is not None else []

    def ranked(self, start: int, count: int, *, worst: bool = True) -> list[tuple[str, float]]:
        if count <= 0 or start < 0:
            return []
        return self.store.ranking(start + count, worst=worst)[start:]

    def count(self) -> int:
        return len(self.store.customers())

    def batches(self, size: int = 1000) -> Iterator[list[str]]:
        customers = self.store.customers()
        for i in range(0, len(customers), size):
            yield customers[i:i + size]

    def watermark(self) -> int:
        return self.store.watermark()

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
