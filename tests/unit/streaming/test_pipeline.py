"""The worker's logic without a broker: partitions, stream time, outputs, commit ordering."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from valeur_monitor.engine.rules import RuleSet, load_rules, load_rules_text
from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.observe import metrics_for
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.simulate.malformed import RAW_KEY
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView, Store
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.clock import StreamClock
from valeur_monitor.streaming.drain import drain
from valeur_monitor.streaming.outputs import (
    H_DETAIL,
    H_REASON,
    H_SOURCE,
    OutputTopics,
    Record,
)
from valeur_monitor.streaming.pipeline import StreamPipeline
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RULES = load_rules([ROOT / "rules"])
TOPICS = OutputTopics("scores", "alerts", "dead")
PARTITIONS = 4
DAY = 86_400_000


def sim_lines(customers: int = 120, days: int = 3, seed: int = 3) -> list[bytes]:
    config = SimulationConfig(seed=seed, customers=customers, days=days, bad_rate=0.01,
                              disorder=0.1)
    return [r[RAW_KEY].encode() if RAW_KEY in r else orjson.dumps(r) for r in simulate(config)]


LINES = sim_lines()


def embedded_store(rules: RuleSet, lines: list[bytes], until: int) -> MemoryStore:
    store = MemoryStore()
    runner = EmbeddedRunner(rules, store)
    for i in range(0, len(lines), 500):
        runner.feed(lines[i:i + 500])
    runner.finish(until=until)
    return store


def last_time(lines: list[bytes]) -> int:
    from valeur_monitor.codec import decode
    from valeur_monitor.errors import EventError

    latest = 0
    for line in lines:
        with contextlib.suppress(EventError):
            latest = max(latest, decode(line).time)
    return latest


UNTIL = last_time(LINES) + DAY
EXPECTED = embedded_store(RULES, LINES, UNTIL)


def differences(expected: Store, actual: Store) -> list[str]:
    out = []
    if expected.customers() != actual.customers():
        out.append("customers differ")
    for c in expected.customers():
        if expected.ledger(c) != actual.ledger(c):
            out.append(f"{c}: ledger")
        if expected.score(c) != actual.score(c):
            out.append(f"{c}: score")
    return out


def pipeline(store: Store, owned: set[int], mode: str = "event",
             rules: RuleSet = RULES, wall: list[int] | None = None) -> StreamPipeline:
    now = wall if wall is not None else [0]
    clock = StreamClock(mode, rules.settings.lateness,  # type: ignore[arg-type]
                        wall=lambda: now[0])
    p = StreamPipeline(rules, store, events_topic="events", outputs=TOPICS, clock=clock)
    p.assign(owned, PARTITIONS)
    return p


def by_partition(records: list[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for r in records:
        out.setdefault(r.partition, []).append(r)
    return out


# -- equivalence with the embedded run ----------------------------------------------------------

def test_skewed_partitions_give_the_embedded_results() -> None:
    """Partition 0 entirely, then 1, ...: stream time is per partition, so nothing is late."""
    store = SharedStore()
    p = pipeline(store, set(range(PARTITIONS)))
    late = 0
    for partition, records in sorted(by_partition(records_for(LINES, PARTITIONS)).items()):
        for i in range(0, len(records), 150):
            step = p.process(partition, records[i:i + 150])
            assert step.rerouted == 0
            late += step.result.late
            p.commit()
    assert late == 0
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


def test_naive_shared_stream_time_would_make_events_late() -> None:
    """Control: one Processor fed the same skewed order (global stream time) differs."""
    store = MemoryStore()
    processor = Processor(RULES, store)
    late = 0
    for _, records in sorted(by_partition(records_for(LINES, PARTITIONS)).items()):
        for i in range(0, len(records), 150):
            late += processor.process([r.value for r in records[i:i + 150]]).late
    processor.advance_to(UNTIL)
    assert late > 0
    assert differences(EXPECTED, store) != []


@pytest.mark.parametrize("seed", [1, 2])
def test_two_workers_interleaved_give_the_embedded_results(seed: int) -> None:
    store = SharedStore()
    workers = [pipeline(store, {0, 1}), pipeline(store, {2, 3})]
    queues = {p: list(rs) for p, rs in by_partition(records_for(LINES, PARTITIONS)).items()}
    rng = random.Random(seed)
    while any(queues.values()):
        partition = rng.choice([p for p, q in queues.items() if q])
        size = rng.randint(1, 400)
        batch, queues[partition] = queues[partition][:size], queues[partition][size:]
        worker = workers[0] if partition in (0, 1) else workers[1]
        worker.process(partition, batch)
        worker.commit()
        if rng.random() < 0.2:          # idle ticks in between change nothing in event mode
            for w in workers:
                if w.advance() is not None:
                    w.commit()
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


@pytest.mark.parametrize("seed", [3, 4])
def test_mixed_partition_batches_give_the_embedded_results(seed: int) -> None:
    """Batches as a consumer sees them (all partitions mixed), with partitions fetched at
    different speeds: one Processor call per partition inside, one merged commit."""
    store = SharedStore()
    p = pipeline(store, set(range(PARTITIONS)))
    queues = {q: list(rs) for q, rs in by_partition(records_for(LINES, PARTITIONS)).items()}
    rng = random.Random(seed)
    while any(queues.values()):
        batch: list[Record] = []
        for q in queues:            # each partition contributes a different share
            take = rng.randint(0, 300)
            batch += queues[q][:take]
            queues[q] = queues[q][take:]
        step = p.process_batch(batch)
        assert step.result.late == 0
        p.commit()
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


def test_wall_mode_replays_a_backlog_in_event_time() -> None:
    """A worker back after downtime, in wall mode: the backlog (days old) is not late, because
    partitions that receive records follow their events, not the wall clock."""
    store = SharedStore()
    now = [UNTIL + DAY]
    p = pipeline(store, set(range(PARTITIONS)), mode="wall", wall=now)
    records = records_for(LINES, PARTITIONS)
    for i in range(0, len(records), 700):
        step = p.process_batch(records[i:i + 700])
        assert step.result.late == 0
        p.commit()
        now[0] += 20
        assert p.advance() is None             # every partition active: no wall-clock lead
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


def test_redelivered_batches_change_nothing() -> None:
    store = SharedStore()
    p = pipeline(store, set(range(PARTITIONS)))
    for partition, records in sorted(by_partition(records_for(LINES, PARTITIONS)).items()):
        for i in range(0, len(records), 200):
            p.process(partition, records[max(0, i - 100):i + 200])  # overlapping redelivery
            p.commit()
    p2 = pipeline(store, set(range(PARTITIONS)))           # a restarted worker, from offset 0
    for partition, records in sorted(by_partition(records_for(LINES, PARTITIONS)).items()):
        step = p2.process(partition, records)
        assert step.result.entries == [] and step.result.duplicates > 0
        p2.commit()
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


# -- ownership -------------------------------------------------------------------------------

def test_a_worker_never_advances_customers_of_partitions_it_does_not_own() -> None:
    store = SharedStore()
    records = records_for(LINES, PARTITIONS)
    a, b = pipeline(store, {0, 1}), pipeline(store, {2, 3})
    for worker, mine in ((a, (0, 1)), (b, (2, 3))):
        for partition in mine:
            worker.process(partition, [r for r in records if r.partition == partition][:300])
            worker.commit()
    before = {c: store.load([c])[c].clock for c in store.customers()}
    # worker a alone, with a wall clock far ahead: only its own customers move
    now = [UNTIL]
    wall = pipeline(store, {0, 1}, mode="wall", wall=now)
    assert wall.advance() is None              # just assigned: not idle yet
    now[0] += 3_000
    step = wall.advance()
    assert step is not None
    wall.commit()
    moved = {c for c in store.customers() if store.load([c])[c].clock != before[c]}
    assert moved
    assert {key_partition(c.encode(), PARTITIONS) for c in moved} <= {0, 1}
    assert {key_partition(c.encode(), PARTITIONS) for c in step.result.changed} <= {0, 1}


def test_records_not_keyed_by_customer_are_rerouted_to_the_customer_partition() -> None:
    store = SharedStore()
    p = pipeline(store, {0, 1, 2, 3})
    line = next(line for line in LINES if b'"customer":"cust-' in line)
    customer = orjson.loads(line)["customer"]
    home = key_partition(customer.encode(), PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    step = p.process(wrong, [Record(wrong, 7, None, line)])
    assert step.rerouted == 1 and step.result.received == 0
    [message] = step.messages
    assert (message.topic, message.key, message.value, message.partition) == (
        "events", customer.encode(), line, home)
    step = p.process(home, [Record(home, 8, customer.encode(), line)])
    assert step.rerouted == 0 and step.result.received == 1


# -- outputs -----------------------------------------------------------------------------------

ALERT_RULES = load_rules_text([("t.yml", """
version: 1
settings: {lateness: 0s}
rules:
  - id: unhappy
    on: survey.answered
    if: 'data.score <= 2'
    costs: {inconvenience: 30}
