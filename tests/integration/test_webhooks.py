"""Webhooks end to end: run --outbox fills the Redis outbox, senders deliver signed messages.

The receiver verifies every request with the standardwebhooks library. Scenarios: the receiver
down for a while then up (everything delivered once, in order per customer); the sender killed
with kill -9 mid-delivery and restarted (nothing lost); an endpoint that always fails (every
message dead-lettered after N attempts, counted by a metric).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook

from tests.integration.api_support import simulated
from valeur_monitor.engine.event import parse_time
from valeur_monitor.settings import WebhookEndpoint, WebhookSettings
from valeur_monitor.webhooks.changes import ScoreChanges
from valeur_monitor.webhooks.outbox import Notification, Outbox
from valeur_monitor.webhooks.sender import Sender, WebhookMetrics

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"valeur-monitor-test-secret-32byt").decode()
CLI = [sys.executable, "-m", "valeur_monitor.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An HTTP endpoint that verifies Standard Webhooks signatures and records deliveries."""

    def __init__(self, port: int, *, status: int = 204, delay: float = 0.0) -> None:
        self.port, self.status, self.delay = port, status, delay
        self.got: list[tuple[str, str, str]] = []     # (webhook-id, customer, type)
        self.bad = 0        # whole requests whose signature did not verify
        self.cut = 0        # requests cut short by the sender's death
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    # the sender died mid-request (the kill -9 tests): a cut request is no
                    # delivery and no bad signature; the sender's next attempt sends it whole
                    with receiver.lock:
                        receiver.cut += 1
                    return
                try:
                    payload = Webhook(SECRET).verify(body, dict(self.headers.items()))
                except Exception:
                    with receiver.lock:
                        receiver.bad += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                time.sleep(receiver.delay)
                if receiver.status < 300:
                    with receiver.lock:
                        receiver.got.append((self.headers["webhook-id"],
                                             payload["data"]["customer"], payload["type"]))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def unique(self) -> set[str]:
        with self.lock:
            return {i for i, _, _ in self.got}


def outbox_rows(client: redis.Redis, box: Outbox) -> list[tuple[str, str, str]]:
    """Outbox messages an endpoint with the default events gets (warnings are opt-in)."""
    rows = client.xrange(box.stream)
    out = [(f[b"id"].decode(), f[b"customer"].decode(), f[b"type"].decode()) for _, f in rows]
    return [r for r in out if r[2] != "customer.warning"]


