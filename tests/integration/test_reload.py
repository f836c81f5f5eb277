"""Rule reload under load, two workers on real Kafka and Redis.

A bad rule set is refused (the workers keep their rules; the failure is in metrics and logs);
a good one is taken between two batches: every event is scored by exactly one version, the old
one up to the stream time each worker recorded at the switch, the new one after it.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import time
from collections import defaultdict
from typing import Any

import orjson
import pytest

from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.redis import RedisStore

from .streaming_support import CLI, ROOT, Worker, read_topic, run_cli, wait_consumed, wait_for
from .test_streaming import PARTITIONS, Stream, start_group, stream, workers  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SWITCH = re.compile(r"rules reloaded: (\S+) -> (\S+) at positions (\{.*?\}), "
                    r"stream times (\{.*?\})")


def _metric_lines(worker: Worker, name: str) -> list[str]:
    code, body = worker.get("/metrics")
    assert code == 200 and isinstance(body, str)
    return [line for line in body.splitlines() if line.startswith(name)]


def test_reload_under_load_switches_each_event_to_exactly_one_version(
        stream: Stream, workers: list[Worker], kafka_admin: Any,  # noqa: F811
        kafka_topic: Any) -> None:
    stream.env["VALEUR_TOPICS__LEDGER"] = kafka_topic(prefix="vm-ledger", partitions=PARTITIONS)
    rules_dir = stream.tmp / "rules"
    rules_dir.mkdir()
    for f in (ROOT / "rules").glob("*.yml"):
        shutil.copy(f, rules_dir / f.name)
    old = load_rules([rules_dir]).version
    path = stream.tmp / "events.jsonl"
    count = write_jsonl(path, SimulationConfig(seed=5, customers=300, days=6))
    stream.env["VALEUR_RULES"] = str(rules_dir)
    stream.env["VALEUR_WORKER__LOGLEVEL"] = "info"
    a, b = start_group(stream, workers, ["worker-a", "worker-b"])
    assert all(f'valeur_rules_info{{version="{old}"}} 1.0' in _metric_lines(w, "valeur_rules_info")
               for w in (a, b))
    pid_args = [arg for w in (a, b) for arg in
                ("--pid-file", str(stream.tmp / f"data-{w.name}" / "worker.pid"))]
    producer = subprocess.Popen([CLI, "produce", str(path), "--no-progress", "--rate", "300"],
                                env=stream.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        wait_for("a quarter consumed", lambda: sum(w.status().get("events", 0)
                                                   for w in (a, b)) > count // 4, 120)
        # a broken rule set: refused, the running rules stay
        (rules_dir / "zz-broken.yml").write_text("version: 1\nrules:\n  - id: x\n    on: nope\n")
        run_cli(["rules", "reload", *pid_args], stream.env)
        wait_for("failed reloads counted", lambda: all(
            'valeur_rules_reloads_total{result="failed"} 1.0' in _metric_lines(
                w, "valeur_rules_reloads_total") for w in (a, b)), 60)
        assert all("rules reload refused" in w.log_tail(400) for w in (a, b))
        # a good one: a technician no-show now costs 7 in money
        (rules_dir / "zz-broken.yml").unlink()
        visits = rules_dir / "visits.yml"
        visits.write_text(visits.read_text().replace("money: 3}", "money: 7}"))
        new = load_rules([rules_dir]).version
        run_cli(["rules", "reload", *pid_args], stream.env)
        wait_for("both switched", lambda: all(
            f'valeur_rules_info{{version="{new}"}} 1.0' in _metric_lines(w, "valeur_rules_info")
            for w in (a, b)), 60)
        assert producer.wait(300) == 0, producer.stderr.read() if producer.stderr else ""
    finally:
        if producer.poll() is None:
            producer.kill()
    wait_consumed(kafka_admin, stream.group, stream.events, PARTITIONS, 240, [a, b])
    assert a.stop() == 0 and b.stop() == 0

    # the switch each worker recorded: stream time per partition it owned
    limits: dict[int, int] = {}
    for w in (a, b):
        found = SWITCH.findall(w.log_path.read_text())
        assert len(found) == 1 and found[0][:2] == (old, new), found
        stream_times = {int(k): int(v) for k, v in ast.literal_eval(found[0][3]).items()}
        for partition in w.status().get("partitions", []) or stream_times:
            limits[int(partition)] = stream_times[int(partition)]
    assert set(limits) == set(range(PARTITIONS))

    events: dict[str, tuple[int, int]] = {}     # id -> (partition, event time)
    for record in read_topic(stream.bootstrap, stream.events, PARTITIONS):
        doc = orjson.loads(record.value)
        events[doc["id"]] = (record.partition, parse_time(doc["time"]))
    store = RedisStore.from_url(stream.redis_url)
    versions: dict[str, set[str]] = defaultdict(set)
    for customer in store.customers():
        for entry in store.ledger(customer):
            if entry.outcome != "broken":           # timers have no triggering event
                versions[entry.events[-1]].add(entry.rules_version)
    # the switch came mid-stream: both versions scored events
    assert {v for vs in versions.values() for v in vs} == {old, new}
    wrong = []
    for event_id, vs in versions.items():
        partition, at = events[event_id]
        want = old if at <= limits[partition] else new
        if vs != {want}:
            wrong.append((event_id, partition, at, limits[partition], vs))
    assert not wrong, f"{len(wrong)} events scored by the wrong version: {wrong[:5]}"
    time.sleep(0)
