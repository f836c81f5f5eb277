"""The read protocol over the keys the Redis store writes (layout in store/keys.py).

Read-only: no command here writes. Each read is one pipeline (one round trip) whatever the
number of keys it touches; a connection error is retried once, then reported as StoreError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Self, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import Promise, decode_state
from valeur_monitor.errors import StoreError
from valeur_monitor.read.base import Snapshot, open_promises
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.connect import RedisOptions, parse_url
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.redis import decode_entry, redact

T = TypeVar("T")


def score_view(customer: str, raw: dict[bytes, bytes], reasons: dict[bytes, bytes]
               ) -> ScoreView | None:
    """A ScoreView from the score and reasons hashes (None when the score hash is empty)."""
    if not raw:
        return None
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    dims = {k[len(K.DIM_PREFIX):]: float(v) for k, v in fields.items()
            if k.startswith(K.DIM_PREFIX)}
    return ScoreView(customer=customer, total=float(fields[K.F_TOTAL]), dims=dims,
                     at=int(fields[K.F_AT]), created=float(fields[K.F_CREATED]),
                     destroyed=float(fields[K.F_DESTROYED]),
                     reasons={k.decode(): float(v) for k, v in reasons.items()})


class RedisReader:
    """Reads scores, ledgers, promises and the ranking from Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str = K.DEFAULT_PREFIX,
                 url: str = "redis") -> None:
        self.client = client
        self._cmd: Any = client     # bytes replies; redis-py's reply unions go through Any
        self.keys = Keys(prefix)
        self.url = redact(url)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = K.DEFAULT_PREFIX, timeout: float = 5.0,
                 options: RedisOptions | None = None) -> Self:
        """Connect like the store (same URL rules, credentials, TLS settings, masking)."""
        target = parse_url(url, replace(options or RedisOptions(), timeout=timeout))
        return cls(target.client(), prefix=prefix, url=url)

    def _run(self, fn: Callable[[], T]) -> T:
        for attempt in (1, 2):
            try:
                return fn()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if attempt == 2:
                    raise StoreError(f"Redis unreachable at {self.url}: {exc}") from None
            except RedisError as exc:
                raise StoreError(f"Redis error at {self.url}: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _pipe(self, fill: Callable[[Any], None]) -> list[Any]:
        def go() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            fill(pipe)
            return list(pipe.execute())
        return self._run(go)

    # -- the Reader protocol -----------------------------------------------------------------
    def snapshot(self, customer: str) -> Snapshot | None:
        keys = self.keys

        def fill(pipe: Any) -> None:
            pipe.hgetall(keys.score(customer))
            pipe.hgetall(keys.reasons(customer))
            pipe.lrange(keys.ledger(customer), 0, -1)
            pipe.get(keys.state(customer))

        raw, reasons, ledger, state = self._pipe(fill)
        view = score_view(customer, raw, reasons)
        if view is None:
            return None
        promises = open_promises(list(decode_state(state).promises.values())) if state else []
        return Snapshot(view, [decode_entry(r) for r in ledger], promises)

    def score(self, customer: str) -> ScoreView | None:
        return self.scores([customer]).get(customer)

    def scores(self, customers: Sequence[str]) -> dict[str, ScoreView]:
        keys = self.keys

        def fill(pipe: Any) -> None:
            for c in customers:
                pipe.hgetall(keys.score(c))
                pipe.hgetall(keys.reasons(c))

        rows = self._pipe(fill)
        out = {}
        for i, customer in enumerate(customers):
            view = score_view(customer, rows[2 * i], rows[2 * i + 1])
            if view is not None:
                out[customer] = view
        return out

    def ledger(self, customer: str) -> list[LedgerEntry]:
        return self.ledgers([customer])[customer]

    def ledgers(self, customers: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        keys = self.keys

        def fill(pipe: Any) -> None:
            for c in customers:
                pipe.lrange(keys.ledger(c), 0, -1)

        rows = self._pipe(fill)
        return {c: [decode_entry(r) for r in row] for c, row in zip(customers, rows, strict=True)}

    def last_entries(self, customers: Sequence[str]) -> dict[str, LedgerEntry]:
        keys = self.keys

        def fill(pipe: Any) -> None:
            for c in customers:
                pipe.lindex(keys.ledger(c), -1)

        rows = self._pipe(fill)
        return {c: decode_entry(r) for c, r in zip(customers, rows, strict=True) if r is not None}

    def promises(self, customer: str) -> list[Promise]:
        data = self._run(lambda: self._cmd.get(self.keys.state(customer)))
        if data is None:
            return []
        return open_promises(list(decode_state(data).promises.values()))

    def ranked(self, start: int, count: int, *, worst: bool = True) -> list[tuple[str, float]]:
        if count <= 0 or start < 0:
            return []
        key, cmd, end = self.keys.ranking, self._cmd, start + count - 1
        if worst:
            # ZRANGE orders equal scores by member ascending: the contract's tie order.
            rows = self._run(lambda: cmd.zrange(key, start, end, withscores=True))
            return [(m.decode(), float(s)) for m, s in rows]
        top = self._run(lambda: cmd.zrevrange(key, 0, end, withscores=True))
        if not top:
            return []
        # ZREVRANGE orders ties descending: re-sort complete tie groups, and take the lowest
        # score's group (which may continue past this page) in ascending member order.
        last = float(top[-1][1])
        above = sorted(((m.decode(), float(s)) for m, s in top if float(s) > last),
                       key=lambda cs: (-cs[1], cs[0]))
        need = len(top) - len(above)
        tied = self._run(lambda: cmd.zrangebyscore(key, last, last, start=0, num=need,
                                                   withscores=True))
        return (above + [(m.decode(), float(s)) for m, s in tied])[start:]

    def count(self) -> int:
        return int(self._run(lambda: self._cmd.zcard(self.keys.ranking)))

    def batches(self, size: int = 1000) -> Iterator[list[str]]:
        cursor, key, cmd = 0, self.keys.ranking, self._cmd
        while True:
            cursor, rows = self._run(partial(cmd.zscan, key, cursor, count=size))
            if rows:
                yield [m.decode() for m, _ in rows]
            if cursor == 0:
                return

    def watermark(self) -> int:
        value = self._run(lambda: self._cmd.get(self.keys.watermark))
        return int(value) if value is not None else 0

    def ping(self) -> None:
        self._run(self.client.ping)

    def close(self) -> None:
        self.client.close()
