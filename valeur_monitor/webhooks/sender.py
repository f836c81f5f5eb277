"""Delivering the outbox to one endpoint: signed, in order per customer, retried, dead-lettered.

A customer whose head message fails waits (exponential backoff) while other customers' messages
go on; its later messages stay queued behind the failed one, so each customer's notifications
arrive in outbox order. After `max_attempts` failures the message is dead-lettered and the
customer's next message goes. One sender per endpoint works at a time: it holds a lease in
Redis (renewed every round); a second sender waits, and takes over the same pending list (the
consumer name is fixed) when the first one stops renewing, e.g. after kill -9.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry, Counter
from standardwebhooks import Webhook

from valeur_monitor import __version__
from valeur_monitor.settings import WebhookEndpoint, WebhookSettings
from valeur_monitor.webhooks.outbox import Message, Outbox

log = logging.getLogger("valeur_monitor.webhooks")
OUTCOMES = ("delivered", "failed", "dead", "skipped")


class WebhookMetrics:
    """Delivery counters per endpoint (endpoint names are configured: a bounded label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter("valeur_webhook_deliveries_total",
                                  "Webhook delivery attempts by endpoint and outcome.",
                                  ("endpoint", "outcome"), registry=registry)
        self.dead = Counter("valeur_webhook_dead_letters_total",
                            "Webhook messages given up after the last attempt.", ("endpoint",),
                            registry=registry)

    def start(self, endpoint: str) -> None:
        for outcome in OUTCOMES:
            self.deliveries.labels(endpoint, outcome)
        self.dead.labels(endpoint)


def sign_headers(endpoint: WebhookEndpoint, msg: Message, now: float) -> dict[str, str]:
    """Standard Webhooks headers for one delivery (a fresh timestamp on every attempt)."""
    stamp = datetime.fromtimestamp(int(now), tz=UTC)
    signature = Webhook(endpoint.secret.get_secret_value()).sign(msg.id, stamp,
                                                                 msg.body.decode())
    return {"webhook-id": msg.id, "webhook-timestamp": str(int(now)),
            "webhook-signature": signature, "content-type": "application/json",
            "user-agent": f"valeur-monitor/{__version__}"}


class Sender:
    def __init__(self, outbox: Outbox, endpoint: WebhookEndpoint, settings: WebhookSettings,
                 metrics: WebhookMetrics, *, consumer: str = "sender",
                 clock: Callable[[], float] = time.time,
                 client: httpx.Client | None = None) -> None:
        self.outbox = outbox
        self.endpoint = endpoint
        self.settings = settings
        self.metrics = metrics
        self.consumer = consumer
        self.clock = clock
        self.http = client or httpx.Client(timeout=endpoint.timeout_s, follow_redirects=False)
        self.queues: dict[str, deque[Message]] = {}
        self.retry_at: dict[str, float] = {}
        self.recovered = False
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        outbox.group(endpoint.name)
        metrics.start(endpoint.name)

    # -- one round -----------------------------------------------------------------------------
    def step(self, block_ms: int = 1000) -> int:
        """Read what is new (own pending list first), deliver what is ready; returns sent."""
        ttl = int(self.settings.lease_s * 1000)
        if not self.outbox.lease(self.endpoint.name, self.holder, ttl):
            # Another sender delivers: forget what was read (it is in the shared pending
            # list) and look again after a while.
            self.queues.clear()
            self.retry_at.clear()
            self.recovered = False
            time.sleep(min(block_ms / 1000, self.settings.lease_s / 4))
            return 0
        block_ms = min(block_ms, ttl // 3)
        if not self.recovered:
            self._take(self.outbox.read(self.endpoint.name, self.consumer, pending=True,
                                        count=10_000))
            self.recovered = True
        ready = self._ready_heads()
        wait = 0 if ready else self._wait_ms(block_ms)
        self._take(self.outbox.read(self.endpoint.name, self.consumer, pending=False,
                                    count=500, block_ms=wait or None))
        sent = 0
        for customer in self._ready_heads():
            if not self.outbox.lease(self.endpoint.name, self.holder, ttl):
                break                   # lost the lease (paused too long): stop sending
            sent += self._drain(customer)
        return sent

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception as exc:  # a Redis hiccup must not end the sender: retry soon
                log.warning("webhook sender %s: %s", self.endpoint.name, type(exc).__name__)
                stop.wait(1.0)

    # -- internals -----------------------------------------------------------------------------
    def _take(self, messages: list[Message]) -> None:
        wanted = set(self.endpoint.events)
        for msg in messages:
            if msg.type not in wanted:
                self.outbox.ack(self.endpoint.name, msg)
                self.metrics.deliveries.labels(self.endpoint.name, "skipped").inc()
                continue
            self.queues.setdefault(msg.customer, deque()).append(msg)

    def _ready_heads(self) -> list[str]:
        now = self.clock()
        ready = [c for c, q in self.queues.items() if q and self.retry_at.get(c, 0.0) <= now]
        return sorted(ready, key=lambda c: _order(self.queues[c][0].stream_id))

    def _wait_ms(self, block_ms: int) -> int:
        if not self.retry_at:
            return block_ms
        soonest = min(self.retry_at.values()) - self.clock()
        return max(1, min(block_ms, int(soonest * 1000)))

    def _drain(self, customer: str) -> int:
        queue, sent = self.queues[customer], 0
        while queue:
            msg = queue[0]
            error = self._deliver(msg)
            name = self.endpoint.name
            if error is None:
                self.outbox.ack(name, msg)
                self.metrics.deliveries.labels(name, "delivered").inc()
                self.retry_at.pop(customer, None)
                queue.popleft()
                sent += 1
                continue
            attempts = self.outbox.failed(name, msg)
            self.metrics.deliveries.labels(name, "failed").inc()
            if attempts >= self.settings.max_attempts:
                self.outbox.bury(name, msg, error, attempts)
                self.metrics.dead.labels(name).inc()
                self.metrics.deliveries.labels(name, "dead").inc()
                log.warning("webhook %s to %s dead after %d attempts: %s", msg.id, name,
                            attempts, error)
                self.retry_at.pop(customer, None)
                queue.popleft()
                continue
            delay = min(self.settings.max_backoff_s,
                        self.settings.backoff_s * 2 ** (attempts - 1))
            self.retry_at[customer] = self.clock() + delay * random.uniform(0.8, 1.0)
            break
        if not queue:
            del self.queues[customer]
        return sent

    def _deliver(self, msg: Message) -> str | None:
        """None when the endpoint accepted (2xx), else why not."""
        try:
            response = self.http.post(self.endpoint.url, content=msg.body,
                                      headers=sign_headers(self.endpoint, msg, self.clock()))
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def _order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