def per_customer(rows: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for mid, customer, _ in rows:
        if mid not in out.get(customer, []):
            out.setdefault(customer, []).append(mid)
    return out


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wh") / "events.jsonl"
    path.write_bytes(b"\n".join(simulated(seed=3, customers=60, days=7)) + b"\n")
    return path


@pytest.fixture
def filled(redis_db_url: str, events: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`run --outbox --notices` over a simulated week; the outbox and config it leaves."""
    prefix = f"wh{uuid.uuid4().hex[:8]}:"
    port = free_port()
    config = tmp_path / "settings.toml"
    config.write_text(f'''redis_url = "{redis_db_url}"
[webhooks]
redis_prefix = "{prefix}"
backoff_s = 0.05
max_backoff_s = 0.2
max_attempts = 100
debounce_s = 0
score_delta = 2.0
lease_s = 1.5
[[webhooks.endpoints]]
name = "crm"
url = "http://127.0.0.1:{port}/hook"
secret = "{SECRET}"
timeout_s = 1
''')
    notices = tmp_path / "notices.jsonl"
    done = subprocess.run([*CLI, "run", str(events), "--outbox", redis_db_url, "--notices",
                           str(notices), "--config", str(config), "--no-progress",
                           "--dead-letters", str(tmp_path / "dead.jsonl")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    client = redis.Redis.from_url(redis_db_url)
    box = Outbox(client, prefix=prefix)
    rows = outbox_rows(client, box)
    alerts = [orjson.loads(line) for line in notices.read_bytes().splitlines()]
    yield {"config": config, "port": port, "box": box, "rows": rows, "client": client,
           "notices": alerts, "prefix": prefix, "url": redis_db_url}
    client.close()


def settings_of(filled: dict[str, Any], **over: Any) -> tuple[WebhookEndpoint, WebhookSettings]:
    endpoint = WebhookEndpoint(name="crm", url=f"http://127.0.0.1:{filled['port']}/hook",
                               secret=SECRET, timeout_s=2)
    wh = WebhookSettings(redis_prefix=filled["prefix"], backoff_s=0.05, max_backoff_s=0.2,
                         max_attempts=over.pop("max_attempts", 100), endpoints=[endpoint],
                         lease_s=3)
    return endpoint, wh


def wait_for(condition: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_run_fills_the_outbox_with_alerts_and_score_changes(filled: dict[str, Any]) -> None:
    rows, notices = filled["rows"], filled["notices"]
    alerts = [n for n in notices if n["kind"] == "alert"]
    assert alerts and any(n["kind"] == "warning" for n in notices)
    warnings = [f for _, f in filled["client"].xrange(filled["box"].stream)
                if f[b"type"] == b"customer.warning"]
    assert len(warnings) == sum(n["kind"] == "warning" for n in notices)
    queued = {r[0] for r in rows if r[2] == "customer.alert"}
    ids = {Notification("customer.alert", n["customer"], parse_time(n["time"]), n).id
           for n in alerts}
    assert ids == queued and len(ids) == len(alerts)
    assert any(r[2] == "customer.score_changed" for r in rows)
    assert len({r[0] for r in rows}) == len(rows)          # no message queued twice
    # enqueueing is idempotent: the same run's notifications again add nothing
    box: Outbox = filled["box"]
    again = [Notification("customer.alert", n["customer"], 0, n) for n in alerts]
    assert box.add(again) == len(again) and box.add(again) == 0


def test_receiver_down_then_up_gets_everything_once_in_order(filled: dict[str, Any]) -> None:
    endpoint, wh = settings_of(filled)
    registry = CollectorRegistry()
    sender = Sender(filled["box"], endpoint, wh, WebhookMetrics(registry))
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1.5)                      # nobody listens: every attempt fails
    failed = registry.get_sample_value("valeur_webhook_deliveries_total",
                                       {"endpoint": "crm", "outcome": "failed"})
    assert failed and failed > 0
    receiver = Receiver(filled["port"]).start()
    try:
        wanted = {r[0] for r in filled["rows"]}
        wait_for(lambda: receiver.unique() == wanted)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
        receiver.stop()
    assert receiver.bad == 0
    assert len(receiver.got) == len(wanted)                   # exactly once
    assert per_customer(receiver.got) == per_customer(filled["rows"])   # in order per customer
    assert filled["box"].pending("crm") == 0


def test_kill_9_mid_delivery_loses_nothing(filled: dict[str, Any]) -> None:
    receiver = Receiver(filled["port"], delay=0.01).start()
    wanted = {r[0] for r in filled["rows"]}
    assert len(wanted) > 40
    cmd = [*CLI, "webhooks", "send", "--config", str(filled["config"])]
    try:
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: len(receiver.unique()) >= len(wanted) // 3)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert len(receiver.unique()) < len(wanted)
        second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: receiver.unique() == wanted)
            time.sleep(0.3)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        receiver.stop()
    assert receiver.bad == 0
    # at most the message in flight at the kill comes twice, with the same webhook-id
    assert len(receiver.got) - len(wanted) <= 1
    assert per_customer(receiver.got) == per_customer(filled["rows"])
    assert filled["box"].pending("crm") == 0


def test_failing_endpoint_dead_letters_after_n_attempts(filled: dict[str, Any]) -> None:
    endpoint, wh = settings_of(filled, max_attempts=2)
    receiver = Receiver(filled["port"], status=500).start()
    registry = CollectorRegistry()
    sender = Sender(filled["box"], endpoint, wh, WebhookMetrics(registry))
    wanted = len(filled["rows"])
    try:
        wait_for(lambda: (sender.step(50), len(filled["box"].dead(10_000)))[1] == wanted)
    finally:
        receiver.stop()
    dead = filled["box"].dead(10_000)
    assert {d["reason"] for d in dead} == {"HTTP 500"} and {d["attempts"] for d in dead} == {"2"}
    assert registry.get_sample_value("valeur_webhook_dead_letters_total",
                                     {"endpoint": "crm"}) == wanted
    assert filled["box"].pending("crm") == 0


def test_score_changes_are_debounced_above_a_delta(redis_client: redis.Redis) -> None:
    box = Outbox(redis_client, prefix=f"sc{uuid.uuid4().hex[:6]}:")
    changes = ScoreChanges(box, delta=2.0, debounce_s=10)

    def row(score: float, at: str) -> dict[str, Any]:
        return {"customer": "c1", "score": score, "at": at, "top_reasons": []}

    changes.offer([row(-1.0, "2026-11-01T00:00:00Z")], now=100)
    assert changes.flush(now=105) == 0                      # still quiet
    changes.offer([row(-3.0, "2026-11-01T00:01:00Z")], now=106)
    assert changes.flush(now=111) == 1                      # one message, the latest score
    changes.offer([row(-4.0, "2026-11-01T00:02:00Z")], now=120)
    assert changes.flush(now=131) == 0                      # moved 1 < delta since -3 sent
    changes.offer([row(-5.5, "2026-11-01T00:03:00Z")], now=140)
    assert changes.flush(now=0, everything=True) == 1       # 2.5 since -3
    sent = [orjson.loads(f[b"body"]) for _, f in redis_client.xrange(box.stream)]
    assert [(s["data"]["score"], s["data"]["previous_score"]) for s in sent] == [
        (-3.0, 0.0), (-5.5, -3.0)]


def test_feed_from_kafka_fills_the_outbox_once(redis_client: redis.Redis, kafka_bootstrap: str,
                                               kafka_topic: Any) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from valeur_monitor.webhooks.feed import feed_from_kafka

    alerts, scores = kafka_topic(), kafka_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    notice = {"kind": "alert", "id": "score-below-threshold", "customer": "c7",
              "time": "2026-11-20T10:00:00Z", "message": "score fell", "score": -25.0}
    for _ in range(2):          # a redelivered alert is enqueued once
        producer.send(alerts, key=b"c7", value=orjson.dumps(notice))
    producer.send(alerts, key=b"c8", value=b"not json")
    producer.send(scores, key=b"c7", value=orjson.dumps(
        {"customer": "c7", "score": -25.0, "at": "2026-11-20T10:00:00Z", "top_reasons": []}))
    producer.flush()
    producer.close()
    box = Outbox(redis_client, prefix=f"kf{uuid.uuid4().hex[:6]}:")
    changes = ScoreChanges(box, delta=5.0, debounce_s=0)
    consumer = KafkaConsumer(alerts, scores, bootstrap_servers=kafka_bootstrap,
                             group_id=f"g-{uuid.uuid4().hex[:6]}", enable_auto_commit=False,
                             auto_offset_reset="earliest")
    stop = threading.Event()
    thread = threading.Thread(target=feed_from_kafka, args=(consumer, box, changes),
                              kwargs={"alerts_topic": alerts, "scores_topic": scores,
                                      "stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(redis_client.xrange(box.stream)) >= 2, 60)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(10)
        consumer.close()
    kinds = sorted(f[b"type"].decode() for _, f in redis_client.xrange(box.stream))
    assert kinds == ["customer.alert", "customer.score_changed"]


def test_a_second_sender_waits_for_the_lease(filled: dict[str, Any]) -> None:
    endpoint, wh = settings_of(filled)
    first = Sender(filled["box"], endpoint, wh, WebhookMetrics(CollectorRegistry()))
    second = Sender(filled["box"], endpoint, wh, WebhookMetrics(CollectorRegistry()))
    receiver = Receiver(filled["port"]).start()
    try:
        first.step(50)
        assert second.step(50) == 0 and not second.queues       # first holds the lease
        wanted = {r[0] for r in filled["rows"]}
        wait_for(lambda: (first.step(50), receiver.unique() == wanted)[1])
        time.sleep(wh.lease_s + 0.2)                               # first stops renewing
        assert second.step(50) == 0 and second.recovered           # second took over
    finally:
        receiver.stop()
    assert len(receiver.got) == len(wanted)
