"""`make chaos`: workers killed with SIGKILL at 10 points of a 300k-event replay (event clock and
wall clock), and the Kafka broker restarted under two workers. After each run, the ledgers and
scores in Redis, the compacted score-updates topic, the alerts and the dead letters equal the
embedded run over the same events, and the redelivered records were absorbed as duplicates.

Real servers: the shared Redis (a private DB) and Kafka for the kill runs; a private broker
(scripts/services on other ports) for the restart. Figures go to docs/reliability.md ("Chaos").
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.ingest_support import private_kafka
from tests.integration.streaming_support import (
    CLI,
    ROOT,
    Worker,
    compare_stores,
    latest_by_key,
    read_topic,
    run_cli,
    score_json,
    wait_consumed,
    wait_for,
)
from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import open_input, read_batches
from valeur_monitor.service import BatchResult
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.streaming.outputs import H_REASON

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

PARTITIONS = 4
DAY_MS = 86_400_000
KILLS = 10
RULES = load_rules([ROOT / "rules"])


# -- reference: the embedded run --

@dataclass
class Reference:
    store: MemoryStore
    dead: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    alerts: set[tuple[str, str, str]] = field(default_factory=set)


def embedded(rules: RuleSet, path: Path, until: int) -> Reference:
    ref = Reference(MemoryStore())

    def hook(result: BatchResult, seconds: float) -> None:
        for letter in result.dead_letters:   # produced without the line's newline
            ref.dead[(letter.raw.rstrip(b"\r\n"), letter.reason)] += 1
        for notice in result.notices:
            if notice.kind == "alert":
                data = notice.to_json()
                ref.alerts.add((data["customer"], data["id"], data["time"]))

    runner = EmbeddedRunner(rules, ref.store, on_batch=[hook])
    with open_input(str(path)) as stream:
        for batch in read_batches(stream, 2000):
            runner.feed(batch)
    runner.finish(until=until)
    return ref


def simulate_file(path: Path, customers: int, days: int, start: datetime | None = None
                  ) -> int:
    config = SimulationConfig(seed=21, customers=customers, days=days, bad_rate=0.002,
                              disorder=0.05, **({"start": start} if start else {}))
    return write_jsonl(path, config)


# -- a worker group with its topics --

@dataclass
class Group:
    bootstrap: str
    redis_url: str
    topics: dict[str, str]
    env: dict[str, str]
    tmp: Path
    workers: list[Worker] = field(default_factory=list)
    duplicates_seen: dict[int, float] = field(default_factory=dict)   # pid -> last scraped
    restarts: int = 0

    def start(self, name: str, fault: str | None = None) -> Worker:
        env = {**self.env, "VALEUR_WORKER__DATADIR": str(self.tmp / f"data-{name}")}
        if fault:
            env["VALEUR_FAULT"] = fault
        worker = Worker(name, env, self.tmp / f"{name}.log").start()
        self.workers.append(worker)
        return worker

    def scrape(self) -> None:
        """Remember each live process's duplicate count (a killed one loses its metrics)."""
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                value = worker.metric("valeur_events_duplicate_total")
                pid = worker.proc.pid
                self.duplicates_seen[pid] = max(self.duplicates_seen.get(pid, 0.0), value)

    @property
    def duplicates(self) -> float:
        return sum(self.duplicates_seen.values())

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=20)


