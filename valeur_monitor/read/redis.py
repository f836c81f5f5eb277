"""The read protocol over the keys the Redis store writes (layout in store/keys.py).

Read-only: no command here writes. Each read is one pipeline (one round trip) whatever the
number of keys it touches; a connection error is retried once, then reported as StoreError.
A customer is one value (store/record.py): a read fetches it whole and decodes only the part
asked for (score row, window or state). A store in another key layout is one clear StoreError.
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
from valeur_monitor.engine.state import Promise
from valeur_monitor.errors import StoreError
from valeur_monitor.read.base import Snapshot, open_promises
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.connect import RedisOptions, parse_url
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.record import Value
from valeur_monitor.store.redis import redact

T = TypeVar("T")


class RedisReader:
    """Reads scores, ledgers, promises and the ranking from Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str = K.DEFAULT_PREFIX,
                 url: str = "redis") -> None:
        self.client = client
        self._cmd: Any = client     # bytes replies; redis-py's reply unions go through Any
        self.keys = Keys(prefix)
        self.url = redact(url)
        self._layout_ok = False

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

    def _values(self, customers: Sequence[str]) -> list[Value | None]:
        """The customers' stored values (None: unknown), one round trip."""
        if not customers:
            return []
        key = self.keys.value
        self._check_layout()
        rows = self._run(lambda: self._cmd.mget([key(c) for c in customers]))
        out: list[Value | None] = []
        for customer, data in zip(customers, rows, strict=True):
            if data is None:
                out.append(None)
                continue
            try:
                out.append(Value(customer, data))
            except ValueError:
                raise StoreError(self._layout_error("a value that is not layout 2")) from None
        return out

    def _check_layout(self) -> None:
        """Refuse (once per reader) a store written in another key layout."""
        if self._layout_ok:
            return
        layout = self._run(lambda: self._cmd.hget(self.keys.epoch, "layout"))
        if layout is None:
            legacy = self._run(lambda: self._cmd.scan(0, match=self.keys.legacy_pattern(),
                                                      count=1000))[1]
            if legacy:
                raise StoreError(self._layout_error("layout 1 (four keys per customer)"))
        elif int(layout) != K.LAYOUT:
            raise StoreError(self._layout_error(f"layout {int(layout)}"))
        self._layout_ok = True

    def _layout_error(self, found: str) -> str:
        return (f"Redis at {self.url} (prefix {self.keys.prefix!r}) holds {found}; this "
                f"version reads key layout {K.LAYOUT} (one key per customer): run "
                "`valeur-monitor store migrate`")

    # -- the Reader protocol -----------------------------------------------------------------
    def snapshot(self, customer: str) -> Snapshot | None:
        value = self._values([customer])[0]
        if value is None:
            return None
        promises = open_promises(list(value.state().promises.values()))
        return Snapshot(value.score(), value.ledger(), promises)

    def score(self, customer: str) -> ScoreView | None:
        return self.scores([customer]).get(customer)

    def scores(self, customers: Sequence[str]) -> dict[str, ScoreView]:
        return {c: v.score() for c, v in zip(customers, self._values(customers), strict=True)
                if v is not None}

    def ledger(self, customer: str) -> list[LedgerEntry]:
        return self.ledgers([customer])[customer]

    def ledgers(self, customers: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        return {c: v.ledger() if v is not None else []
                for c, v in zip(customers, self._values(customers), strict=True)}

    def last_entries(self, customers: Sequence[str]) -> dict[str, LedgerEntry]:
        out = {}
        for customer, value in zip(customers, self._values(customers), strict=True):
            last = value.last_entry() if value is not None else None
            if last is not None:
                out[customer] = last
        return out

    def promises(self, customer: str) -> list[Promise]:
        value = self._values([customer])[0]
        if value is None:
            return []
        return open_promises(list(value.state().promises.values()))

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
