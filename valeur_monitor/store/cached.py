"""A write-through cache of states over another store, for one process that owns its customers.

`run --store redis://` is the only writer of its store while it runs (like a worker of its
partitions: `streaming/scope.py` keeps its own cache the same way), so a state it loaded or
committed is exactly what Redis holds: loading it again from Redis, and decoding it, is waste.
Every commit still goes to the inner store (the commit point: exactly-once and the data-loss
checks are the inner store's). A commit that fails leaves states the engine changed in place
that Redis does not hold: the cache is dropped and the error raised.

With `pipelined` (an inner store with `prepare`/`apply`, i.e. Redis), being the only writer is
used further: the due index and the watermark are kept here too (the due index read from the
store once), so nothing waits for Redis between batches. Commits of up to `group` batches are
merged — 1, 2, 4... batches at the start of a run, so a short run or one that fails early still
commits batch by batch — and a customer touched by several of them is encoded once, in its
latest state. They are encoded in the caller's thread (compressed by the sending thread:
`redis_commit.Prepared`) and sent by one background thread while the next batches run; at most
one is in flight and they reach Redis in order, each all-or-nothing. `flush` (readers call it
through `reader_of`) and `close` send and wait for everything, in script calls of `part`
customers each encoded while the one before is applied (the end of a run waits for them; each
customer's state, window, due time and counts go in one call, and the watermark in the last).
A failure is raised by the next commit or flush. Redis may lag the run by a few batches whose
outputs were already written: a crash is repaired, as before, by running the input again (dedupe
marks skip what Redis has).

Being the only writer also means that a customer this process has not committed is in Redis
only if it was there at the start: the store's customers (its ranking ZSET) are read once, like
the due index, and a customer not among them starts empty without a round trip (each such
round trip waited behind the commit script running on the server). After a failed commit they
are read again. Those customers are known to have no key: their first value is sent whole
(`Known.absent`), not merged from nothing by the script.

Nothing in Redis stops another process from writing meanwhile, so the run checks that it did
not: the epoch's commit counter is read just before the customers, and each
commit may move it only by this process's own script calls (`RedisStore.attempts`; a retried
commit can count twice). A larger move means another writer committed in between, whose
changes the cached states may have overwritten: `StoreWriterConflict`, the run stops.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.errors import StoreWriterConflict
from valeur_monitor.store.base import Commit, Store
from valeur_monitor.store.memory import DueIndex

GROUP = 16              # batches merged into one Redis commit (see docs/benchmarks.md)
GROUP_STATES = 20_000   # ...or fewer when that many customers are waiting
KNOWN_MAX = 1_000_000   # customers read at the start at most (beyond, each load asks Redis)
FLUSH_PART = 1_000      # customers per script call of a flush (docs/benchmarks.md)


class CachedStore:
    """Store protocol over `inner`, keeping every loaded or committed state in memory."""

    def __init__(self, inner: Store, *, pipelined: bool = False, group: int = GROUP,
                 part: int = FLUSH_PART) -> None:
        self.inner = inner
        self.cache: dict[str, CustomerState] = {}
        self.loaded = 0            # states read from the inner store (cache misses)
        self.group = group
        self.part = part           # customers per script call of a flush
        # pipelining needs the Redis store's split commit and its due index (read once)
        self._prepare = (getattr(inner, "prepare", None)
                         if pipelined and hasattr(inner, "client") else None)
        self._apply: Any = getattr(inner, "apply", None)
        self._pool: ThreadPoolExecutor | None = None
        self._packer: ThreadPoolExecutor | None = None    # compresses the parts of a flush
        self._pending: Future[None] | None = None
        self._merged: Commit | None = None
        self._batches = 0
        self._next_group = 1       # grows to `group`: 1, 2, 4, ... batches per Redis commit
        self._due: DueIndex | None = None
        self._watermark: int | None = None
        self._known: set[str] | None = None    # customers in Redis at the start (pipelined)
        self._known_read = False
        self._baseline: int | None = None   # the epoch's commit counter read with `_known`
        self._own = 0              # commit script calls of this process since then
        self._absent: set[str] = set()   # started empty (not in `_known`), not committed yet

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        cache = self.cache
        wanted = list(customers)
        missing = [c for c in wanted if c not in cache]
        if missing and self._prepare is not None:
            known = self._known_customers()
            if known is not None:
                absent = self._absent
                for c in missing:
                    if c not in known:
                        cache[c] = CustomerState(c)
                        absent.add(c)
                missing = [c for c in missing if c in known]
        if missing:   # never committed by this process: what the inner store has is current
            cache.update(self.inner.load(missing))
            self.loaded += len(missing)
        return {c: cache[c] for c in wanted}

    def _known_customers(self) -> set[str] | None:
        """The customers the store held when read (None: too many to keep, ask each time)."""
        if not self._known_read:
            self._wait()
            inner: Any = self.inner
            client, keys = inner.client, inner.keys

            def read() -> tuple[int, set[str] | None]:
                # The counter first, the members after it (one connection, in order; no MULTI:
                # the documented ACL grants no @transaction): a commit by another writer after
                # the counter was read is counted at the run's next commit, one before it is
                # among the members.
                pipe = client.pipeline(transaction=False)
                pipe.hget(keys.epoch, "commits")
                pipe.zcard(keys.ranking)
                commits, count = pipe.execute()
                if int(count) > KNOWN_MAX:
                    return int(commits or 0), None
                return int(commits or 0), {m.decode() for m in client.zrange(keys.ranking, 0, -1)}

            # retried like every read of the store (a restart, a reset connection)
            self._baseline, self._known = inner._run("load", read)
            self._own = 0
            self._known_read = True
        return self._known

    def commit(self, commit: Commit) -> None:
        if self._prepare is None:
            try:
                self.inner.commit(commit)
            except BaseException:
                self.cache.clear()
                raise
            self.cache.update(commit.states)
            self._watermark = None
            return
        self._local_due().update(commit.due)
        self._watermark = max(self.watermark(), commit.watermark)
        self.cache.update(commit.states)
        merged = self._merged
        if merged is None:
            merged = self._merged = Commit(watermark=commit.watermark)
        merged.states.update(commit.states)
        merged.due.update(commit.due)
        merged.entries.extend(commit.entries)
        merged.watermark = max(merged.watermark, commit.watermark)
        self._batches += 1
        if self._batches >= self._next_group or len(merged.states) >= GROUP_STATES:
            self._next_group = min(self.group, 2 * self._next_group)
            self._send()

    def _send(self, part: int = 0) -> None:
        """Encode the merged commits now and send them in the background (after the last).

        With `part`, in script calls of at most that many customers, each encoded while the
        one before is compressed and applied (`flush`: nothing else would overlap the last
        group's encoding, compression and script). Only the last call moves the watermark;
        each customer's state, window, due time and counts still go in one call."""
        merged, self._merged, self._batches = self._merged, None, 0
        if merged is None:
            self._wait()
            return
        pieces = split(merged, part) if part > 0 else [merged]
        for i, piece in enumerate(pieces):
            try:
                assert self._prepare is not None
                prepared = self._prepare(piece, watermark=i == len(pieces) - 1)
            except BaseException:
                self._wait()
                self._drop()
                raise
            if i == 0:
                self._wait()      # encoded while the previous commit was on its way
            if prepared is None:  # nothing to write (an empty input, only refused lines)
                continue
            fresh = self._absent.intersection(piece.states)
            self._absent -= fresh
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="store-commit")
            if len(pieces) == 1:
                self._pending = self._pool.submit(self._apply_alone, prepared, fresh)
                continue
            # Parts of one flush hold distinct customers: one thread compresses and frames a
            # part (`Prepared.call`) while the commit thread sends the one before and Redis
            # runs its script; each part is sent only if the ones before were applied.
            if self._packer is None:
                self._packer = ThreadPoolExecutor(1, thread_name_prefix="store-pack")
            packed = self._packer.submit(self._pack, prepared, fresh)
            self._pending = self._pool.submit(self._apply_packed, packed, prepared,
                                              self._pending)

    def _pack(self, prepared: Any, fresh: set[str]) -> None:
        if fresh:
            self.inner.known.absent(fresh)   # type: ignore[attr-defined]
        prepared.call()

    def _apply_packed(self, packed: Future[None], prepared: Any,
                      before: Future[None] | None) -> None:
        # what stopped an earlier part stops this one, once packed (then nothing is packing)
        error = before.exception() if before is not None else None
        packed.result()
        if error is not None:
            raise error
        self._apply_alone(prepared, set())

    def _apply_alone(self, prepared: Any, fresh: set[str]) -> None:
        """Send a prepared commit (in the commit thread), then check nobody else committed.
        `fresh`: its customers that were not in Redis when the run read the store: their
        values are sent whole, as known to be absent (`Known.absent`; checked by the script)."""
        if fresh:
            self.inner.known.absent(fresh)   # type: ignore[attr-defined]
        self._apply(prepared)
        if self._baseline is None:      # no snapshot taken yet: nothing cached from Redis
            return
        inner: Any = self.inner
        self._own += inner.attempts
        foreign = inner.commits - self._baseline - self._own
        if foreign > 0:
            raise StoreWriterConflict(
                f"another process committed to Redis at {inner.url} (prefix "
                f"{inner.keys.prefix!r}) while this run was its only writer ({foreign} "
                "commit(s) not this run's): the states this run kept in memory may have "
                "replaced that writer's changes. Stop the workers (or give the run its own "
                "database or key prefix) and run the input again", operation="commit")

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except BaseException:
                self._drop()
                raise

    def _drop(self) -> None:
        """After a failed commit: forget what Redis may not hold; the next calls read it."""
        self.cache.clear()
        self._merged, self._batches = None, 0
        self._due, self._watermark = None, None
        self._known, self._known_read = None, False   # read again: Redis holds what it holds
        self._baseline, self._own = None, 0
        self._absent.clear()
        # parts of a flush packed after the one that failed were never sent (every part was
        # packed before the last part's send returned): what they taught is wrong
        known = getattr(self.inner, "known", None)
        if known is not None:
            known.clear()

    def flush(self) -> None:
        """Send every merged commit and wait until Redis has applied them."""
        if self._prepare is not None:
            self._send(self.part)
            self._wait()

    def _local_due(self) -> DueIndex:
        if self._due is None:
            self._wait()
            index = DueIndex()
            inner: Any = self.inner
            rows = inner._run("due", lambda: inner.client.zrange(inner.keys.due, 0, -1,
                                                                 withscores=True))
            index.update({m.decode(): int(s) for m, s in rows})
            self._due = index
        return self._due

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        if self._prepare is None:
            return self.inner.due(until, limit)
        return self._local_due().query(until, limit)

    def watermark(self) -> int:
        if self._watermark is None:
            self._wait()
            self._watermark = self.inner.watermark()
        return self._watermark

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for pool in (self._pool, self._packer):
                if pool is not None:
                    pool.shutdown(wait=True)
            self.cache.clear()
            self.inner.close()


def split(commit: Commit, size: int) -> list[Commit]:
    """`commit` as script calls of at most `size` customers, in order: each customer's state,
    entries and due time together; due times of customers without a state go last."""
    customers = list(commit.states)
    if len(customers) <= size:
        return [commit]
    pieces: list[Commit] = []
    where: dict[str, Commit] = {}
    for i in range(0, len(customers), size):
        piece = Commit(watermark=commit.watermark)
        for c in customers[i:i + size]:
            piece.states[c] = commit.states[c]
            where[c] = piece
        pieces.append(piece)
    for entry in commit.entries:
        where.get(entry.customer, pieces[-1]).entries.append(entry)
    for c, at in commit.due.items():
        where.get(c, pieces[-1]).due[c] = at
    return pieces
