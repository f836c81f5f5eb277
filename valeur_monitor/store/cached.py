"""A write-through cache of states over another store, for one process that owns its customers.

`run --store redis://` is the only writer of its store while it runs (like a worker of its
partitions: `streaming/scope.py` keeps its own cache the same way), so a state it loaded or
committed is exactly what Redis holds: loading it again from Redis, and decoding it, is waste.
Every commit still goes to the inner store (the commit point: exactly-once and the data-loss
checks are the inner store's). A commit that fails leaves states the engine changed in place
that Redis does not hold: the cache is dropped and the error raised.

With `pipelined` (an inner store with `prepare`/`apply`, i.e. Redis), a batch's commit is
encoded at once, in the caller's thread (the states are not touched again before that), and
sent by one background thread while the caller goes on with the next batch: the Redis round
trip and script overlap decoding and applying the next events. At most one commit is in flight
and commits reach Redis in order. `due` (the due index lives in Redis), `flush` (readers) and
`close` wait for it; its failure is raised by the next of those or by the next commit, one
batch late, so outputs of that last batch may have been written (at-least-once outputs, as for
a worker; Redis itself stays all-or-nothing per batch). A customer missing from the cache was
never committed by this process, so loading it needs no wait; the watermark is kept here.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit, Store


class CachedStore:
    """Store protocol over `inner`, keeping every loaded or committed state in memory."""

    def __init__(self, inner: Store, *, pipelined: bool = False) -> None:
        self.inner = inner
        self.cache: dict[str, CustomerState] = {}
        self.loaded = 0            # states read from the inner store (cache misses)
        self._prepare = getattr(inner, "prepare", None) if pipelined else None
        self._apply: Any = getattr(inner, "apply", None)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._watermark: int | None = None

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        cache = self.cache
        wanted = list(customers)
        missing = [c for c in wanted if c not in cache]
        if missing:
            cache.update(self.inner.load(missing))
            self.loaded += len(missing)
        return {c: cache[c] for c in wanted}

    def commit(self, commit: Commit) -> None:
        self.flush()
        try:
            if self._prepare is None:
                self.inner.commit(commit)
            else:
                prepared = self._prepare(commit)
                if prepared is not None:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store-commit")
                    self._pending = self._pool.submit(self._apply, prepared)
        except BaseException:
            self.cache.clear()
            raise
        self.cache.update(commit.states)
        if self._watermark is not None:
            self._watermark = max(self._watermark, commit.watermark)

    def flush(self) -> None:
        """Wait for the commit in flight; its failure is raised here (the cache dropped)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except BaseException:
            self.cache.clear()
            raise

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        self.flush()
        return self.inner.due(until, limit)

    def watermark(self) -> int:
        if self._watermark is None:
            self.flush()
            self._watermark = self.inner.watermark()
        return self._watermark

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self.cache.clear()
            self.inner.close()
