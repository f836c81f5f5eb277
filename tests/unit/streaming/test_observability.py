"""Worker observability without a broker: scrape-time store counts, lag, operation labels,
dead letters carrying their record, one decode per record, web pages and bind address."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import LINES, PARTITIONS, RULES, pipeline
from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.metrics import BANDS, OPERATIONS, OTHER, band_of
from valeur_monitor.runner.observe import OpenPromises, metrics_for
from valeur_monitor.settings import load_settings
from valeur_monitor.store.census import StatesCensus
from valeur_monitor.streaming.app import create_app
from valeur_monitor.streaming.collectors import LagCollector, StoreCollector
from valeur_monitor.streaming.outputs import H_REASON, H_SOURCE, Record
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.unit
EDGES = (-20.0, -5.0, 5.0)


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


async def two_workers(store: SharedStore) -> list[WorkerRuntime]:
    """Two runtimes sharing a store, each owning half of the partitions, fed the same lines."""
    runtimes = [WorkerRuntime(pipeline(store, {0, 1}), RecordingPublisher()),
                WorkerRuntime(pipeline(store, {2, 3}), RecordingPublisher())]
    records = records_for(LINES, PARTITIONS)
    for i in range(0, len(records), 400):
        chunk = records[i:i + 400]
        for runtime in runtimes:
            mine = [r for r in chunk if r.partition in runtime.pipeline.clock.owned]
            if mine:
                await runtime.handle(mine)
    return runtimes


async def test_store_collector_counts_every_customer_whatever_the_workers() -> None:
    store = SharedStore()
    await two_workers(store)
    states = store.load(store.customers()).values()
    want_bands = dict.fromkeys(BANDS, 0)
    for s in states:
        want_bands[band_of(s.score.total, EDGES)] += 1
    reference = OpenPromises()
    reference.update({s.customer: s for s in states})
    assert sum(reference.totals.values()) > 0

    # Each worker's registry: the same totals (max across workers, never a per-worker part).
    for _ in range(2):
        registry = CollectorRegistry()
        registry.register(StoreCollector(StatesCensus(store), RULES.rule_ids(), EDGES))
        bands = samples(registry, "valeur_customers")
        assert {dict(k)["band"]: v for k, v in bands.items()} == want_bands
        promises = {dict(k)["rule"]: v for k, v in samples(registry,
                                                             "valeur_open_promises").items()}
        assert set(promises) == set(RULES.rule_ids())      # every rule, 0 when none open
        assert {r: n for r, n in promises.items() if n} == {
            r: n for r, n in reference.totals.items() if n}


class CountingCensus:
    def __init__(self, fail: bool = False) -> None:
        self.reads = 0
        self.fail = fail

    def bands(self, edges: tuple[float, float, float]) -> dict[str, int]:
        self.reads += 1
        if self.fail:
            raise OSError("Redis unreachable")
        return {"critical": 2, "at_risk": 0, "neutral": 5, "positive": 1}

    def open_promises(self) -> dict[str, int]:
        return {"a": 3, "gone-rule": 2}


def test_store_collector_caches_for_its_ttl_and_survives_store_failures() -> None:
    now = [0.0]
    census = CountingCensus()
    errors: list[BaseException] = []
    collector = StoreCollector(census, ["a", "b"], EDGES, ttl=5.0, clock=lambda: now[0],
                               on_error=errors.append)
    registry = CollectorRegistry()
    registry.register(collector)
    first = samples(registry, "valeur_open_promises")
    assert {dict(k)["rule"]: v for k, v in first.items()} == {"a": 3, "b": 0, OTHER: 2}
    now[0] = 4.9
    samples(registry, "valeur_customers")
    assert census.reads == 1                      # within the TTL: no store read
    now[0] = 5.0
    census.fail = True
    bands = samples(registry, "valeur_customers")  # the last good read, and the error counted
    assert census.reads == 2 and len(errors) == 1
    assert {dict(k)["band"]: v for k, v in bands.items()}["neutral"] == 5


def test_lag_collector_labels_topic_and_partition_only() -> None:
    registry = CollectorRegistry()
    registry.register(LagCollector("events", lambda: {3: 12, 0: 0}))
    lag = samples(registry, "valeur_consumer_lag_records")
    assert lag == {(("partition", "0"), ("topic", "events")): 0.0,
                   (("partition", "3"), ("topic", "events")): 12.0}

    def broken() -> dict[int, int]:
        raise RuntimeError("no assignment")

    quiet = CollectorRegistry()
    quiet.register(LagCollector("events", broken))
    assert samples(quiet, "valeur_consumer_lag_records") == {}


async def test_retried_operations_are_labelled_from_the_one_list() -> None:
    store = SharedStore()
    metrics = metrics_for(RULES, state_gauges=False)
    publisher = RecordingPublisher()
    runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), publisher, metrics,
                            retry_delay=0.001)
    publisher.fail, store.fail_commits = 1, 1
    await runtime.handle(records_for(LINES[:200], PARTITIONS))
    store_errors = samples(metrics.registry, "valeur_store_errors_total")
    broker_errors = samples(metrics.registry, "valeur_broker_errors_total")
    assert store_errors[(("operation", "commit"),)] == 1
    assert broker_errors[(("operation", "publish"),)] == 1
    labels = {dict(k)["operation"] for k in [*store_errors, *broker_errors]}
    assert labels <= set(OPERATIONS) and OTHER not in labels
    assert runtime.positions and all(p in range(PARTITIONS) for p in runtime.positions)


class CountedBytes(bytes):
    """A record's value that notes each time it is turned into plain bytes: the codec does
    that once per decode (and once more to keep a dead letter's bytes). A seam in the data,
    not in the code, so it counts the compiled build's decoding too."""

    conversions: ClassVar[list[int]] = []

    def __bytes__(self) -> bytes:
        CountedBytes.conversions.append(id(self))
        return bytes(memoryview(self))


def test_each_record_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CountedBytes, "conversions", [])
    records = [r._replace(value=CountedBytes(r.value or b""))
               for r in records_for(LINES[:300], PARTITIONS)]
    p = pipeline(SharedStore(), {0, 1, 2, 3})
    step = p.process_batch(records)
    decoded = len(CountedBytes.conversions) - len(step.result.dead_letters)
    assert step.result.received == len(records) and decoded == len(records)
    assert set(CountedBytes.conversions) == {id(r.value) for r in records}


