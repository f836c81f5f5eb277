"""Redis store: engine state, scores, reasons, a capped ledger and the indexes, in Redis.

Design (details and the exactly-once argument in docs/store.md):

* Each customer's effects go through ONE Lua script (registered once, called by EVALSHA) that
  touches only that customer's four keys, which share the hash tag ``{c:<customer>}`` — one
  Cluster slot. The script writes the state (with its dedupe marks: the commit point), the score
  and reasons hashes, and appends the new ledger entries (only those whose ``seq`` is above the
  high-water mark kept in the score hash, so re-running the script is a no-op) then trims the
  ledger to the cap.
* The global indexes (ranking ZSET, due ZSET, watermark) are written by plain idempotent commands
  (ZADD of the same score, ZREM, a max-only watermark script on its own key) queued AFTER the
  customer scripts in the same pipeline. They are derived from the states: a crash between the
  two leaves a stale index entry that the next commit of that customer (or the due sweep, which
  re-selects a customer whose stale due time has passed) rewrites.
* A whole batch is ONE pipeline (transaction=False), so a commit costs one round trip. Because
  every command in it is idempotent, the pipeline is simply re-sent on a connection error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    RedisError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState, decode_state, encode_state
from valeur_monitor.errors import StoreError
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import Commit, ScoreView
from valeur_monitor.store.census import OpenIndex
from valeur_monitor.store.keys import Keys

T = TypeVar("T")

# KEYS: state, score, reasons, ledger (one customer, one slot).
# ARGV: state bytes, ledger cap, state seq, score fields, reasons, then (seq, entry) pairs in
# seq order. Score fields and reasons are each ONE msgpack array of strings [field, value, ...]
# (decoded by cmsgpack): a handful of arguments per call instead of ~40 keeps the client's
# command packing, the main client cost, small.
COMMIT_LUA = """
local function hset_all(key, t)
  for s = 1, #t, 1000 do
    redis.call('HSET', key, unpack(t, s, math.min(s + 999, #t)))
  end
end
redis.call('SET', KEYS[1], ARGV[1])
local cap = tonumber(ARGV[2])
local old = redis.call('HGET', KEYS[2], 'seq')
local last = tonumber(old or '0')
local hw = ARGV[3]
if last > tonumber(hw) then hw = old end
redis.call('DEL', KEYS[2], KEYS[3])
local fields = cmsgpack.unpack(ARGV[4])
fields[#fields + 1] = 'seq'
fields[#fields + 1] = hw
hset_all(KEYS[2], fields)
hset_all(KEYS[3], cmsgpack.unpack(ARGV[5]))
local pushed = 0
local batch = {}
for j = 6, #ARGV, 2 do
  if tonumber(ARGV[j]) > last then
    batch[#batch + 1] = ARGV[j + 1]
    if #batch == 500 then
      redis.call('RPUSH', KEYS[4], unpack(batch))
      pushed = pushed + #batch
      batch = {}
    end
  end
end
if #batch > 0 then
  redis.call('RPUSH', KEYS[4], unpack(batch))
  pushed = pushed + #batch
end
if pushed > 0 then redis.call('LTRIM', KEYS[4], -cap, -1) end
return pushed
"""

# KEYS: watermark. ARGV: candidate. Keeps the maximum (several workers may commit).
WATERMARK_LUA = """
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

CHUNK = 1000          # keys per MGET, members per ZADD/ZREM
_entry_encoder = msgspec.msgpack.Encoder()
_fields_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(LedgerEntry)


def encode_entry(entry: LedgerEntry) -> bytes:
    """A ledger entry as stored in Redis (msgpack of the struct; epoch-ms time)."""
    return _entry_encoder.encode(entry)


def decode_entry(data: bytes) -> LedgerEntry:
    return _entry_decoder.decode(data)


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<redis url>"


def _reason(exc: BaseException) -> str:
    """A short cause for a connection failure: the OS message when there is one."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.strerror:
            return str(cur.strerror)
        cur = cur.__cause__ or cur.__context__
    text = str(exc).strip().rstrip(".")
    # redis-py: "Error 111 connecting to 127.0.0.1:1. Connection refused."
    if text.startswith("Error ") and ". " in text:
        text = text.rsplit(". ", 1)[1]
    return text or type(exc).__name__


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _num(value: float) -> str:
    """Exact text of a float (repr round-trips), as stored in hashes."""
    return repr(float(value))


class RedisStore:
    """The production store (see the module docstring and docs/store.md)."""

    def __init__(self, client: redis.Redis, *, ledger_cap: int = 500,
                 prefix: str = K.DEFAULT_PREFIX, url: str = "redis",
                 attempts: int = 4, backoff: float = 0.05, max_backoff: float = 1.0) -> None:
        if ledger_cap < 1:
            raise ValueError(f"ledger_cap must be >= 1, got {ledger_cap}")
        self.client = client
        # redis-py annotates replies as unions over decode modes and protocol versions; this
        # store always uses bytes replies (decode_responses=False), so reads go through Any.
        self._cmd: Any = client
        self.keys = Keys(prefix)
        self.ledger_cap = ledger_cap
        self.url = redact(url)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._commit_script = client.register_script(COMMIT_LUA)
        self._watermark_script = client.register_script(WATERMARK_LUA)
        self._open_index = OpenIndex(self.keys)

    @classmethod
    def from_url(cls, url: str, ledger_cap: int = 500, prefix: str = K.DEFAULT_PREFIX, *,
                 connect_timeout: float = 2.0, timeout: float = 30.0, attempts: int = 4,
                 ping: bool = True) -> Self:
        """Connect to ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).

        Pings once (with the store's retries) so an unreachable server is reported here,
        as a StoreError with a one-line message, before any work starts.
        """
        try:
            # redis-py's own retries are off: the store retries whole operations itself.
            client = redis.Redis.from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0), decode_responses=False)
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {redact(url)}: {exc}") from None
        store = cls(client, ledger_cap=ledger_cap, prefix=prefix, url=url, attempts=attempts)
        if ping:
            store._run(client.ping)
            store._run(store._load_scripts)
        return store

    def _load_scripts(self) -> None:
        """SCRIPT LOAD both scripts (EVALSHA then finds them; done again after NOSCRIPT)."""
        for script in (self._commit_script, self._watermark_script):
            script.sha = self.client.script_load(script.script)

    # -- retries ------------------------------------------------------------------------------
    def _run(self, fn: Callable[[], T]) -> T:
        """Call `fn`, retrying connection errors and timeouts with exponential backoff.

        Safe because every operation of this store is a read or an idempotent write.
        """
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except AuthenticationError as exc:
                text = str(exc)
                if "HELLO must be called" in text or "NOAUTH" in text or "required" in text:
                    raise StoreError(f"Redis at {self.url} requires a password "
                                     "(redis://:PASSWORD@host:port/db)") from exc
                raise StoreError(f"Redis refused the credentials at {self.url}: "
                                 f"{_reason(exc)}") from exc
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if attempt >= self.attempts:
                    what = "timed out" if isinstance(exc, RedisTimeoutError) else "unreachable"
                    raise StoreError(f"Redis {what} at {self.url}: {_reason(exc)}") from exc
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
            except RedisError as exc:
                raise StoreError(f"Redis error at {self.url}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- protocol -----------------------------------------------------------------------------
    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        wanted = list(dict.fromkeys(customers))
        if not wanted:
            return {}
        state_key = self.keys.state

        def fetch() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for chunk in _chunks(wanted):
                pipe.mget([state_key(c) for c in chunk])
            return pipe.execute()

        values: list[bytes | None] = [v for part in self._run(fetch) for v in part]
        out: dict[str, CustomerState] = {}
        for customer, data in zip(wanted, values, strict=True):
            out[customer] = decode_state(data) if data is not None else CustomerState(customer)
        return out

    def commit(self, commit: Commit) -> None:
        entries: dict[str, list[LedgerEntry]] = {}
        for entry in commit.entries:
            entries.setdefault(entry.customer, []).append(entry)
        missing = entries.keys() - commit.states.keys()
        if missing:
            raise ValueError(f"ledger entries for customers without a state in the commit: "
                             f"{sorted(missing)[:5]}")
        cap = str(self.ledger_cap)
        calls: list[tuple[tuple[str, ...], list[Any]]] = []
        ranking: dict[str, float] = {}
        pack = _fields_encoder.encode
        for customer, state in commit.states.items():
            score = state.score
            fields = [K.F_TOTAL, _num(score.total), K.F_AT, str(score.at),
                      K.F_CREATED, _num(score.created), K.F_DESTROYED, _num(score.destroyed)]
            for dim, value in score.dims.items():
                fields += (K.DIM_PREFIX + dim, _num(value))
            reasons: list[str] = []
            for rule, value in state.reasons.items():
                reasons += (rule, _num(value))
            args: list[Any] = [encode_state(state), cap, str(state.seq), pack(fields),
                               pack(reasons)]
            for entry in sorted(entries.get(customer, ()), key=lambda e: e.seq):
                args += (str(entry.seq), encode_entry(entry))
            calls.append((self.keys.customer(customer).all(), args))
            ranking[customer] = score.total
        due_at = {c: d for c, d in commit.due.items() if d >= 0}
        undue = [c for c, d in commit.due.items() if d < 0]

        def send() -> None:
            for attempt in (1, 2):
                pipe = self.client.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(self._commit_script.sha, 4, *keys, *args)
                # Global, derived, idempotent writes after the customer scripts (docs/store.md).
                for chunk in _chunks(list(ranking.items())):
                    pipe.zadd(self.keys.ranking, dict(chunk))
                for chunk in _chunks(list(due_at.items())):
                    pipe.zadd(self.keys.due, dict(chunk))
                for names in _chunks(undue):
                    pipe.zrem(self.keys.due, *names)
                self._open_index.queue(self.client, pipe, commit.states)
                pipe.evalsha(self._watermark_script.sha, 1, self.keys.watermark,
                             str(commit.watermark))
                results = pipe.execute(raise_on_error=False)
                if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
                    # Script cache empty (restart, failover, SCRIPT FLUSH): load the scripts and
                    # re-send the whole pipeline, which is idempotent.
                    self._load_scripts()
                    continue
                for r in results:
                    if isinstance(r, Exception):
                        raise r
                return

        self._run(send)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        rows = self._run(lambda: self._cmd.zrangebyscore(self.keys.due, "-inf", until,
                                                         start=0, num=limit))
        return [c.decode() for c in rows]

    def watermark(self) -> int:
        value = self._run(lambda: self._cmd.get(self.keys.watermark))
        return int(value) if value is not None else 0

    def score(self, customer: str) -> ScoreView | None:
        def fetch() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.score(customer))
            pipe.hgetall(self.keys.reasons(customer))
            return pipe.execute()

        raw, reasons = self._run(fetch)
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
            rows = self._run(lambda: client.zrange(key, 0, n - 1, withscores=True))
            return [(m.decode(), float(s)) for m, s in rows]
        top = self._run(lambda: client.zrevrange(key, 0, n - 1, withscores=True))
        if not top:
            return []
        # ZREVRANGE orders equal scores by member descending. Ties above the lowest score in
        # the page are complete: sort them. The lowest score's tie may go on past the page:
        # fetch its first members in ascending order (only as many as needed).
        last = float(top[-1][1])
        above = sorted(((m.decode(), float(s)) for m, s in top if float(s) > last),
                       key=lambda cs: (-cs[1], cs[0]))
        need = len(top) - len(above)
        tied = self._run(lambda: client.zrangebyscore(key, last, last, start=0, num=need,
                                                      withscores=True))
        return above + [(m.decode(), float(s)) for m, s in tied]

    def ledger(self, customer: str, limit: int | None = None) -> list[LedgerEntry]:
        start = -limit if limit else 0
        key = self.keys.ledger(customer)
        rows = self._run(lambda: self._cmd.lrange(key, start, -1))
        return [decode_entry(r) for r in rows]

    def customers(self) -> list[str]:
        rows = self._run(lambda: self._cmd.zrange(self.keys.ranking, 0, -1))
        return sorted(m.decode() for m in rows)

    def due_promises(self, until: int) -> list[tuple[str, str, str, int]]:
        """Open promises due by `until`, found through the due index.

        An open, running promise with deadline d gives its customer a next due time <= d (the
        warning, if any, comes before the deadline), so every such customer is in the due
        index at or before `until`; their states are then filtered exactly as in memory.
        """
        rows = self._run(lambda: self._cmd.zrangebyscore(self.keys.due, "-inf", until))
        candidates = [c.decode() for c in rows]
        out = []
        for chunk in _chunks(candidates):
            for customer, state in self.load(chunk).items():
                for promise in state.promises.values():
                    if promise.is_overdue(until):
                        out.append((customer, promise.rule, promise.ref, promise.deadline))
        return sorted(out)

    def close(self) -> None:
        self.client.close()

    # -- operations helpers -------------------------------------------------------------------
    def customer_keys(self, customer: str) -> tuple[str, str, str, str]:
        """The four keys of a customer (for MEMORY USAGE, DUMP, debugging)."""
        return self.keys.customer(customer).all()
