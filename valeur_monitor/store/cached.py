"""A write-through cache of states over another store, for one process that owns its customers.

`run --store redis://` is the only writer of its store while it runs (like a worker of its
partitions: `streaming/scope.py` keeps its own cache the same way), so a state it loaded or
committed is exactly what Redis holds: loading it again from Redis, and decoding it, is waste.
Every commit still goes to the inner store (the commit point: exactly-once and the data-loss
checks are the inner store's). A commit that fails leaves states the engine changed in place
that Redis does not hold: the cache is dropped and the next load reads Redis again.
"""

from __future__ import annotations

from collections.abc import Iterable

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit, Store


class CachedStore:
    """Store protocol over `inner`, keeping every loaded or committed state in memory."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.cache: dict[str, CustomerState] = {}
        self.loaded = 0            # states read from the inner store (cache misses)

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        cache = self.cache
        wanted = list(customers)
        missing = [c for c in wanted if c not in cache]
        if missing:
            cache.update(self.inner.load(missing))
            self.loaded += len(missing)
        return {c: cache[c] for c in wanted}

    def commit(self, commit: Commit) -> None:
        try:
            self.inner.commit(commit)
        except BaseException:
            self.cache.clear()
            raise
        self.cache.update(commit.states)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        return self.inner.due(until, limit)

    def watermark(self) -> int:
        return self.inner.watermark()

    def close(self) -> None:
        self.cache.clear()
        self.inner.close()
