"""A view of the shared store for one worker: its stream time, its customers, staged commits.

The shared `Processor` reads three things from its store that a worker must scope:

* ``watermark()``: the stream time to start from. The store's global watermark is the maximum
  any worker reached; applying it to this worker's customers would make their next events late
  whenever another partition runs ahead. The view answers the floor the pipeline sets per call.
* ``due(until)``: customers with a timer or a buffered event due. The view keeps only customers
  this worker may advance to `until` (owned partition, safe stream time reached), so no two
  workers ever advance the same customer.
* ``commit(commit)``: staged, not applied, until the pipeline has published the batch's outputs
  to Kafka; `flush()` then applies every staged commit (merged into one: one Redis round trip,
  each customer written once from its latest state). A crash before the flush redelivers the
  batch and publishes the outputs again (at-least-once outputs); a crash after it is absorbed
  by dedupe.

The store's ``due`` is a pure query (a protocol guarantee checked by the contract suite),
so customers filtered out here stay due for the worker that owns them.

States are kept in memory (`cache`) once loaded: the worker owns its customers' partitions, so
nobody else writes them; every commit still writes them through to Redis (the commit point).
The pipeline drops the states of revoked partitions, and `discard` (a failed attempt, whose
in-place changes must not survive) drops them all: they are reloaded from Redis.

Pipelining (`prepare` / `apply`): staged commits are encoded between batches (`prepare`, in
the processing thread), so the next batch may change the same states in place while that
commit is still on its way to Redis (`apply`, later, in order). The runtime prepares the
commits of every batch processed while the commit before was in flight together (group
commit: a customer those batches touched is encoded once). Until a
prepared commit is applied, Redis's due index lags the states: `due` answers from the
prepared commits' due times for their customers (the overlay), from Redis for the others, so
it gives exactly the customers a serial worker would advance.

Due index in memory: with a store that lists its due index (`due_entries`: Redis), the view
reads it once (after an assignment, a revocation or a failed attempt: only the worker's own
customers, `owns`) and keeps it up to date with every staged commit, since the worker is the
only writer of its customers. `due` is then answered without a round trip (the Processor asks
once per partition and batch), and it is the serial worker's view by construction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from valeur_monitor.engine.state import CustomerState, decode_state, encode_state
from valeur_monitor.store.base import Commit, Store
from valeur_monitor.store.memory import DueIndex

Allow = Callable[[str, int], bool]


@dataclass
class Pending:
    """A batch's commit(s), encoded (or copied) and waiting to be applied, in order."""

    seq: int
    parts: list[Any]                 # what the inner store's `apply` takes (else Commits)
    due: dict[str, int]              # customer -> next due of these commits (-1: none)
    count: int                       # Processor commits merged into it
    states: int = 0                  # customers it writes (each encoded once)
    done: threading.Event = field(default_factory=threading.Event)


def merge_commits(commits: list[Commit]) -> Commit:
    """One commit with the effects of several, applied in order: the commits of the batches
    of one group may share customers (a customer touched by two batches is written once, from
    the state the later one left in memory; its entries of both are appended, in seq order)."""
    if len(commits) == 1:
        return commits[0]
    states: dict[str, CustomerState] = {}
    due: dict[str, int] = {}
    for commit in commits:
        states.update(commit.states)
        due.update(commit.due)
    return Commit(states=states, due=due,
                  entries=[e for commit in commits for e in commit.entries],
                  watermark=max(commit.watermark for commit in commits))


def _allow_all(customer: str, until: int) -> bool:
    return True


def _owns_all(customer: str) -> bool:
    return True


