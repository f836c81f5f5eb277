"""Future events in hourly buckets, released in time order, with bounded disorder and a hard end."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from heapq import heapify, heappop, heappush
from itertools import count
from math import floor
from operator import itemgetter
from random import Random
from typing import Any

BUCKET_MS = 3_600_000
BUCKET_S = BUCKET_MS // 1000

# What the events of one obligation share: (customer, ref, source, channel, team, and those
# five as the middle of a canonical JSON line, built once for all its events).
Context = tuple[str, str, str, str, str, str]
# (release, sequence number, event time, type, context); release and event time in seconds since
# the origin (small ints are much cheaper than epoch milliseconds to compare, divide and sort).
# The event's data is in a side list at index `sequence number - 1`. Tuples of atoms only,
# which the garbage collector stops tracking: a tuple holding the data dict itself would be
# traversed by every collection, and a million of them would make the collector the main cost.
Entry = tuple[int, int, int, str, Context]
Batch = tuple[list[Entry], list[dict[str, Any] | None]]
Push = Callable[[int, str, Context, dict[str, Any]], None]


def context(customer: str, ref: str, source: str, channel: str, team: str) -> Context:
    """The shared part of an obligation's events (values must need no JSON escaping)."""
    return (customer, ref, source, channel, team,
            f'","customer":"{customer}","ref":"{ref}","source":"{source}",'
            f'"channel":"{channel}","team":"{team}"')


class Scheduler:
    """Events are pushed in any order (never before the action being run) and come out sorted.

    Every event lands in the bucket of its release time; a bucket is sorted and emitted once
    no pending action can add to it any more. Sorting is stable and pushes are numbered, so
    ties keep push order and the stream is deterministic. A delayed event (`disorder`) keeps
    its event time but is released up to `window_ms` later: no event is ever emitted more
    than `window_ms` behind one emitted before it.
    """

    def __init__(self, start_ms: int, end_ms: int, disorder: float, window_ms: int,
                 seed: int, origin_ms: int) -> None:
        if origin_ms % 60_000 or start_ms < 0:
            raise ValueError("the origin must be a whole minute, at or before the start")
        self.start_ms = start_ms   # ms since origin_ms, like every instant pushed
        self.end_ms = end_ms
        self.base_ms = origin_ms   # epoch ms of the origin, for consumers formatting times
        self.disorder = disorder
        self.window_ms = window_ms
        self._rng = Random(seed)  # separate stream: disorder never changes the events themselves
        size = (end_ms + window_ms) // BUCKET_MS + 2
        self._buckets: list[list[Entry]] = [[] for _ in range(size)]
        self._data: list[dict[str, Any] | None] = []   # by sequence number - 1; None once out
        self._seq = count(1)   # numbers the deferred actions
        self._actions: list[tuple[int, int, Any]] = []   # (time, seq, action) heap
        self.push: Push = self._make_push()

    def _make_push(self) -> Push:
        """The hot path, as a closure over locals (a method would look everything up)."""
        end, window, bucket_s = self.end_ms, self.window_ms // 1000, BUCKET_S
        buckets, datas = self._buckets, self._data
        keep = datas.append
        disorder, rnd = self.disorder, self._rng.random

        def push(t: int, etype: str, ctx: Context, data: dict[str, Any]) -> None:
            """Queue an event at `t` (ms, truncated to the second); dropped past the end."""
            if t < end:
                second = t // 1000
                keep(data)
                buckets[second // bucket_s].append((second, len(datas), second, etype, ctx))

        def push_late(t: int, etype: str, ctx: Context, data: dict[str, Any]) -> None:
            """As `push`, but a share `disorder` of events is released up to `window` late."""
            if t < end:
                second = t // 1000
                release = second + 1 + floor(rnd() * window) if rnd() < disorder else second
                keep(data)
                buckets[release // bucket_s].append((release, len(datas), second, etype, ctx))

        if disorder:
            return push_late
        return push

    def defer(self, t: int, action: Any) -> None:
        """Queue an action (e.g. opening a request) to run when the stream reaches `t`."""
        if self.start_ms <= t < self.end_ms:
            heappush(self._actions, (t - t % 1000, next(self._seq), action))

    def defer_many(self, items: Iterable[tuple[int, Any]]) -> None:
        """Queue many actions at once (as `defer`, in bulk)."""
        seq = self._seq
        start, end = self.start_ms, self.end_ms
        self._actions.extend((t - t % 1000, next(seq), action) for t, action in items
                             if start <= t < end)
        heapify(self._actions)

    def run(self, perform: Callable[[int, Any], None]) -> Iterator[Batch]:
        """Run the actions in time order; yield each hour's events, sorted, once it is final.

        A batch is (entries, data): an entry's data is `data[seq - 1]`, which the consumer
        sets to None once used (so memory holds only the events still queued).
        """
        actions = self._actions
        ready = 0
        while actions:
            t, _, action = heappop(actions)
            current = t // BUCKET_MS
            while ready < current:   # nothing pending can land before the current action
                yield self._take(ready)
                ready += 1
            perform(t, action)
        for index in range(ready, len(self._buckets)):
            yield self._take(index)

    def _take(self, index: int) -> Batch:
        bucket = self._buckets[index]
        self._buckets[index] = []
        bucket.sort(key=itemgetter(0))
        return bucket, self._data
