"""In-memory store for the embedded runner, tests and backtests (no server)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from mypy_extensions import mypyc_attr

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit, ScoreView


# Compiled by mypyc; test fakes subclass it, hence the flag.
@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryStore:
    """Keeps live state objects (no serialisation); `ledger_cap` None keeps every entry."""

    def __init__(self, ledger_cap: int | None = None) -> None:
        self._states: dict[str, CustomerState] = {}
        self._due = DueIndex()
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
        self._due.update(commit.due)
        cap, ledgers = self._cap, self._ledgers
        # cap 0 keeps no ledger (a shard of `run --workers N`: its entries go to its files)
        for entry in commit.entries if cap != 0 else ():
            ledger = ledgers.get(entry.customer)
            if ledger is None:
                ledger = ledgers[entry.customer] = []
            ledger.append(entry)
            if cap is not None and len(ledger) > cap:
                del ledger[: len(ledger) - cap]
        self._watermark = max(self._watermark, commit.watermark)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        """A pure query, like Redis's: what it returns stays due until recommitted."""
        return self._due.query(until, limit)

    def watermark(self) -> int:
        return self._watermark

    def state(self, customer: str) -> CustomerState | None:
        """The live state of a known customer (for the read side), else None."""
        return self._states.get(customer)

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
                if promise.is_overdue(until):
                    out.append((customer, promise.rule, promise.ref, promise.deadline))
        return sorted(out)

    def close(self) -> None:
        return None


class DueIndex:
    """Customers by next due time, in buckets of `width` ms: a commit moves a customer between
    two sets (no stale entries pile up), a query sorts only the buckets it reaches."""

    def __init__(self, width: int = 60_000) -> None:
        self.width = width
        self._at: dict[str, int] = {}
        self._buckets: dict[int, set[str]] = {}
        self._order: list[int] = []  # heap of bucket numbers (each once), empty ones lazily gone

    def update(self, due: dict[str, int]) -> None:
        at, buckets, width = self._at, self._buckets, self.width
        for customer, when in due.items():
            before = at.get(customer)
            if before == when or (before is None and when < 0):
                continue
            if before is not None:
                buckets[before // width].discard(customer)
            if when < 0:
                del at[customer]
                continue
            at[customer] = when
            number = when // width
            bucket = buckets.get(number)
            if bucket is None:
                bucket = buckets[number] = set()
                heapq.heappush(self._order, number)
            bucket.add(customer)

    def query(self, until: int, limit: int) -> list[str]:
        """Customers due at or before `until`, earliest first (ties by id), at most `limit`."""
        order, buckets, at = self._order, self._buckets, self._at
        last = until // self.width
        found: list[tuple[int, str]] = []
        reached: list[int] = []
        while order and order[0] <= last and len(found) < limit:
            number = heapq.heappop(order)
            bucket = buckets[number]
            if not bucket:
                del buckets[number]  # emptied by commits since: gone for good
                continue
            reached.append(number)
            found.extend((when, c) for c in bucket if (when := at[c]) <= until)
        for number in reached:
            heapq.heappush(order, number)
        found.sort()
        return [customer for _, customer in found[:limit]]
