"""Account roll-up: which account each customer belongs to, and an account's score at `as_of`.

The account of a customer comes from the identity mapping (the `account` column of the
identity CSV, loaded with `valeur-monitor accounts load`) or from the optional `data.account`
field of its events (recorded by the embedded runner's account hook). Redis keeps the mapping
beside the store's keys::

    vm:accounts             HASH  customer -> account
    vm:account:<account>    SET   customers of the account

An account's score is the SUM of its customers' scores at `as_of` (value adds up); its band is
the band of the MEAN customer score, so the band thresholds keep their per-customer meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from valeur_monitor.metrics import DEFAULT_BAND_EDGES, band_of
from valeur_monitor.read.views import Edges
from valeur_monitor.service import BatchResult


class AccountBook(Protocol):
    def accounts(self, customers: Sequence[str]) -> dict[str, str]:
        """customer -> account for the customers that have one."""
        ...

    def members(self, account: str, limit: int = 10_000) -> list[str]:
        """Customers of an account, sorted (at most `limit`)."""
        ...

    def add(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Record (customer, account) pairs; a customer moves to its latest account."""
        ...


class MemoryAccounts:
    def __init__(self) -> None:
        self.of: dict[str, str] = {}
        self.groups: dict[str, set[str]] = {}

    def accounts(self, customers: Sequence[str]) -> dict[str, str]:
        return {c: a for c in customers if (a := self.of.get(c)) is not None}

    def members(self, account: str, limit: int = 10_000) -> list[str]:
        return sorted(self.groups.get(account, ()))[:limit]

    def add(self, pairs: Iterable[tuple[str, str]]) -> int:
        n = 0
        for customer, account in pairs:
            old = self.of.get(customer)
            if old == account:
                continue
            if old is not None:
                self.groups[old].discard(customer)
            self.of[customer] = account
            self.groups.setdefault(account, set()).add(customer)
            n += 1
        return n


class RedisAccounts:
    def __init__(self, client: Any, prefix: str = "vm:") -> None:
        self.client = client
        self.hash = f"{prefix}accounts"
        self.set_prefix = f"{prefix}account:"

    def accounts(self, customers: Sequence[str]) -> dict[str, str]:
        if not customers:
            return {}
        values = self.client.hmget(self.hash, list(customers))
        return {c: v.decode() for c, v in zip(customers, values, strict=True) if v is not None}

    def members(self, account: str, limit: int = 10_000) -> list[str]:
        return sorted(m.decode() for m in self.client.smembers(self.set_prefix + account))[:limit]

    def add(self, pairs: Iterable[tuple[str, str]]) -> int:
        wanted = dict(pairs)
        if not wanted:
            return 0
        names = list(wanted)
        current = self.accounts(names)
        pipe = self.client.pipeline(transaction=False)
        moved = 0
        for customer, account in wanted.items():
            old = current.get(customer)
            if old == account:
                continue
            if old is not None:
                pipe.srem(self.set_prefix + old, customer)
            pipe.hset(self.hash, customer, account)
            pipe.sadd(self.set_prefix + account, customer)
            moved += 1
        pipe.execute()
        return moved


def account_hook(book: AccountBook) -> Any:
    """A batch hook recording `data.account` of the events an embedded run applies."""

    def hook(result: BatchResult, seconds: float) -> None:
        pairs = [(e.customer, a) for e in result.events
                 if isinstance(a := e.data.get("account"), str) and a]
        if pairs:
            book.add(pairs)

    return hook


@dataclass(frozen=True)
class AccountView:
    account: str
    customers: int
    score: float                 # sum of the customers' scores at as_of
    mean: float
    band: str                    # band of the mean customer score
    worst: str | None
    worst_score: float | None


def rollup(account: str, scores: dict[str, float], edges: Edges = DEFAULT_BAND_EDGES
           ) -> AccountView:
    """An account from its customers' scores at one as_of (customers without a score: 0)."""
    total = sum(scores.values())
    mean = total / len(scores) if scores else 0.0
    worst = min(scores.items(), key=lambda kv: (kv[1], kv[0])) if scores else None
    return AccountView(account, len(scores), total, mean, band_of(mean, edges),
                       worst[0] if worst else None, worst[1] if worst else None)