alerts:
  - id: low
    score_below: -20
""")])


def test_outputs_score_updates_alerts_and_dead_letters() -> None:
    store = SharedStore()
    p = pipeline(store, {0, 1, 2, 3}, rules=ALERT_RULES)
    survey = orjson.dumps({"id": "s1", "type": "survey.answered",
                           "time": "2026-11-02T10:00:00Z", "customer": "c9",
                           "data": {"score": 1}})
    later = orjson.dumps({"id": "s2", "type": "survey.answered",
                          "time": "2026-11-02T10:05:00Z", "customer": "c9",
                          "data": {"score": 5}})
    bad = b'{"id": "x", "type": "survey.answered", "customer": "c9"}'
    home = key_partition(b"c9", PARTITIONS)
    step = p.process(home, [Record(home, 0, b"c9", survey), Record(home, 1, b"c9", bad),
                            Record(home, 2, b"c9", later)])
    kinds = Counter(m.topic for m in step.messages)
    assert kinds == {"scores": 1, "alerts": 1, "dead": 1}
    score = next(m for m in step.messages if m.topic == "scores")
    assert score.key == b"c9"
    assert orjson.loads(score.value) == orjson.loads(orjson.dumps(
        score_row(ScoreView.of(step.result.changed["c9"]),
                  rules_version=p.processor.rules.version)))
    assert orjson.loads(score.value)["top_reasons"] == [{"rule": "unhappy", "value": -30.0}]
    alert = next(m for m in step.messages if m.topic == "alerts")
    assert alert.key == b"c9" and orjson.loads(alert.value)["id"] == "low"
    dead = next(m for m in step.messages if m.topic == "dead")
    headers = dict(dead.headers)
    assert dead.key == b"c9" and dead.value == bad
    assert headers[H_REASON] == b"missing_field" and b"time" in headers[H_DETAIL]
    assert headers[H_SOURCE] == f"events/{home}/1".encode()
    assert store.customers() == []             # nothing applied before commit()
    assert p.commit() == 1
    assert store.score("c9") is not None and store.score("c9").total == -30.0  # type: ignore[union-attr]
    # a batch with no new entry publishes no score update
    step = p.process(home, [Record(home, 0, b"c9", survey)])
    assert step.messages == [] and step.result.duplicates == 1


# -- the async runtime -----------------------------------------------------------------------

async def test_runtime_publishes_before_the_commit_point() -> None:
    store = SharedStore()
    publisher = RecordingPublisher(store)
    runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), publisher)
    records = records_for(LINES[:400], PARTITIONS)
    await runtime.handle(records)
    assert len({r.partition for r in records}) == PARTITIONS
    # one publish for the whole batch, before the one (merged) commit of its 4 partitions
    assert publisher.calls == 1 and publisher.customers_at_publish == [[]]
    assert store.commit_calls == 1
    assert runtime.health.batches == 1 and runtime.health.events == 400
    assert store.customers()


async def test_runtime_retries_transient_failures_without_losing_or_doubling() -> None:
    store = SharedStore()
    publisher = RecordingPublisher()
    runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), publisher, retry_delay=0.001)
    publisher.fail, store.fail_commits = 2, 2
    records = records_for(LINES, PARTITIONS)
    for i in range(0, len(records), 500):
        await runtime.handle(records[i:i + 500])
    assert publisher.fail == 0 and store.fail_commits == 0
    assert runtime.healthy() == (True, "ok") and runtime.ready() == (True, "ok")
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []


async def test_crash_before_commit_then_redelivery() -> None:
    store = SharedStore()
    records = records_for(LINES[:1000], PARTITIONS)

    class Boom(Exception):
        pass

    class Crashing(RecordingPublisher):
        async def publish(self, messages):  # type: ignore[no-untyped-def]
            raise Boom("process killed")

    crashed = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), Crashing())
    with pytest.raises(Boom):
        await crashed.handle(records)
    assert store.customers() == []             # the commit point was never reached
    publisher = RecordingPublisher()
    restarted = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), publisher)
    await restarted.handle(records)           # Kafka redelivers the same batch
    reference = SharedStore()
    reference_pipeline = pipeline(reference, {0, 1, 2, 3})
    for partition, group in by_partition(records).items():
        reference_pipeline.process(partition, group)
        reference_pipeline.commit()
    assert differences(reference, store) == []
    assert publisher.messages                 # outputs published again (at-least-once)


QUIET = load_rules_text([("q.yml", """
version: 1
settings: {lateness: 1s}
rules:
  - id: missed-callback
    expect:
      open: callback.promised
      keep: callback.completed
      deadline: {at: data.promised_at}
    broken: {costs: {time: 2}}
