"""Counts over every customer of a store, read at scrape time: score bands and open promises.

Workers each own a part of the customers, so a count kept in one worker's memory is wrong as soon
as there are two of them (or after a rebalance). These counts are read from the shared store:

* score bands: four ZCOUNTs over the ranking ZSET (customer -> score total), O(log n) each;
* open promises: one ZSET per rule, ``<prefix>open:<rule>`` (customer -> how many promises of
  that rule it has open), plus the SET ``<prefix>open-rules`` naming those ZSETs. They are
  derived from the states and written by the Redis commit script with the other derived
  global indexes (store/redis_commit.py): ZADD/ZREM of exact values, so re-sending a commit is
  harmless. The sum per rule is read with one ZCOUNT per small count (most customers have one
  or two promises of a rule) and the few larger ones listed, so a read is O(rules · log n).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from valeur_monitor.engine.state import CustomerState
from valeur_monitor.metrics import BANDS, band_of
from valeur_monitor.store.keys import Keys

SMALL_COUNTS = 8     # counts 1..8 are ZCOUNTed; customers above are listed with their count
CHUNK = 1000


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
        rules = sorted(r.decode() for r in self.client.smembers(self.keys.open_rules))
        if not rules:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for rule in rules:
            key = self.keys.open_promises(rule)
            for k in range(1, SMALL_COUNTS + 1):
                pipe.zcount(key, k, k)
            pipe.zrangebyscore(key, f"({SMALL_COUNTS}", "+inf", withscores=True)
        replies = pipe.execute()
        out: dict[str, int] = {}
        step = SMALL_COUNTS + 1
        for i, rule in enumerate(rules):
            part = replies[i * step:(i + 1) * step]
            total = sum(k * int(n) for k, n in enumerate(part[:SMALL_COUNTS], start=1))
            total += sum(int(score) for _, score in part[SMALL_COUNTS])
            out[rule] = total
        return out


def census_for(store: Any) -> Census:
    """The census of a store (a worker's scoped view: of the store under it)."""
    inner = getattr(store, "inner", store)
    from valeur_monitor.store.redis import RedisStore

    if isinstance(inner, RedisStore):
        return RedisCensus(inner.client, inner.keys)
    return StatesCensus(inner)
