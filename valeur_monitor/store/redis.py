"""Redis store: engine state, scores, reasons, a capped ledger and the indexes, in Redis.

Design (details and the exactly-once argument in docs/store.md):

* A whole batch is ONE call of ONE Lua script (``redis_commit.COMMIT_LUA``): every changed
  customer's state (with its dedupe marks), score and reasons hashes and new ledger entries,
  then the ranking and due indexes and the watermark. Redis runs a script alone and, thanks
  to the ``#!lua`` shebang, refuses it before it starts when out of memory: a commit is all
  or nothing, in one round trip. Every write in it is idempotent (same state bytes, ledger
  appends guarded by ``seq``, ZADD of the same score, a max), so a call whose reply was lost
  is simply sent again.
* The script first checks the store's epoch (``vm:epoch``: a random id set once, and a commit
  counter): a Redis that restarted without persistence, was flushed or rolled back to an old
  snapshot is detected and refused (StoreDataLost) instead of being written on.
* At startup the store refuses an eviction policy other than ``noeviction`` (an evicted state
  would silently restart a customer from zero) and a Redis older than 7.0.
* Transient failures (connection lost, timeout, loading, failover) are retried with backoff
  for ``retry_for`` seconds (60 by default: a restart); permanent ones (authentication, ACL,
  OOM, script errors, data loss) raise at once (``connect.classify``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

import msgspec
import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState, decode_state
from valeur_monitor.errors import StoreDataLost, StoreError, StorePermanentError
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import Commit, ScoreView
from valeur_monitor.store.connect import RedisOptions, RedisTarget, parse_url, with_retries
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.redis_commit import (
    COMMIT_LUA,
    EPOCH_MISMATCH,
    ROLLED_BACK,
    chunks,
    commit_call,
    decode_entry,
    encode_entry,
)

T = TypeVar("T")
MIN_VERSION = (7, 0)
__all__ = ["RedisStore", "decode_entry", "encode_entry", "redact"]


def redact(url: str) -> str:
    """The URL as shown in messages (no password, no query), or a placeholder if unparsable."""
    try:
        return parse_url(url).display()
    except Exception:
        return "<redis url>"


class RedisStore:
    """The production store (see the module docstring and docs/store.md)."""

    def __init__(self, client: redis.Redis, *, ledger_cap: int = 500,
                 prefix: str = K.DEFAULT_PREFIX, url: str = "redis",
                 options: RedisOptions | None = None) -> None:
        if ledger_cap < 1:
            raise ValueError(f"ledger_cap must be >= 1, got {ledger_cap}")
        self.client = client
        # redis-py annotates replies as unions over decode modes and protocol versions; this
        # store always uses bytes replies (decode_responses=False), so reads go through Any.
        self._cmd: Any = client
        self.keys = Keys(prefix)
        self.ledger_cap = ledger_cap
        self.url = url                      # display form: never the password
        self.options = options or RedisOptions()
        self._commit_script = client.register_script(COMMIT_LUA)
        self._epoch: str | None = None      # id of the data this process reads and writes
        self._commits = 0                   # the epoch's commit counter last seen

    @classmethod
    def from_url(cls, url: str, ledger_cap: int = 500, prefix: str = K.DEFAULT_PREFIX, *,
                 options: RedisOptions | None = None, ping: bool = True) -> Self:
        """Connect to ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).

        With `ping`, checks the server at once (reachable, credentials, version >= 7.0,
        eviction policy ``noeviction``) so a wrong setup is one clear StoreError before any
        work starts.
        """
        target = parse_url(url, options)
        return cls.from_target(target, ledger_cap, prefix, ping=ping)

    @classmethod
    def from_target(cls, target: RedisTarget, ledger_cap: int = 500,
                    prefix: str = K.DEFAULT_PREFIX, *, ping: bool = True) -> Self:
        store = cls(target.client(), ledger_cap=ledger_cap, prefix=prefix,
                    url=target.display(), options=target.options)
        if ping:
            store._run("connect", store._check_server,
                       budget=target.options.startup_retry_for)
        return store

    def _check_server(self) -> None:
        info = self._cmd.info("server")
        version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_VERSION:
            raise StorePermanentError(
                f"Redis at {self.url} is version {info.get('redis_version')}: the store needs "
                f"Redis >= {MIN_VERSION[0]}.{MIN_VERSION[1]} (script flags)", operation="connect")
        policy = self._cmd.info("memory").get("maxmemory_policy", "")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy != "noeviction":
            raise StorePermanentError(
                f"Redis at {self.url} has maxmemory-policy {policy}: it may evict keys and "
                "silently reset customers. Set `maxmemory-policy noeviction` (redis.conf or "
                "CONFIG SET) for the store's Redis", operation="connect")
        self._commit_script.sha = self.client.script_load(COMMIT_LUA)

    # -- retries ------------------------------------------------------------------------------
    def _run(self, operation: str, fn: Callable[[], T], budget: float | None = None) -> T:
        """Call `fn`, retrying transient failures (connection, timeout, loading) with
        exponential backoff for `retry_for` seconds; safe because every operation of this
        store is a read or an idempotent write. NOSCRIPT loads the script and retries."""
        o = self.options

        def repair(exc: RedisError) -> bool:
            if isinstance(exc, NoScriptError):
                self._commit_script.sha = self.client.script_load(COMMIT_LUA)
                return True
            return False

        try:
            return with_retries(fn, where=self.url, operation=operation,
                                budget=o.retry_for if budget is None else budget,
                                backoff=o.backoff, max_backoff=o.max_backoff, on_error=repair)
        except StoreError:
            raise
        except RedisError as exc:  # pragma: no cover - with_retries classifies every RedisError
            raise StorePermanentError(f"Redis error at {self.url}: {exc}",
                                      operation=operation) from None

    # -- protocol -----------------------------------------------------------------------------
    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        wanted = list(dict.fromkeys(customers))
        if not wanted:
            return {}
        state_key = self.keys.state

        def fetch() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for chunk in chunks(wanted):
                pipe.mget([state_key(c) for c in chunk])
            return pipe.execute()

        values: list[bytes | None] = [v for part in self._run("load", fetch) for v in part]
        out: dict[str, CustomerState] = {}
        for customer, data in zip(wanted, values, strict=True):
            out[customer] = decode_state(data) if data is not None else CustomerState(customer)
        return out

    def commit(self, commit: Commit) -> None:
        """Apply the batch with one script call: all of it or, on any error, none of it."""
        prepared = self.prepare(commit)
        if prepared is not None:
            self.apply(prepared)

    def prepare(self, commit: Commit) -> tuple[list[str], list[Any]] | None:
        """Encode a commit for `apply` (None: nothing to write). The commit's states may change
        in place afterwards: a worker processes its next batch while this one is applied."""
        if not commit.states and not commit.due and commit.watermark <= 0:
            return None
        try:
            return commit_call(self.keys, commit, self.ledger_cap)
        except (OverflowError, TypeError, msgspec.EncodeError) as exc:
            # e.g. an integer beyond 64 bits kept in a state: refused before anything is sent.
            raise StorePermanentError(f"cannot encode the batch for Redis ({exc}); nothing "
                                      "was written", operation="commit") from None

    def apply(self, prepared: tuple[list[str], list[Any]]) -> None:
        """Send a prepared commit: one script call (prepared commits go in order)."""
        keys, args = prepared
        self._run("commit", self._ensure_epoch)
        epoch = self._epoch
        assert epoch is not None

        def send() -> int:
            try:
                return int(self._commit_script(keys=keys,
                                               args=[epoch, str(self._commits), *args]))
            except ResponseError as exc:
                text = str(exc)
                if text.startswith((EPOCH_MISMATCH, ROLLED_BACK)):
                    raise StoreDataLost(self._lost(text), operation="commit") from None
                raise

        self._commits = self._run("commit", send)

    def _ensure_epoch(self) -> None:
        """Adopt the store's epoch (creating it in an empty store) before the first commit."""
        if self._epoch is not None:
            return
        self._cmd.hsetnx(self.keys.epoch, "id", uuid.uuid4().hex)
        epoch_id, commits = self._cmd.hmget(self.keys.epoch, "id", "commits")
        self._epoch = epoch_id.decode()
        self._commits = int(commits or 0)

    def _lost(self, reply: str) -> str:
        why = ("was restarted without persistence, flushed or failed over to an empty replica"
               if reply.startswith(EPOCH_MISMATCH) else
               "was rolled back to an older snapshot")
        return (f"Redis at {self.url} lost data this process wrote: it {why} ({reply}). "
                "Nothing more was written. Restore the data, or start over into an empty "
                "store (a re-run of the whole input rebuilds it)")

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        rows = self._run("due", lambda: self._cmd.zrangebyscore(self.keys.due, "-inf", until,
                                                                start=0, num=limit))
        return [c.decode() for c in rows]

    def watermark(self) -> int:
        value = self._run("watermark", lambda: self._cmd.get(self.keys.watermark))
        return int(value) if value is not None else 0

    def score(self, customer: str) -> ScoreView | None:
        def fetch() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.score(customer))
            pipe.hgetall(self.keys.reasons(customer))
            return pipe.execute()

        raw, reasons = self._run("read", fetch)
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        dims = {k[len(K.DIM_PREFIX):]: float(v) for k, v in fields.items()
                if k.startswith(K.DIM_PREFIX)}
        return ScoreView(customer=customer, total=float(fields[K.F_TOTAL]), dims=dims,
                         at=int(fields[K.F_AT]), created=float(fields[K.F_CREATED]),
                         destroyed=float(fields[K.F_DESTROYED]),
                         reasons={k.decode(): float(v) for k, v in reasons.items()})

    def ranking(self, n: int, *, worst: bool = True) -> list[tuple[str, float]]:
        """Lowest (or highest) n totals; equal totals always in ascending customer id."""
        if n <= 0:
            return []
        key = self.keys.ranking
        client = self._cmd
        if worst:
            # ZRANGE orders equal scores by member, ascending: exactly the contract.
            rows = self._run("read", lambda: client.zrange(key, 0, n - 1, withscores=True))
            return [(m.decode(), float(s)) for m, s in rows]
        top = self._run("read", lambda: client.zrevrange(key, 0, n - 1, withscores=True))
        if not top:
            return []
        # ZREVRANGE orders equal scores by member descending. Ties above the lowest score in
        # the page are complete: sort them. The lowest score's tie may go on past the page:
        # fetch its first members in ascending order (only as many as needed).
        last = float(top[-1][1])
        above = sorted(((m.decode(), float(s)) for m, s in top if float(s) > last),
                       key=lambda cs: (-cs[1], cs[0]))
        need = len(top) - len(above)
        tied = self._run("read", lambda: client.zrangebyscore(key, last, last, start=0, num=need,
                                                      withscores=True))
        return above + [(m.decode(), float(s)) for m, s in tied]

    def ledger(self, customer: str, limit: int | None = None) -> list[LedgerEntry]:
        start = -limit if limit else 0
        key = self.keys.ledger(customer)
        rows = self._run("read", lambda: self._cmd.lrange(key, start, -1))
        return [decode_entry(r) for r in rows]

    def customers(self) -> list[str]:
        rows = self._run("read", lambda: self._cmd.zrange(self.keys.ranking, 0, -1))
        return sorted(m.decode() for m in rows)

    def due_promises(self, until: int) -> list[tuple[str, str, str, int]]:
        """Open promises due by `until`, found through the due index.

        An open, running promise with deadline d gives its customer a next due time <= d (the
        warning, if any, comes before the deadline), so every such customer is in the due
        index at or before `until`; their states are then filtered exactly as in memory.
        """
        rows = self._run("due", lambda: self._cmd.zrangebyscore(self.keys.due, "-inf", until))
        candidates = [c.decode() for c in rows]
        out = []
        for chunk in chunks(candidates):
            for customer, state in self.load(chunk).items():
                for promise in state.promises.values():
                    if (promise.broken_at < 0 and promise.paused_at < 0
                            and promise.deadline <= until):
                        out.append((customer, promise.rule, promise.ref, promise.deadline))
        return sorted(out)

    def close(self) -> None:
        self.client.close()

    # -- operations helpers -------------------------------------------------------------------
    def customer_keys(self, customer: str) -> tuple[str, str, str, str]:
        """The four keys of a customer (for MEMORY USAGE, DUMP, debugging)."""
        return self.keys.customer(customer).all()