""")])


async def test_wall_clock_tick_breaks_a_quiet_customers_promise() -> None:
    now = [1_795_000_000_000]
    store = SharedStore()
    clock = StreamClock("wall", QUIET.settings.lateness, idle_after=1_000, wall=lambda: now[0])
    p = StreamPipeline(QUIET, store, events_topic="events", outputs=TOPICS, clock=clock)
    p.assign({0, 1, 2, 3}, PARTITIONS)
    publisher = RecordingPublisher()
    metrics = metrics_for(QUIET)
    runtime = WorkerRuntime(p, publisher, metrics)
    from valeur_monitor.engine.event import format_time

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    line = orjson.dumps({"id": "e1", "type": "callback.promised", "time": format_time(now[0]),
                         "customer": "quiet", "ref": "cb",
                         "data": {"promised_at": format_time(now[0] + 2000)}})
    home = key_partition(b"quiet", PARTITIONS)
    await runtime.handle([Record(home, 0, b"quiet", line)])
    assert sample("valeur_batch_size_count") == 1
    for step_ms in (500, 500, 500, 500):
        now[0] += step_ms
        await runtime.tick()
        assert store.ledger("quiet") == []   # deadline + lateness not reached yet
    assert sample("valeur_batch_size_count") == 1             # ticks are not batches
    assert sample("valeur_watermark_timestamp_seconds") == (now[0] - 1000) / 1000
    now[0] += 1000                            # now = deadline + lateness
    await runtime.tick()
    [entry] = store.ledger("quiet")
    assert entry.outcome == "broken" and entry.value == -2.0
    assert [m.topic for m in publisher.messages] == ["scores"]
    assert sample("valeur_rule_outcomes_total", rule="missed-callback", outcome="broken",
                  team="none", channel="none") == 1
    assert runtime.health.batches == 1
    await runtime.tick()                      # nothing new: no step, no publish
    assert len(publisher.messages) == 1
