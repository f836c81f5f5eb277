"""The durable outbox: a Redis stream of notifications, one consumer group per endpoint.

Keys (with prefix ``vm:``; one hash tag, so a Cluster keeps them in one slot)::

    vm:{wh}:outbox              STREAM  id, customer, type, body (the JSON sent)
    vm:{wh}:seen:<id>           STRING  enqueue dedupe mark (expires after `seen_ttl`)
    vm:{wh}:attempts:<endpoint> HASH    stream id -> failed deliveries so far
    vm:{wh}:dead                STREAM  endpoint, reason, attempts + the message fields

Enqueueing is idempotent (a notification id is derived from what it reports, and the seen mark
is set in the same script as the XADD), so a feeder that crashes and re-reads its input adds
nothing twice. A message leaves an endpoint's pending list only when delivered (XACK) or
dead-lettered (XADD dead + XACK in one transaction): kill -9 at any point loses nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.exceptions import RedisError, ResponseError

from valeur_monitor.engine.event import format_time
from valeur_monitor.errors import WebhookError
from valeur_monitor.store.connect import RedisOptions, parse_url

# KEYS: lease. ARGV: holder token, ttl ms. Take the lease if free, or extend our own.
LEASE_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

ENQUEUE_LUA = """
local added = 0
for i = 3, #ARGV, 4 do
  if redis.call('SET', KEYS[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[i],
               'customer', ARGV[i + 1], 'type', ARGV[i + 2], 'body', ARGV[i + 3])
    added = added + 1
  end
end
return added
"""


@dataclass(frozen=True)
class Notification:
    """One thing to tell endpoints about one customer (Standard Webhooks payload shape)."""

    type: str           # customer.alert | customer.warning | customer.score_changed
    customer: str
    time: int           # ms: when it happened (event time)
    data: dict[str, Any]

    @property
    def id(self) -> str:
        """Stable across replays: the same fact always gets the same webhook-id."""
        what = orjson.dumps([self.type, self.customer, self.time, self.data.get("id"),
                             self.data.get("ref")])
        return "msg_" + hashlib.sha256(what).hexdigest()[:32]

    def body(self) -> bytes:
        return orjson.dumps({"type": self.type, "timestamp": format_time(self.time),
                             "data": self.data})


@dataclass(frozen=True)
class Message:
    """One outbox entry as read by a sender."""

    stream_id: str
    id: str
    customer: str
    type: str
    body: bytes


class Outbox:
    def __init__(self, client: redis.Redis, *, prefix: str = "vm:", maxlen: int = 1_000_000,
                 seen_ttl: int = 7 * 86_400) -> None:
        self.client = client
        self._cmd: Any = client
        base = f"{prefix}{{wh}}:"
        self.stream = base + "outbox"
        self.dead_stream = base + "dead"
        self.seen_prefix = base + "seen:"
        self.attempts_prefix = base + "attempts:"
        self.lease_prefix = base + "lease:"
        self.maxlen = maxlen
        self.seen_ttl = seen_ttl
        self._enqueue = client.register_script(ENQUEUE_LUA)
        self._lease = client.register_script(LEASE_LUA)

    @classmethod
    def from_url(cls, url: str, options: RedisOptions | None = None, **kwargs: Any) -> Outbox:
        """Connect like the store does (credentials and TLS from `options`)."""
        return cls(parse_url(url, options).client(), **kwargs)

    def add(self, notes: Sequence[Notification]) -> int:
        """Append notifications not seen before; returns how many were added."""
        if not notes:
            return 0
        args: list[Any] = [self.seen_ttl, self.maxlen]
        for n in notes:
            args += (n.id, n.customer, n.type, n.body())
        try:
            return int(self._enqueue(keys=[self.stream, self.seen_prefix], args=args))
        except RedisError as exc:
            raise WebhookError(f"cannot write the webhook outbox: {exc}") from None

    def lease(self, endpoint: str, holder: str, ttl_ms: int) -> bool:
        """Take or extend the endpoint's sender lease (one sender at a time keeps the order)."""
        return bool(self._lease(keys=[self.lease_prefix + endpoint], args=[holder, ttl_ms]))

    def group(self, endpoint: str) -> None:
        """Create the endpoint's consumer group (reading the outbox from its start)."""
        try:
            self._cmd.xgroup_create(self.stream, endpoint, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, endpoint: str, consumer: str, *, pending: bool, count: int = 100,
             block_ms: int | None = None) -> list[Message]:
        """Own pending messages (after a restart), or new ones, in stream order."""
        rows = self._cmd.xreadgroup(endpoint, consumer, {self.stream: "0" if pending else ">"},
                                    count=count, block=None if pending else block_ms)
        out = []
        for _, entries in rows or []:
            for sid, fields in entries:
                if not fields:          # trimmed away while pending: nothing left to send
                    self._cmd.xack(self.stream, endpoint, sid)
                    continue
                out.append(Message(sid.decode(), fields[b"id"].decode(),
                                   fields[b"customer"].decode(), fields[b"type"].decode(),
                                   fields[b"body"]))
        return out

    def ack(self, endpoint: str, msg: Message) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, endpoint, msg.stream_id)
        pipe.hdel(self.attempts_prefix + endpoint, msg.stream_id)
        pipe.execute()

    def failed(self, endpoint: str, msg: Message) -> int:
        """Count one failed delivery; returns the failures so far (durable across restarts)."""
        return int(self._cmd.hincrby(self.attempts_prefix + endpoint, msg.stream_id, 1))

    def bury(self, endpoint: str, msg: Message, reason: str, attempts: int) -> None:
        """Dead-letter a message for this endpoint (the others still get it)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, {"endpoint": endpoint, "reason": reason[:500],
                                     "attempts": attempts, "id": msg.id,
                                     "customer": msg.customer, "type": msg.type,
                                     "body": msg.body}, maxlen=self.maxlen, approximate=True)
        pipe.xack(self.stream, endpoint, msg.stream_id)
        pipe.hdel(self.attempts_prefix + endpoint, msg.stream_id)
        pipe.execute()

    def dead(self, count: int = 100) -> list[dict[str, str]]:
        rows = self._cmd.xrange(self.dead_stream, count=count)
        return [{k.decode(): v.decode("utf-8", "replace") for k, v in f.items()}
                for _, f in rows]

    def pending(self, endpoint: str) -> int:
        """Messages read by the endpoint's sender and not yet delivered or dead."""
        try:
            info = self._cmd.xpending(self.stream, endpoint)
        except ResponseError:
            return 0
        return int(info["pending"])

    def close(self) -> None:
        self.client.close()
