"""Archive round trip on real Kafka and Redis: what the workers scored, archived, replays the same.

Events are produced to a unique topic and scored by two workers; the archiver consumes the same
topic into daily files; `run` over the archive directory must give the ledgers and scores the
workers wrote to Redis. A second archiver run (a restart) archives nothing twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from valeur_monitor.archive.files import expand_inputs
from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import open_input, read_batches
from valeur_monitor.store.memory import MemoryStore

from .streaming_support import ROOT, Worker, end_offsets, run_cli, wait_consumed
from .test_streaming import (  # noqa: F401 - fixtures
    DAY_MS,
    PARTITIONS,
    Stream,
    check_equivalent,
    last_event_time,
    simulate_file,
    start_group,
    stream,
    workers,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_workers_archive_then_replay_gives_the_workers_ledger(
        stream: Stream, workers: list[Worker], kafka_admin: Any,  # noqa: F811
        kafka_topic: Any) -> None:
    stream.env["VALEUR_TOPICS__LEDGER"] = kafka_topic(prefix="vm-ledger", partitions=PARTITIONS)
    rules = load_rules([ROOT / "rules"])
    path, count = simulate_file(stream.tmp / "events.jsonl", customers=150, days=3)
    until = last_event_time(path) + DAY_MS
    a, b = start_group(stream, workers, ["worker-a", "worker-b"])
    run_cli(["produce", str(path), "--no-progress"], stream.env)
    wait_consumed(kafka_admin, stream.group, stream.events, PARTITIONS, 180, [a, b])
    assert a.stop() == 0 and b.stop() == 0
    run_cli(["advance", "--until", format_time(until)], stream.env)

    folder = stream.tmp / "archive"
    first = run_cli(["archive", "--dir", str(folder), "--until-idle", "3"], stream.env)
    assert f"archived {count:,} records" in first.stderr, first.stderr
    sides = [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.offsets.json"))]
    assert sum(s["records"] for s in sides) == count and all(s["sealed"] for s in sides)
    ends = end_offsets(kafka_admin, stream.events, PARTITIONS)
    for p in range(PARTITIONS):
        spans = [s["offsets"][f"{stream.events}/{p}"] for s in sides
                 if f"{stream.events}/{p}" in s["offsets"]]
        assert min(x[0] for x in spans) == 0 and max(x[1] for x in spans) == ends[p] - 1
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    again = run_cli(["archive", "--dir", str(folder), "--until-idle", "3"], stream.env)
    assert "archived 0 records" in again.stderr, again.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    store = MemoryStore()
    runner = EmbeddedRunner(rules, store)
    files = expand_inputs([str(folder)])
    assert files and all(Path(f).name.startswith("events-") for f in files)
    for name in files:
        with open_input(name) as fh:
            for batch in read_batches(fh, 2000):
                runner.feed(batch)
    report = runner.finish(until=until)
    assert report.received == count
    check_equivalent(stream, rules, store)
