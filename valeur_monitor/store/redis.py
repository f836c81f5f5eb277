"""Redis store: one value per customer (score row, state, recent ledger window) and indexes.

Design (details and the exactly-once argument in docs/store.md):

* A whole batch is ONE call of ONE Lua script (``redis_commit.COMMIT_LUA``): every changed
  customer's value (score row, state with its dedupe marks, new ledger entries appended to a
  window bounded by count and age: ``store/record.py``), then the ranking and due indexes and
  the watermark. Redis runs a script alone and, thanks
  to the ``#!lua`` shebang, refuses it before it starts when out of memory: a commit is all
  or nothing, in one round trip. Every write in it is idempotent (same state bytes, ledger
  appends guarded by ``seq``, ZADD of the same score, a max), so a call whose reply was lost
  is simply sent again.
* The script first checks the store's epoch (``vm:epoch``: a random id set once, a commit
  counter and the key layout): a store written in another key layout is refused, and a Redis
  that restarted without persistence, was flushed or rolled back to an old snapshot is
  detected and refused (StoreDataLost) instead of being written on.
* At startup the store refuses an eviction policy other than ``noeviction`` (an evicted state
  would silently restart a customer from zero) and a Redis older than 7.0.
* Transient failures (connection lost, timeout, loading, failover) are retried with backoff
  for ``retry_for`` seconds (60 by default: a restart); permanent ones (authentication, ACL,
  OOM, script errors, data loss) raise at once (``connect.classify``).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

import msgspec
import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.errors import StoreDataLost, StoreError, StorePermanentError
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import Commit, ScoreView
from valeur_monitor.store.connect import RedisOptions, RedisTarget, parse_url, with_retries
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.known import Known
from valeur_monitor.store.record import Value
from valeur_monitor.store.redis_commit import (
    COMMIT_LUA,
    EPOCH_MISMATCH,
    ROLLED_BACK,
    WRONG_LAYOUT,
    Prepared,
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
                 ledger_max_age: int | None = None, prefix: str = K.DEFAULT_PREFIX,
                 url: str = "redis", options: RedisOptions | None = None,
                 compress: bool = True) -> None:
        if ledger_cap < 1:
            raise ValueError(f"ledger_cap must be >= 1, got {ledger_cap}")
        if ledger_max_age is not None and ledger_max_age <= 0:
            raise ValueError(f"ledger_max_age must be > 0 ms, got {ledger_max_age}")
        self.client = client
        # redis-py annotates replies as unions over decode modes and protocol versions; this
        # store always uses bytes replies (decode_responses=False), so reads go through Any.
        self._cmd: Any = client
        self.keys = Keys(prefix)
        self.ledger_cap = ledger_cap
        self.ledger_max_age = ledger_max_age     # ms behind stream time; None: count only
        self.compress = compress                 # zstd with the shipped dictionaries
        self.url = url                      # display form: never the password
        self.options = options or RedisOptions()
        self._commit_script = client.register_script(COMMIT_LUA)
        self.known = Known()                # values this process wrote last (store/known.py)
        self._epoch: str | None = None      # id of the data this process reads and writes
        self._commits = 0                   # the epoch's commit counter last seen
        self.attempts = 0                   # script calls of the last `apply` (retries: > 1)

    @classmethod
    def from_url(cls, url: str, ledger_cap: int = 500, prefix: str = K.DEFAULT_PREFIX, *,
                 options: RedisOptions | None = None, ping: bool = True,
                 ledger_max_age: int | None = None) -> Self:
        """Connect to ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).

        With `ping`, checks the server at once (reachable, credentials, version >= 7.0,
        eviction policy ``noeviction``) so a wrong setup is one clear StoreError before any
        work starts.
        """
        target = parse_url(url, options)
        return cls.from_target(target, ledger_cap, prefix, ping=ping,
                               ledger_max_age=ledger_max_age)

    @classmethod
    def from_target(cls, target: RedisTarget, ledger_cap: int = 500,
                    prefix: str = K.DEFAULT_PREFIX, *, ping: bool = True,
                    ledger_max_age: int | None = None) -> Self:
        store = cls(target.client(), ledger_cap=ledger_cap, ledger_max_age=ledger_max_age,
                    prefix=prefix, url=target.display(), options=target.options)
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
        out: dict[str, CustomerState] = {}
        for customer, value in zip(wanted, self._values(wanted, "load"), strict=True):
            # a value that cannot be decoded raises StorePermanentError (record.undecodable)
            out[customer] = value.state() if value is not None else CustomerState(customer)
        return out

    def _values(self, customers: list[str], operation: str) -> list[Value | None]:
        """The stored values of these customers (None: unknown), one round trip."""
        value_key = self.keys.value

        def fetch() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for chunk in chunks(customers):
                pipe.mget([value_key(c) for c in chunk])
            return pipe.execute()

        raw: list[bytes | None] = [v for part in self._run(operation, fetch) for v in part]
        out: list[Value | None] = []
        for customer, data in zip(customers, raw, strict=True):
            out.append(self._value(customer, data) if data is not None else None)
        return out

    def _value(self, customer: str, data: bytes) -> Value:
        try:
            return Value(customer, data)
        except ValueError:
            raise StorePermanentError(self._layout_message("a value that is not layout 2"),
                                      operation="load") from None

    def commit(self, commit: Commit) -> None:
        """Apply the batch with one script call: all of it or, on any error, none of it."""
        prepared = self.prepare(commit)
        if prepared is not None:
            self.apply(prepared)

    def prepare(self, commit: Commit, *, watermark: bool = True) -> Prepared | None:
        """Encode a commit for `apply` (None: nothing to write). The commit's states may change
        in place afterwards: a worker processes its next batch while this one is applied.
        Compression is left to `apply` (`redis_commit.Prepared`): it runs without the GIL.
        `watermark` False: a part of a commit sent in several calls, not the last; the stored
        watermark does not move (the window is still cut by `commit.watermark`)."""
        if not commit.states and not commit.due and commit.watermark <= 0:
            return None
        try:
            return commit_call(self.keys, commit, self.ledger_cap, self.ledger_max_age,
                               compress=self.compress, known=self.known,
                               watermark=watermark)
        except (OverflowError, TypeError, msgspec.EncodeError, struct.error) as exc:
            # e.g. an integer beyond 64 bits kept in a state: refused before anything is sent.
            raise StorePermanentError(f"cannot encode the batch for Redis ({exc}); nothing "
                                      "was written", operation="commit") from None

    def apply(self, prepared: Prepared) -> None:
        """Send a prepared commit: one script call (prepared commits go in order, from one
        thread at a time: they build on the values the ones before wrote, `store/known.py`)."""
        try:
            self._apply(prepared)
        except BaseException:
            self.known.clear()      # whether it was written is unknown: merge from now on
            raise

    def _apply(self, prepared: Prepared) -> None:
        keys, args = prepared.call()
        self._run("commit", self._ensure_epoch)
        epoch = self._epoch
        assert epoch is not None

        self.attempts = 0

        def send() -> Any:
            self.attempts += 1      # each attempt moves the epoch's counter at most once
            try:
                return self._commit_script(keys=keys, args=[epoch, str(self._commits), *args])
            except ResponseError as exc:
                text = str(exc)
                if text.startswith((EPOCH_MISMATCH, ROLLED_BACK)):
                    raise StoreDataLost(self._lost(text), operation="commit") from None
                if text.startswith(WRONG_LAYOUT):
                    raise StorePermanentError(self._layout_message(text),
                                              operation="commit") from None
                raise

        self._commits = prepared.replied(self._run("commit", send))

    @property
    def commits(self) -> int:
        """The epoch's commit counter after this client's last commit (0 before the first)."""
        return self._commits

    def _ensure_epoch(self) -> None:
        """Adopt the store's epoch (creating it in an empty store) before the first commit."""
        if self._epoch is not None:
            return
        self._cmd.hsetnx(self.keys.epoch, "id", uuid.uuid4().hex)
        epoch_id, commits, layout = self._cmd.hmget(self.keys.epoch, "id", "commits", "layout")
        if layout is None and int(commits or 0) == 0 and not self._legacy_keys():
            self._cmd.hsetnx(self.keys.epoch, "layout", str(K.LAYOUT))
            layout = self._cmd.hget(self.keys.epoch, "layout")
        if layout is None or int(layout) != K.LAYOUT:
            found = f"layout {int(layout)}" if layout is not None else "layout 1 (four keys " \
                "per customer, written before issue 12)"
            raise StorePermanentError(self._layout_message(found), operation="commit")
        self._epoch = epoch_id.decode()
        self._commits = int(commits or 0)

    def _legacy_keys(self) -> bool:
        """Whether any layout-1 customer key exists under this prefix (one SCAN page)."""
        _, found = self._cmd.scan(0, match=self.keys.legacy_pattern(), count=1000)
        return bool(found)

    def _layout_message(self, found: str) -> str:
        return (f"Redis at {self.url} (prefix {self.keys.prefix!r}) holds {found}; this "
                f"version reads and writes key layout {K.LAYOUT} (one key per customer). "
                "Nothing was written. Stop the writers and run `valeur-monitor store migrate`, "
                "or start over into an empty store (a re-run of the input rebuilds it)")

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

    def due_entries(self) -> list[tuple[str, int]]:
        """Every (customer, next due) of the due index: one incremental scan (a worker reads
        it once per assignment and keeps its own customers' part up to date itself)."""
        def scan() -> list[tuple[str, int]]:
            return [(c.decode(), int(at))
                    for c, at in self._cmd.zscan_iter(self.keys.due, count=10_000)]

        return self._run("due", scan)

    def watermark(self) -> int:
        value = self._run("watermark", lambda: self._cmd.get(self.keys.watermark))
        return int(value) if value is not None else 0

    def score(self, customer: str) -> ScoreView | None:
        value = self._values([customer], "read")[0]
        return value.score() if value is not None else None

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
        value = self._values([customer], "read")[0]
        return value.ledger(limit) if value is not None else []

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
    def customer_key(self, customer: str) -> str:
        """The customer's one key (for MEMORY USAGE, DUMP, debugging)."""
        return self.keys.value(customer)


def chunks(items: Sequence[Any], size: int = 1000) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