class WorkerScope:
    """Store protocol over another store (see the module docstring)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.floor = 0
        self.allow: Allow = _allow_all
        self.staged: list[Commit] = []
        self.commits = 0                 # Processor commits applied
        self.calls = 0                   # store commits (script calls) they took
        self.states = 0                  # customer states those wrote
        self._call_start = 0
        self.cache: dict[str, CustomerState] = {}
        self.loaded = 0                  # states read from the inner store (cache misses)
        # A store that can encode a commit apart from sending it (RedisStore) lets the next
        # batch change states in place meanwhile; any other store gets copies of the states.
        self._prepare: Callable[[Commit], Any] | None = getattr(inner, "prepare", None)
        self._apply: Callable[[Any], None] | None = getattr(inner, "apply", None)
        self._seq = 0
        self.applied = 0                  # seq of the last applied Pending (set by `apply`)
        self.overlays: list[Pending] = []  # prepared, maybe not applied yet (oldest first)
        # `apply` runs in another thread than processing: a store that is not safe for that
        # (the memory store of tests and embedded use) is called under a lock; Redis is.
        self._guard: AbstractContextManager[Any] = (
            nullcontext() if self._apply is not None else threading.Lock())
        # The due index kept here (see the module docstring), when the store can list its own.
        self._entries: Callable[[], Iterable[tuple[str, int]]] | None = getattr(
            inner, "due_entries", None)
        self.owns: Callable[[str], bool] = _owns_all   # this worker's customers (the pipeline's)
        self._index: DueIndex | None = None            # None: read it again before the next due

    @property
    def groups(self) -> bool:
        """Whether the staged commits of several batches may wait and be prepared together:
        only with the due index kept here (`due` from Redis flushes a large due set's first
        slice in the middle of a batch, which must then not overtake earlier batches)."""
        return self._entries is not None

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
            with self._guard:
                cache.update(self.inner.load(missing))
            self.loaded += len(missing)
        return {c: cache[c] for c in wanted}

    def forget(self, keep: Callable[[str], bool] | None = None) -> None:
        """Drop cached states (all of them, or those for which `keep` is false)."""
        if keep is None:
            self.cache.clear()
        else:
            self.cache = {c: s for c, s in self.cache.items() if keep(c)}
        self._index = None      # the owned customers changed: read the index again

    def commit(self, commit: Commit) -> None:
        self.staged.append(commit)
        if self._index is not None:
            self._index.update(commit.due)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        if self._entries is not None:
            return self._due_here(until, limit)
        # The Processor asks again after committing a slice of a very large due set: that slice
        # must be visible first (its outputs are then published after its commit: see docs).
        if len(self.staged) > self._call_start:
            self.wait_applied()          # in order: prepared commits go first
            self._flush_from(self._call_start)
        allow = self.allow
        applied = self.applied           # read before Redis: what Redis holds at least
        overlay: dict[str, int] = {}
        for pending in self.overlays:
            if pending.seq > applied:
                overlay.update(pending.due)
        ask = limit
        while True:
            with self._guard:
                found = self.inner.due(until, ask)
            if overlay:
                mine = [c for c in found if c not in overlay and allow(c, until)]
                mine += [c for at, c in sorted((at, c) for c, at in overlay.items()
                                               if 0 <= at <= until) if allow(c, until)]
            else:
                mine = [c for c in found if allow(c, until)]
            if len(found) < ask or len(mine) >= limit:
                return mine[:limit]
            ask *= 4

    def _due_here(self, until: int, limit: int) -> list[str]:
        """`due` from the index kept here: no round trip, staged commits already in it (so a
        very large due set continues with the next slice without flushing the first)."""
        index = self._index
        if index is None:
            index = self._index = self._read_index()
        allow = self.allow
        ask = limit
        while True:
            found = index.query(until, ask)
            mine = [c for c in found if allow(c, until)]
            if len(found) < ask or len(mine) >= limit:
                return mine[:limit]
            ask *= 4

    def _read_index(self) -> DueIndex:
        """The store's due index for the worker's own customers, with the staged commits."""
        assert self._entries is not None
        self.wait_applied()             # Redis then holds every prepared commit
        owns = self.owns
        index = DueIndex()
        with self._guard:
            index.update({c: at for c, at in self._entries() if owns(c)})
        for commit in self.staged:
            index.update(commit.due)
        return index

    def watermark(self) -> int:
        return self.floor

    def close(self) -> None:
        self.inner.close()

    # -- staging -------------------------------------------------------------------------------
    def flush(self) -> int:
        """Apply every staged commit now (after any prepared one); returns how many."""
        self._call_start = 0
        self.wait_applied()
        return self._flush_from(0)

    def _flush_from(self, start: int) -> int:
        staged = self.staged[start:]
        if not staged:
            return 0
        pending = self._pending(staged)
        self.apply(pending)                    # a failure keeps them staged for a retry
        del self.staged[start:]
        return len(staged)

    def prepare(self) -> Pending | None:
        """Encode every staged commit (states may change in place after this); None if none.
        Its customers' due times answer `due` until `apply` has run."""
        self._call_start = 0
        if not self.staged:
            return None
        pending = self._pending(self.staged)
        self.staged = []
        applied = self.applied
        self.overlays = [p for p in self.overlays if p.seq > applied]
        self.overlays.append(pending)
        return pending

    def _pending(self, staged: list[Commit]) -> Pending:
        merged = merge_commits(staged)
        self._seq += 1
        return Pending(self._seq, [self._encode(merged)], dict(merged.due), len(staged),
                       len(merged.states))

    def _encode(self, commit: Commit) -> Any:
        if self._prepare is not None:
            return self._prepare(commit)
        return Commit(states={c: decode_state(encode_state(s)) for c, s in commit.states.items()},
                      due=dict(commit.due), entries=list(commit.entries),
                      watermark=commit.watermark)

    def apply(self, pending: Pending) -> None:
        """Write a prepared batch to the store (the commit point); prepared batches are applied
        in the order they were prepared. Re-applying after a failure is idempotent."""
        for part in pending.parts:
            if part is None:
                continue
            if self._apply is not None:
                self._apply(part)
            else:
                with self._guard:
                    self.inner.commit(part)
            self.calls += 1
            self.states += pending.states
        self.commits += pending.count
        self.applied = max(self.applied, pending.seq)
        pending.done.set()

    def wait_applied(self) -> None:
        """Block until every prepared batch is applied (the runtime applies them meanwhile)."""
        for pending in list(self.overlays):
            pending.done.wait()

    def discard(self) -> None:
        """Drop staged commits and the cached states (a failed attempt may have changed them
        in place): the batch is processed again from the states in the store (the runtime
        first lets any prepared batch be applied)."""
        self.staged.clear()
        self.cache.clear()
        self._index = None
