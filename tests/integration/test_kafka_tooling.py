"""`valeur-monitor topics apply` and `valeur-monitor produce` against the real broker."""

from __future__ import annotations

import gzip
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.settings import TOPIC_ROLES

from .streaming_support import ROOT, read_topic, run_cli

N = len(TOPIC_ROLES)   # every role of streams/topics.yaml gets a test-unique name

pytestmark = pytest.mark.integration


def cli_env(bootstrap: str, **names: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["VALEUR_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
    env.update({f"VALEUR_TOPICS__{role.upper()}": name for role, name in names.items()})
    return env


@pytest.fixture
def topic_names(kafka_admin: Any) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    names = {role: f"test-apply-{role.replace('_', '-')}-{suffix}"
             for role in (r.replace("-", "_") for r in TOPIC_ROLES)}
    yield names
    kafka_admin.delete_topics(list(names.values()), raise_errors=False)


def test_topics_apply_creates_then_is_idempotent_then_grows(
        kafka_bootstrap: str, kafka_admin: Any, topic_names: dict[str, str],
        tmp_path: Path) -> None:
    env = cli_env("127.0.0.1:1", **topic_names)     # --bootstrap wins over the settings
    out = run_cli(["topics", "apply", "--bootstrap", kafka_bootstrap], env).stdout
    assert f"{N} topic(s): {N} changed" in out and out.count("create") == N
    described = {t["name"]: t for t in kafka_admin.describe_topics(list(topic_names.values()))}
    assert len(described[topic_names["events"]]["partitions"]) == 12
    configs = kafka_admin.describe_configs([ConfigResource(
        ConfigResourceType.TOPIC, topic_names["score_updates"], {"cleanup.policy": None})],
        config_filter="all")
    assert configs["topic"][topic_names["score_updates"]]["cleanup.policy"]["value"] == "compact"

    out = run_cli(["topics", "apply", "--bootstrap", kafka_bootstrap], env).stdout
    assert f"{N} topic(s): 0 changed" in out and out.count("unchanged") == N

    grown = (ROOT / "streams" / "topics.yaml").read_text().replace(
        "partitions: 12\n    configs:\n      cleanup.policy: delete",
        "partitions: 16\n    configs:\n      cleanup.policy: delete", 1).replace(
        'retention.ms: "7776000000"', 'retention.ms: "8000000000"')
    path = tmp_path / "topics.yaml"
    path.write_text(grown)
    dry = run_cli(["topics", "apply", "--bootstrap", kafka_bootstrap, "-f", str(path),
                   "--dry-run"], env).stdout
    assert "2 would change" in dry
    out = run_cli(["topics", "apply", "--bootstrap", kafka_bootstrap, "-f", str(path)],
                  env).stdout
    assert f"{N} topic(s): 2 changed" in out and "12 -> 16" in out
    described = {t["name"]: t for t in kafka_admin.describe_topics([topic_names["events"]])}
    assert len(described[topic_names["events"]]["partitions"]) == 16


def test_produce_keys_by_customer_and_keeps_bad_lines(kafka_bootstrap: str, kafka_topic: Any,
                                                       tmp_path: Path) -> None:
    topic = kafka_topic(prefix="produce", partitions=3)
    good = [orjson.dumps({"id": f"e{i}", "type": "survey.answered", "customer": f"c{i % 7}",
                          "time": "2026-11-02T10:00:00Z", "data": {"score": 4}})
            for i in range(200)]
    bad = [b'{"id": "x1", "customer": "c1", "type": "nope"}', b'{"id": "x2", "cust']
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(good + bad) + b"\n\n")
    env = cli_env(kafka_bootstrap, events=topic)
    began = time.monotonic()
    out = run_cli(["produce", str(path), "--rate", "500", "--no-progress"], env).stdout
    elapsed = time.monotonic() - began
    assert "sent 202 records (201 keyed by customer, 1 without key)" in out
    assert elapsed >= 0.35                                  # 202 records at 500/s
    run_cli(["produce", "-", "--no-progress"], env, stdin=good[0] + b"\n")
    records = read_topic(kafka_bootstrap, topic, 3)
    assert len(records) == 203
    for record in records:
        if record.key is None:
            assert record.value == bad[1]
        else:
            assert record.partition == key_partition(record.key, 3)
            assert orjson.loads(record.value)["customer"] == record.key.decode()
    assert sorted(r.value for r in records) == sorted([*good, *bad, good[0]])
