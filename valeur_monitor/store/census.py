"""Counts over every customer of a store, read at scrape time: score bands and open promises.

Workers each own a part of the customers, so a count kept in one worker's memory is wrong as soon
as there are two of them (or after a rebalance). These counts are read from the shared store:

* score bands: four ZCOUNTs over the ranking ZSET (customer -> score total), O(log n) each;
* open promises: one HASH, ``<prefix>open-promises`` (rule -> open promises over every
  customer), read with one HGETALL. Each customer's value carries its own counts per rule
  (store/record.py); when the commit script rewrites a value whose counts changed, it adds the
  difference to the totals in the same step, so a re-sent commit (counts already stored) adds
  nothing and a script stopped midway leaves every written value counted exactly once. (Layout
  1 kept one ZSET per rule with a member per customer: ≈ 100 B per customer and rule.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.metrics import BANDS, band_of
from valeur_monitor.store.keys import Keys


def open_rules(state: CustomerState) -> list[str]:
    """The rule of every open promise of a customer (broken ones are not open any more)."""
    return [p.rule for p in state.promises.values() if p.is_open()]


class Census(Protocol):
    """Counts over every customer of a store."""

    def bands(self, edges: tuple[float, float, float]) -> dict[str, int]:
        """Customers per score band (every band present, 0 when empty)."""
        ...

    def open_promises(self) -> dict[str, int]:
        """Open promises per rule (rules with none may be absent)."""
        ...


class StatesCensus:
    """Census of a store that can list and load every state (memory store, tests)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _states(self) -> Iterable[CustomerState]:
        return self.store.load(self.store.customers()).values()  # type: ignore[no-any-return]

    def bands(self, edges: tuple[float, float, float]) -> dict[str, int]:
        counts = dict.fromkeys(BANDS, 0)
        for state in self._states():
            total = state.score.total
            if total == total:
                counts[band_of(total, edges)] += 1
        return counts

    def open_promises(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for state in self._states():
            counts.update(open_rules(state))
        return dict(counts)


def _num(value: float) -> str:
    return repr(float(value))


class RedisCensus:
    """Census of the Redis store (see the module docstring)."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def bands(self, edges: tuple[float, float, float]) -> dict[str, int]:
        low, mid, high = edges
        key = self.keys.ranking
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(key, "-inf", f"({_num(low)}")
        pipe.zcount(key, _num(low), f"({_num(mid)}")
        pipe.zcount(key, _num(mid), _num(high))
        pipe.zcount(key, f"({_num(high)}", "+inf")
        return {band: int(n) for band, n in zip(BANDS, pipe.execute(), strict=True)}

    def open_promises(self) -> dict[str, int]:
        totals = self.client.hgetall(self.keys.open_totals)
        return {r.decode(): int(n) for r, n in sorted(totals.items()) if int(n) > 0}


def census_for(store: Any) -> Census:
    """The census of a store (a worker's scoped view: of the store under it)."""
    inner = getattr(store, "inner", store)
    from valeur_monitor.store.redis import RedisStore

    if isinstance(inner, RedisStore):
        return RedisCensus(inner.client, inner.keys)
    return StatesCensus(inner)