def make_group(bootstrap: str, admin: Any, redis_url: str, tmp: Path, clock: str) -> Group:
    suffix = f"{os.getpid()}-{int(time.time() * 1000)}"
    topics = {"events": f"chaos-events-{suffix}", "scores": f"chaos-scores-{suffix}",
              "alerts": f"chaos-alerts-{suffix}", "dead": f"chaos-dead-{suffix}",
              "ledger": f"chaos-ledger-{suffix}"}
    from kafka.admin import NewTopic

    admin.create_topics([
        NewTopic(topics["events"], PARTITIONS, 1),
        NewTopic(topics["scores"], PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(topics["alerts"], 1, 1), NewTopic(topics["dead"], 1, 1),
        NewTopic(topics["ledger"], PARTITIONS, 1)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update({
        "VALEUR_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "VALEUR_REDIS_URL": redis_url,
        "VALEUR_RULES": str(ROOT / "rules"), "VALEUR_TOPICS__EVENTS": topics["events"],
        "VALEUR_TOPICS__SCORE_UPDATES": topics["scores"],
        "VALEUR_TOPICS__CUSTOMER_ALERTS": topics["alerts"],
        "VALEUR_TOPICS__DEAD_LETTERS": topics["dead"], "VALEUR_TOPICS__LEDGER": topics["ledger"],
        "VALEUR_WORKER__APP_ID": f"chaos-{suffix}", "VALEUR_WORKER__CLOCK": clock,
        "VALEUR_WORKER__TICK_INTERVAL": "0.5", "VALEUR_WORKER__SESSION_TIMEOUT": "6",
        "VALEUR_WORKER__LOGLEVEL": "warning", "PYTHONUNBUFFERED": "1"})
    return Group(bootstrap, redis_url, topics, env, tmp)


@pytest.fixture
def admin_for() -> Iterator[Any]:
    from kafka import KafkaAdminClient

    made: list[Any] = []

    def make(bootstrap: str) -> Any:
        client = KafkaAdminClient(bootstrap_servers=bootstrap)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# -- checks --

def check_outputs(group: Group, ref: Reference) -> dict[str, int]:
    """Redis, score-updates, alerts and dead letters against the embedded run."""
    cap = RULES.settings.ledger_cap
    actual = RedisStore.from_url(group.redis_url, ledger_cap=cap)
    problems = compare_stores(ref.store, actual, cap)
    assert not problems, f"{len(problems)} difference(s):\n" + "\n".join(problems[:10])
    latest = latest_by_key(read_topic(group.bootstrap, group.topics["scores"], PARTITIONS))
    scored = [c for c in actual.customers() if actual.ledger(c, 1)]
    assert set(latest) == set(scored)
    for customer in scored:
        latest[customer].pop("rules_version", None)
    wrong = [c for c in scored if latest[c] != score_json(actual, c)]
    assert not wrong, wrong[:5]
    alerts = read_topic(group.bootstrap, group.topics["alerts"], 1)
    got_alerts = {(a["customer"], a["id"], a["time"])
                  for a in (orjson.loads(r.value) for r in alerts)}
    assert got_alerts == ref.alerts
    dead = read_topic(group.bootstrap, group.topics["dead"], 1)
    got_dead = Counter((r.value, dict(r.headers)[H_REASON].decode()) for r in dead)
    assert set(got_dead) == set(ref.dead)          # outputs are at-least-once: no count check
    actual.close()
    return {"customers": len(ref.store.customers()), "alerts": len(got_alerts),
            "alert_records": len(alerts), "dead_letters": len(dead),
            "score_updates_keys": len(latest)}


# -- kill -9 at 10 points --

def kill_schedule(seed: int) -> list[tuple[str, float]]:
    """10 kills: every hook point (after-commit three times) and wall-clock kills."""
    rnd = random.Random(seed)
    kinds = ["after-commit", "timed", "after-publish", "timed", "after-commit", "after-process",
             "timed", "after-commit", "timed", "after-commit"]
    return [(k, rnd.randint(2, 5) if k != "timed" else rnd.uniform(3.0, 8.0)) for k in kinds]


@pytest.mark.parametrize("clock", ["event", "wall"])
def test_kill_9_at_ten_points_of_a_300k_replay(clock: str, kafka_bootstrap: str,
                                               redis_db_url: str, tmp_path: Path,
                                               admin_for: Any) -> None:
    start = None
    if clock == "wall":   # the replay ends two weeks ago: every timer is due by now
        start = (datetime.now(UTC) - timedelta(days=21)).replace(hour=0, minute=0, second=0,
                                                                  microsecond=0)
    path = tmp_path / "events.jsonl"
    count = simulate_file(path, customers=5200, days=7, start=start)
    assert count >= 300_000
    group = make_group(kafka_bootstrap, admin_for(kafka_bootstrap), redis_db_url, tmp_path,
                       clock)
    schedule = kill_schedule(7 if clock == "event" else 8)
    slots = ["a", "b"]
    pending = {s: [e for i, e in enumerate(schedule) if i % 2 == slots.index(s)] for s in slots}

    def fault_of(slot: str) -> str | None:
        if not pending[slot] or pending[slot][0][0] == "timed":
            return None
        kind, n = pending[slot][0]
        return f"{kind}:{int(n)}"

    live = {s: group.start(f"{s}0", fault_of(s)) for s in slots}
    for worker in live.values():
        worker.wait_ready(120)
    began = time.monotonic()
    producer = subprocess.Popen([CLI, "produce", str(path), "--no-progress", "--rate", "2000"],
                                env=group.env, cwd=ROOT, stdout=subprocess.DEVNULL)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(0.3):
            group.scrape()

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    kills: list[str] = []
    try:
        for i, (kind, arg) in enumerate(schedule):
            slot = slots[i % 2]
            victim = live[slot]
            assert victim.proc is not None
            if kind == "timed":
                time.sleep(arg)
                victim.kill(signal.SIGKILL)
            # a hook kill comes by itself when the worker's n-th batch reaches the point
            victim.proc.wait(240)
            assert victim.proc.returncode == -signal.SIGKILL, victim.log_tail()
            kills.append(f"{kind}{'' if kind == 'timed' else ':' + str(int(arg))} "
                         f"at {time.monotonic() - began:.0f}s")
            pending[slot].pop(0)
            live[slot] = group.start(f"{slot}{i + 1}", fault_of(slot))
        assert producer.wait(600) == 0
        events = group.topics["events"]
        wait_consumed(admin_for(group.bootstrap), group.env["VALEUR_WORKER__APP_ID"], events,
                      PARTITIONS, 900, list(live.values()))
        if clock == "event":
            group.scrape()
            group.stop_all()
            until = last_time(path) + DAY_MS
            ref = embedded(RULES, path, until)
            run_cli(["advance", "--until", format_time(until)], group.env)
        else:
            until = int(time.time() * 1000)
            ref = embedded(RULES, path, until)
            cap = RULES.settings.ledger_cap
            actual = RedisStore.from_url(group.redis_url, ledger_cap=cap)
            # idle partitions follow the wall clock within a tick: wait for the last timers
            wait_for("Redis to equal the embedded run",
                     lambda: not compare_stores(ref.store, actual, cap), 120, 1.0)
            actual.close()
            group.scrape()
            group.stop_all()
    finally:
        stop.set()
        if producer.poll() is None:
            producer.kill()
        group.stop_all()
    figures = check_outputs(group, ref)
    assert len(kills) == KILLS
    # Kills after the Redis commit and before the offsets were acked redeliver committed
    # records: they must have been recognised as duplicates (and, above, changed nothing).
    assert group.duplicates > 0, "no redelivered record was absorbed as a duplicate"
    print(f"\n[{clock} clock] {count:,} events, {KILLS} kills ({'; '.join(kills)}); "
          f"duplicates absorbed (seen on /metrics): {group.duplicates:.0f}; {figures}; "
          f"{time.monotonic() - began:.0f}s")


def last_time(path: Path) -> int:
    from valeur_monitor.codec import decode
    from valeur_monitor.errors import EventError

    latest = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                latest = max(latest, decode(line).time)
            except EventError:
                continue
    return latest


# -- Kafka broker restart under two workers --

def test_broker_restart_with_two_workers(redis_db_url: str, tmp_path: Path,
                                         admin_for: Any) -> None:
    path = tmp_path / "events.jsonl"
    count = simulate_file(path, customers=1500, days=7)
    until = last_time(path) + DAY_MS
    ref = embedded(RULES, path, until)
    with private_kafka(tmp_path / "services") as kafka:
        admin = admin_for(kafka.bootstrap)
        group = make_group(kafka.bootstrap, admin, redis_db_url, tmp_path, "event")
        run_cli(["produce", str(path), "--no-progress"], group.env)
        workers = [group.start("a"), group.start("b")]
        try:
            for worker in workers:
                worker.wait_ready(120)

            def progress() -> int:
                return sum(int(w.status().get("events", 0) or 0) for w in workers)

            wait_for("a third of the events processed", lambda: progress() >= count // 3,
                     300, 0.2)
            at = progress()
            began = time.monotonic()
            kafka.run("stop")
            time.sleep(3)
            kafka.run("start")
            outage = time.monotonic() - began
            # a supervisor's job: restart a worker that exited (counted, reported)
            deadline = time.monotonic() + 900
            events = group.topics["events"]
            while True:
                for i, worker in enumerate(workers):
                    if worker.proc is not None and worker.proc.poll() is not None:
                        group.restarts += 1
                        workers[i] = group.start(f"{worker.name}-r{group.restarts}")
                group.scrape()
                try:
                    wait_consumed(admin_for(kafka.bootstrap), group.env["VALEUR_WORKER__APP_ID"],
                                  events, PARTITIONS, 5)
                    break
                except AssertionError:
                    assert time.monotonic() < deadline, "not consumed after the restart"
            group.scrape()
            group.stop_all()
            run_cli(["advance", "--until", format_time(until)], group.env)
            figures = check_outputs(group, ref)
        finally:
            group.stop_all()
    print(f"\n[broker restart] {count:,} events, broker down {outage:.1f}s after {at:,} "
          f"processed; workers restarted by the supervisor: {group.restarts}; duplicates "
          f"absorbed (seen on /metrics): {group.duplicates:.0f}; {figures}")
