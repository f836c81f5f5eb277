"""End to end with real servers: signed helpdesk webhooks -> `valeur-monitor ingest` -> Kafka
-> faust worker -> scores in Redis; bad signatures write nothing; Kafka down answers 503 and
the sender's retry after the restart lands exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.ingest.auth import zendesk_headers
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore

from .ingest_support import Ingest, now_stamp, private_kafka
from .streaming_support import (
    ROOT,
    Worker,
    end_offsets,
    read_topic,
    wait_consumed,
    workers_cleanup,
)

pytestmark = pytest.mark.integration
DATA = ROOT / "tests" / "data" / "sources"
SECRET = "e2e-zendesk-signing-secret"


def base_env(bootstrap: str, **topics: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update({
        "VALEUR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "VALEUR_RULES": str(ROOT / "rules"),
        "VALEUR_INGEST__SECRETS__ZENDESK": SECRET,
        "VALEUR_INGEST__IDENTITIES": str(DATA / "identities.csv"),
        "VALEUR_INGEST__ACK_TIMEOUT_S": "4",
        "VALEUR_KAFKA__REQUEST_TIMEOUT_S": "4",
        "PYTHONUNBUFFERED": "1",
    })
    env.update({f"VALEUR_TOPICS__{role.upper()}": name for role, name in topics.items()})
    return env


@pytest.fixture
def ingests() -> Iterator[list[Ingest]]:
    started: list[Ingest] = []
    try:
        yield started
    finally:
        for ingest in started:
            ingest.stop()


def test_signed_webhooks_reach_the_score_in_redis(
        kafka_bootstrap: str, kafka_topic: Any, kafka_admin: Any, redis_db_url: str,
        tmp_path: Path, ingests: list[Ingest]) -> None:
    events = kafka_topic(prefix="vm-ingest-events", partitions=2)
    topics = {"events": events, "dead_letters": kafka_topic(prefix="vm-ingest-dead"),
              "score_updates": kafka_topic(prefix="vm-ingest-scores",
                                           configs={"cleanup.policy": "compact"}),
              "customer_alerts": kafka_topic(prefix="vm-ingest-alerts"),
              "ledger": kafka_topic(prefix="vm-ingest-ledger")}
    env = base_env(kafka_bootstrap, **topics)
    ingest = Ingest(env, tmp_path / "ingest.log").start()
    ingests.append(ingest)
    bodies = (DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()

    # a bad signature first: 401 and nothing written
    headers = {**zendesk_headers("not-the-secret", bodies[0], now_stamp()),
               "Content-Type": "application/json"}
    status, reply = ingest.post_raw("POST", "/ingest/zendesk", bodies[0], headers)
    assert status == 401, reply
    assert orjson.loads(reply)["title"] == "Unauthorized"
    assert sum(end_offsets(kafka_admin, events, 2).values()) == 0

    for body in bodies:
        status, reply = ingest.zendesk(body, SECRET)
        assert status == 202, reply
    status, _ = ingest.zendesk(bodies[2], SECRET)          # Zendesk retries a delivery
    assert status == 202
    records = read_topic(kafka_bootstrap, events, 2)
    assert len(records) == 11                              # 10 events + the retried one
    assert {r.key for r in records} == {b"cust-zd-1"}

    env.update({"VALEUR_REDIS_URL": redis_db_url, "VALEUR_WORKER__CLOCK": "event",
                "VALEUR_WORKER__APP_ID": f"vm-ingest-{events.rsplit('-', 1)[1]}",
                "VALEUR_WORKER__DATADIR": str(tmp_path / "worker"),
                "VALEUR_WORKER__LOGLEVEL": "warning"})
    with workers_cleanup() as started:
        worker = Worker("w", env, tmp_path / "worker.log").start()
        started.append(worker)
        worker.wait_ready(90)
        wait_consumed(kafka_admin, env["VALEUR_WORKER__APP_ID"], events, 2, 90, [worker])

    # the same payloads mapped in process and run embedded: the reference ledger
    rules = load_rules([ROOT / "rules"])
    reference = MemoryStore()
    runner = EmbeddedRunner(rules, reference)
    runner.feed([r.value for r in records])
    stored = RedisStore.from_url(redis_db_url)
    for customer in reference.customers():
        assert stored.ledger(customer) == reference.ledger(customer)
    ledger = stored.ledger("cust-zd-1")
    assert [(e.rule, e.outcome, e.dimension) for e in ledger] == [
        (e.rule, e.outcome, e.dimension) for e in reference.ledger("cust-zd-1")]
    assert any(e.rule == "request-reopened" for e in ledger)
    assert any(e.rule == "reply-in-time" and e.outcome == "kept" for e in ledger)
    view = stored.score("cust-zd-1")
    assert view is not None and view == reference.score("cust-zd-1")


def test_kafka_down_is_503_and_the_retry_lands_once(tmp_path: Path,
                                                    ingests: list[Ingest]) -> None:
    from kafka import KafkaAdminClient

    with private_kafka(tmp_path / "services") as kafka:
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=30000)
        try:
            admin.create_topics({"events": {"num_partitions": 1, "replication_factor": 1},
                                 "dead": {"num_partitions": 1, "replication_factor": 1}},
                                wait_for_metadata=True)
        finally:
            admin.close()
        env = base_env(kafka.bootstrap, events="events", dead_letters="dead")
        ingest = Ingest(env, tmp_path / "ingest.log").start()
        ingests.append(ingest)
        bodies = (DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()
        assert ingest.zendesk(bodies[0], SECRET)[0] == 202

        kafka.run("stop")
        status, reply = ingest.zendesk(bodies[2], SECRET)
        assert status == 503, reply
        problem = orjson.loads(reply)
        assert problem["status"] == 503 and "retry" in problem["detail"]

        kafka.run("start")
        status, reply = ingest.zendesk(bodies[2], SECRET)   # the sender's retry
        assert status == 202, (reply, ingest.log())
        records = read_topic(kafka.bootstrap, "events", 1)
    # The refused attempt may still have reached the broker once it was back (the producer
    # had it in flight): a copy with the same event id, which the dedupe absorbs.
    ids = [orjson.loads(r.value)["id"] for r in records]
    assert sorted(set(ids)) == ["zd-01JC8Y2A0000000000000001", "zd-01JC8Y2A0000000000000003"]
    runner = EmbeddedRunner(load_rules([ROOT / "rules"]), MemoryStore())
    runner.feed([r.value for r in records])
    report = runner.finish()
    assert report.processed == 2 and report.duplicates == len(ids) - 2
    reference = EmbeddedRunner(load_rules([ROOT / "rules"]), MemoryStore())
    reference.feed(sorted({r.value for r in records}))
    reference.finish()
    assert runner.store.ledger("cust-zd-1") == reference.store.ledger("cust-zd-1")
    assert [e.rule for e in runner.store.ledger("cust-zd-1")] == ["reply-in-time"]


def test_import_to_the_events_topic(kafka_bootstrap: str, kafka_topic: Any,
                                    tmp_path: Path) -> None:
    from valeur_monitor.streaming.outputs import H_REASON

    from .streaming_support import run_cli

    events, dead = kafka_topic(prefix="vm-import-events"), kafka_topic(prefix="vm-import-dead")
    env = base_env(kafka_bootstrap, events=events, dead_letters=dead)
    pages = (DATA / "zendesk-export.jsonl").read_bytes().splitlines()
    second = tmp_path / "page2.json"
    second.write_bytes(pages[1])
    done = run_cli(["import", "zendesk", str(second), str(DATA / "zendesk-export.jsonl"),
                    "--topic", "--no-progress"], env)
    assert "3 payloads -> 9 events, 1 dead letters" in done.stdout
    assert "events: the events topic" in done.stdout
    records = read_topic(kafka_bootstrap, events, 1)
    assert len(records) == 9 and {r.key for r in records} == {b"cust-zd-2"}
    letters = read_topic(kafka_bootstrap, dead, 1)
    assert [dict(r.headers)[H_REASON] for r in letters] == [b"unknown_customer"]
    assert letters[0].value == pages[1]
