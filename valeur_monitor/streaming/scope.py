"""A view of the shared store for one worker: its stream time, its customers, staged commits.

The shared `Processor` reads three things from its store that a worker must scope:

* ``watermark()``: the stream time to start from. The store's global watermark is the maximum
  any worker reached; applying it to this worker's customers would make their next events late
  whenever another partition runs ahead. The view answers the floor the pipeline sets per call.
* ``due(until)``: customers with a timer or a buffered event due. The view keeps only customers
  this worker may advance to `until` (owned partition, safe stream time reached), so no two
  workers ever advance the same customer.
* ``commit(commit)``: staged, not applied, until the pipeline has published the batch's outputs
  to Kafka; `flush()` then applies every staged commit (merged into one when their customers
  are disjoint: one Redis round trip). A crash before the flush redelivers the batch and
  publishes the outputs again (at-least-once outputs); a crash after it is absorbed by dedupe.

The store's ``due`` is a pure query (a protocol guarantee checked by the contract suite),
so customers filtered out here stay due for the worker that owns them.

States are kept in memory (`cache`) once loaded: the worker owns its customers' partitions, so
nobody else writes them; every commit still writes them through to Redis (the commit point).
The pipeline drops the states of revoked partitions, and `discard` (a failed attempt, whose
in-place changes must not survive) drops them all: they are reloaded from Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit, Store

Allow = Callable[[str, int], bool]


def merge_commits(commits: list[Commit]) -> Commit | None:
    """One commit with the effects of several whose customers are disjoint (else None)."""
    if len(commits) == 1:
        return commits[0]
    states = {c: s for commit in commits for c, s in commit.states.items()}
    if len(states) != sum(len(commit.states) for commit in commits):
        return None
    return Commit(states=states,
                  due={c: d for commit in commits for c, d in commit.due.items()},
                  entries=[e for commit in commits for e in commit.entries],
                  watermark=max(commit.watermark for commit in commits))


def _allow_all(customer: str, until: int) -> bool:
    return True


class WorkerScope:
    """Store protocol over another store (see the module docstring)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.floor = 0
        self.allow: Allow = _allow_all
        self.staged: list[Commit] = []
        self.commits = 0
        self._call_start = 0
        self.cache: dict[str, CustomerState] = {}
        self.loaded = 0                  # states read from the inner store (cache misses)

    def scoped(self, floor: int, allow: Allow) -> WorkerScope:
        """Set the floor and the due filter for the next Processor call."""
        self.floor = floor
        self.allow = allow
        self._call_start = len(self.staged)
        return self

    # -- the Store protocol ------------------------------------------------------------------
    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        cache = self.cache
        wanted = list(customers)
        missing = [c for c in wanted if c not in cache]
        if missing:
            cache.update(self.inner.load(missing))
            self.loaded += len(missing)
        return {c: cache[c] for c in wanted}

    def forget(self, keep: Callable[[str], bool] | None = None) -> None:
        """Drop cached states (all of them, or those for which `keep` is false)."""
        if keep is None:
            self.cache.clear()
        else:
            self.cache = {c: s for c, s in self.cache.items() if keep(c)}

    def commit(self, commit: Commit) -> None:
        self.staged.append(commit)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        # The Processor asks again after committing a slice of a very large due set: that slice
        # must be visible first (its outputs are then published after its commit: see docs).
        self._flush_from(self._call_start)
        allow = self.allow
        ask = limit
        while True:
            found = self.inner.due(until, ask)
            mine = [c for c in found if allow(c, until)]
            if len(found) < ask or len(mine) >= limit:
                return mine[:limit]
            ask *= 4

    def watermark(self) -> int:
        return self.floor

    def close(self) -> None:
        self.inner.close()

    # -- staging -------------------------------------------------------------------------------
    def flush(self) -> int:
        """Apply every staged commit; returns how many there were."""
        self._call_start = 0
        return self._flush_from(0)

    def _flush_from(self, start: int) -> int:
        pending = self.staged[start:]
        if not pending:
            return 0
        merged = merge_commits(pending)
        if merged is not None:
            self.inner.commit(merged)          # a failure keeps them staged for a retry
        else:                                  # re-applying after a failure is idempotent
            for commit in pending:
                self.inner.commit(commit)
        del self.staged[start:]
        self.commits += len(pending)
        return len(pending)

    def discard(self) -> None:
        """Drop staged commits and the cached states (a failed attempt may have changed them
        in place): the batch is processed again from the states in the store."""
        self.staged.clear()
        self.cache.clear()