def test_dead_letters_keep_the_records_key_headers_and_bytes() -> None:
    p = pipeline(SharedStore(), {0, 1, 2, 3})
    bad = b'{"id": "x", "type": "survey.answered", "customer": "c9"}'
    home = key_partition(b"c9", PARTITIONS)
    record = Record(home, 7, b"c9", bad, (("trace-id", b"abc"), (H_REASON, b"forged")))
    step = p.process(home, [record])
    [dead] = step.messages
    assert dead.key == b"c9" and dead.value == bad
    assert dead.headers[0] == ("trace-id", b"abc")
    headers = dict(dead.headers)
    assert headers[H_REASON] == b"missing_field"          # ours, not the record's
    assert headers[H_SOURCE] == f"events/{home}/7".encode()


def test_cloudevents_record_goes_to_the_owner_of_its_customer() -> None:
    p = pipeline(SharedStore(), {0, 1, 2, 3})
    event = orjson.dumps({"specversion": "1.0", "id": "e1", "type": "survey.answered",
                          "source": "x", "time": "2026-11-02T10:00:00Z", "subject": "other",
                          "customer": "c9", "data": {"score": 5}})
    wrong = (key_partition(b"c9", PARTITIONS) + 1) % PARTITIONS
    step = p.process(wrong, [Record(wrong, 0, b"other", event)])
    [moved] = step.messages
    assert moved.partition == key_partition(b"c9", PARTITIONS) and moved.key == b"c9"


def test_worker_web_is_loopback_by_default_without_faust_internal_pages(tmp_path: Path) -> None:
    settings = load_settings(redis_url="memory", worker={"datadir": str(tmp_path)})
    assert settings.worker.web_host == "127.0.0.1"
    app = create_app(settings)
    assert app.conf.web_bind == "127.0.0.1"
    app.web.blueprints.apply(app.web)
    paths = {route.resource.canonical for route in app.web.web_app.router.routes()}
    assert {"/metrics", "/healthz", "/readyz"} <= paths
    assert not any(p.startswith(("/router", "/table", "/graph", "/stats", "/performance"))
                   for p in paths), paths
    text = generate_latest(app.valeur_runtime.metrics.registry).decode()  # type: ignore[attr-defined]
    assert "valeur_customers" in text and "valeur_consumer_lag_records" in text


def test_too_late_dead_letters_carry_the_original_record() -> None:
    p = pipeline(SharedStore(), {0, 1, 2, 3})
    home = key_partition(b"c9", PARTITIONS)

    def survey(i: int, when: str) -> bytes:   # spaced JSON: not what a re-encoding would give
        return (b'{ "id": "s%d", "type": "survey.answered", "time": "%s", "customer": "c9", '
                b'"data": { "score": 4 } }' % (i, when.encode()))

    p.process(home, [Record(home, 0, b"c9", survey(1, "2026-11-01T10:00:00Z")),
                     Record(home, 1, b"c9", survey(2, "2026-11-20T10:00:00Z"))])
    p.commit()
    old = survey(3, "2026-11-02T10:00:00Z")    # 18 days behind the customer's clock
    step = p.process(home, [Record(home, 2, b"c9", old, (("trace-id", b"t-3"),))])
    [dead] = [m for m in step.messages if m.topic == "dead"]
    headers = dict(dead.headers)
    assert headers[H_REASON] == b"too_late"
    assert dead.value == old and dead.key == b"c9" and headers["trace-id"] == b"t-3"
    assert headers[H_SOURCE] == f"events/{home}/2".encode()
