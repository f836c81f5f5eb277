"""export (csv, jsonl, parquet) from real Redis, and republish of idle scores to real Kafka."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from tests.integration.api_support import Loaded, load, simulated
from valeur_monitor.engine.event import format_time
from valeur_monitor.read.export import FIELDS
from valeur_monitor.read.memory import MemoryReader
from valeur_monitor.read.views import customer_view

pytestmark = pytest.mark.integration
DAY = 86_400_000
CLI = [sys.executable, "-m", "valeur_monitor.cli.main"]


@pytest.fixture
def loaded(redis_db_url: str) -> Loaded:
    return load(redis_db_url, simulated(seed=4, customers=50, days=5))


def cli(loaded: Loaded, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([*CLI, *args], capture_output=True, timeout=300, check=False,
                          env={**os.environ, "VALEUR_REDIS_URL": loaded.url,
                               "VALEUR_API__REDIS_PREFIX": loaded.prefix, **env})
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_export_formats_agree_with_the_engine(loaded: Loaded, tmp_path: Path) -> None:
    as_of = format_time(loaded.watermark + 10 * DAY)
    jsonl = [orjson.loads(x) for x in cli(loaded, "export", "--format", "jsonl", "--as-of",
                                          as_of).stdout.splitlines()]
    mem = MemoryReader(loaded.memory)
    everyone = sorted(c for b in mem.batches() for c in b)
    assert [r["customer"] for r in jsonl] == everyone
    for row in jsonl[:25]:
        c = row["customer"]
        score = mem.score(c)
        assert score is not None
        view = customer_view(score, mem.ledger(c), [], as_of=loaded.watermark + 10 * DAY,
                             half_life=loaded.rules.settings.half_life)
        assert row["as_of"] == as_of and row["band"] == view.band
        assert row["score"] == pytest.approx(view.score, abs=1e-6)
        assert [r["rule"] for r in row["top_reasons"]] == [r for r, _ in view.reasons]
        assert row["rules_version"] == loaded.rules.version
    cli(loaded, "export", "--format", "parquet", "--as-of", as_of, "-o",
        str(tmp_path / "s.parquet"))
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert [r["customer"] for r in table] == everyone
    assert [r["score"] for r in table] == [r["score"] for r in jsonl]
    assert table[0]["top_reasons"] == jsonl[0]["top_reasons"]
    text = cli(loaded, "export", "--as-of", as_of).stdout.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == FIELDS and len(rows) == len(everyone)
    assert float(rows[3]["score"]) == pytest.approx(jsonl[3]["score"])


def test_export_since_keeps_recently_updated(loaded: Loaded) -> None:
    since = loaded.watermark - DAY
    rows = [orjson.loads(x) for x in cli(loaded, "export", "-f", "jsonl", "--since",
                                         format_time(since)).stdout.splitlines()]
    mem = MemoryReader(loaded.memory)
    want = sorted(c for b in mem.batches() for c in b
                  if (v := mem.score(c)) is not None and v.at >= since)
    assert [r["customer"] for r in rows] == want and 0 < len(want) < mem.count()


def test_republish_sends_idle_scores_decayed(loaded: Loaded, kafka_bootstrap: str,
                                             kafka_topic: Any) -> None:
    from kafka import KafkaConsumer

    topic = kafka_topic()
    as_of = loaded.watermark + 30 * DAY
    cli(loaded, "republish", "--idle", "2d", "--as-of", format_time(as_of),
        VALEUR_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap, VALEUR_TOPICS__SCORE_UPDATES=topic)
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    got = {m.key.decode(): orjson.loads(m.value) for m in consumer}
    consumer.close()
    mem = MemoryReader(loaded.memory)
    idle = {c for b in mem.batches() for c in b
            if (v := mem.score(c)) is not None and v.at <= as_of - 2 * DAY}
    assert set(got) == idle and idle
    c, row = next(iter(got.items()))
    score = mem.score(c)
    assert score is not None and row["at"] == format_time(as_of)
    assert row["score"] == pytest.approx(score.total * 0.5 ** ((as_of - score.at) / (30 * DAY)),
                                         abs=1e-6)
