"""The faust app: a batch consumer over the events topic, one stream-time timer, three pages.

Everything the consumer loop and the timer do lives in `streaming/pipeline.py`; here is only
wiring.
Run it with ``valeur-monitor worker`` (settings from ``VALEUR_*`` / ``--config``) or with faust's
own CLI: ``faust --datadir /tmp/vm -A valeur_monitor.streaming.app worker`` (the module-level
``app`` is created on first access, from the environment).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import ssl
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.errors import BrokerError, ValeurError
from valeur_monitor.kafka.admin import load_topology
from valeur_monitor.kafka.partition import key_hash
from valeur_monitor.masking import mask
from valeur_monitor.read.accounts import RedisAccounts, account_hook
from valeur_monitor.reload import Reloader, write_pid_file
from valeur_monitor.runner.observe import metrics_for
from valeur_monitor.settings import KafkaSettings, Settings, load_settings
from valeur_monitor.store.census import census_for
from valeur_monitor.store.factory import open_store
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.streaming import heap
from valeur_monitor.streaming.clock import StreamClock
from valeur_monitor.streaming.collectors import LagCollector, StoreCollector
from valeur_monitor.streaming.consumer import install
from valeur_monitor.streaming.outputs import Message, OutputTopics
from valeur_monitor.streaming.pipeline import StreamPipeline
from valeur_monitor.streaming.runtime import WorkerRuntime

log = logging.getLogger(__name__)
EXIT_FATAL = 70
# The processing thread holds the GIL while the loop publishes the batch before and the commit
# thread sends it: each of their steps waits up to this for the GIL (Python's default: 5 ms).
SWITCH_INTERVAL = 0.001


def credentials(kafka: KafkaSettings) -> Any:
    """faust broker credentials for the security settings (None for PLAINTEXT)."""
    kafka.check()
    context = None
    if kafka.uses_ssl:
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.uses_sasl:
        assert kafka.sasl_password is not None
        return faust.SASLCredentials(username=kafka.sasl_username,
                                     password=kafka.sasl_password.get_secret_value(),
                                     mechanism=kafka.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class FaustPublisher:
    """Publishes through the app's aiokafka producer: one record batch per topic partition
    (no await per message), then waits for every acknowledgement (acks=all)."""

    def __init__(self, app: faust.App, cache_size: int = 1_000_000) -> None:
        self.app = app
        # key -> murmur2 hash: computing it in Python costs more than the rest of a send
        self._hashes: dict[bytes, int] = {}
        self._cache_size = cache_size

    async def publish(self, messages: Sequence[Message]) -> None:
        try:
            await self._publish(messages)
        except Exception as exc:  # aiokafka/faust errors: retried by the runtime
            raise BrokerError(f"publishing {len(messages)} message(s): {exc!r}") from exc

    async def _publish(self, messages: Sequence[Message]) -> None:
        producer: Any = self.app.producer
        producer = producer._ensure_producer()      # the aiokafka producer under faust's
        counts: dict[str, int] = {}
        batches: dict[tuple[str, int], Any] = {}
        sent: list[Any] = []
        hashes = self._hashes
        for m in messages:
            partition = m.partition
            if partition is None:
                count = counts.get(m.topic)
                if count is None:
                    count = counts[m.topic] = len(await producer.partitions_for(m.topic))
                # keyed: the default partitioner's choice (murmur2), so a key keeps its partition
                if m.key is None:
                    partition = random.randrange(count)
                else:
                    hashed = hashes.get(m.key)
                    if hashed is None:
                        hashed = key_hash(m.key)
                        if len(hashes) < self._cache_size:
                            hashes[m.key] = hashed
                    partition = hashed % count
            where = (m.topic, partition)
            batch = batches.get(where)
            if batch is None:
                batch = batches[where] = producer.create_batch()
            headers = list(m.headers)
            if batch.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
                if batch.record_count():            # full: send it, start another
                    sent.append(await producer.send_batch(batch, m.topic, partition=partition))
                    batch = batches[where] = producer.create_batch()
                if batch.append(key=m.key, value=m.value, timestamp=None,
                                headers=headers) is None:   # larger than a batch on its own
                    sent.append(await producer.send(m.topic, m.value, key=m.key,
                                                    partition=partition, headers=headers))
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)


def quiet_root_logger() -> None:
    """Undo faust's terminal spinner setup once the worker runs: with a log level of WARNING
    or above, faust's worker sets the root logger to DEBUG (its spinner turns on every record)
    and keeps it there, so every debug call of aiokafka, faust and mode builds a LogRecord
    (with a stack walk) that no handler writes: ≈ 2 % of a worker's CPU at 1k events/s,
    measured with py-spy. The root logger gets the level of the handlers that write again."""
    from faust.utils.terminal import SpinnerHandler

    root = logging.getLogger()
    spinners = [h for h in root.handlers if isinstance(h, SpinnerHandler)]
    levels = [h.level for h in root.handlers
              if not isinstance(h, SpinnerHandler) and h.level > logging.NOTSET]
    if spinners and levels and root.level < min(levels):
        for handler in spinners:
            root.removeHandler(handler)
        root.setLevel(min(levels))


def fatal(exc: BaseException) -> None:
    """Fail-stop: an unexpected error must not let the batch's offsets be committed."""
    if isinstance(exc, ValeurError):    # permanent and known (auth, OOM...): its one line says
        log.critical("stopping: %s", exc)   # what to do; no traceback
    else:
        log.critical("unrecoverable error, exiting so the batch is redelivered: %r", exc,
                     exc_info=exc)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_FATAL)


def create_app(settings: Settings | None = None) -> faust.App:
    """Build the worker app: rules, store and topics from `settings` (default: environment)."""
    settings = settings if settings is not None else load_settings()
    worker, kafka = settings.worker, settings.kafka
    event_catalogue.configure(settings.catalogue)  # shipped + the deployment's own types
    settings.input.apply()                          # record size/depth, future bound
    rules = load_rules(settings.rule_paths(), settings.rules_label)
    topology = load_topology(settings.topology_path(), settings.topics.overrides())
    store = open_store(settings.redis_url, ledger_cap=rules.settings.ledger_cap,
                       ledger_max_age=rules.settings.ledger_max_age,
                       options=settings.redis_options())
    worker.datadir.mkdir(parents=True, exist_ok=True)

    app = faust.App(
        worker.app_id, broker=[f"kafka://{s}" for s in kafka.servers],
        broker_credentials=credentials(kafka), broker_client_id=kafka.client_id,
        store="memory://", datadir=str(worker.datadir),
        key_serializer="raw", value_serializer="raw",
        broker_session_timeout=worker.session_timeout,
        broker_heartbeat_interval=max(1.0, worker.session_timeout / 5),
        broker_request_timeout=max(kafka.request_timeout_s, worker.session_timeout + 5),
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False, topic_disable_leader=True,
        stream_wait_empty=True, producer_acks=-1,
        producer_max_batch_size=512 * 1024,    # one record batch per partition per publish
        broker_max_poll_records=worker.batch_size,  # records per batch (one getmany)
        web_enabled=True, web_bind=worker.web_host, web_port=worker.web_port,
        # Only our pages: faust's /router and /table (and its graph, stats and /performance
        # pages) would expose internals with no authentication.
        web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False,
        web_stats_enabled=False, web_metrics_enabled=False,
    )
    events_topic = topology.name("events")
    source = app.topic(events_topic, key_serializer="raw", value_serializer="raw")
    outputs = OutputTopics(topology.name("score-updates"), topology.name("customer-alerts"),
                           topology.name("dead-letters"), topology.name("ledger"))
    metrics = metrics_for(rules, state_gauges=False)
    pipeline = StreamPipeline(rules, store, events_topic=events_topic, outputs=outputs,
                              clock=StreamClock(worker.clock, rules.settings.lateness,
                                                idle_after=int(worker.idle_after * 1000)))
    runtime = WorkerRuntime(pipeline, FaustPublisher(app), metrics)
    # Accounts named by events (`data.account`) are recorded beside the store, as `run --store
    # redis://` records them: the API's account roll-ups read them (docs/api.md "Accounts").
    # The store's client: its pool is thread-safe (the hook runs in the processing thread).
    if isinstance(store, RedisStore):
        runtime.hooks.append(account_hook(RedisAccounts(store.client, settings.api.redis_prefix)))
    # The states of owned partitions stay in memory: the cyclic GC must not walk them often
    # (≈ 13 % of a busy worker's time with the default thresholds, measured), nor pause long.
    heap.configure()
    runtime.settle_heap = heap.settle
    sys.setswitchinterval(SWITCH_INTERVAL)
    # `rules reload` / SIGHUP: the runtime switches rules between batches (valeur_monitor/reload)
    runtime.reloader = Reloader(settings.rule_paths(), settings.rules_label, metrics.registry)
    runtime.reloader.started(rules.version)
    write_pid_file(worker.datadir / "worker.pid")
    app.valeur_runtime = runtime  # type: ignore[attr-defined]  # for tests and the web pages
    metrics.registry.register(StoreCollector(
        census_for(store), rules.rule_ids(), metrics.band_edges,
        on_error=lambda exc: metrics.store_error("census")))

    def lag() -> dict[int, int]:
        return consumer_lag(app.consumer, events_topic, pipeline.clock.owned, runtime.positions)

    metrics.registry.register(LagCollector(events_topic, lag))

    def backlog(partition: int) -> bool:     # unknown (no fetch answered yet): assume one
        try:
            lags = consumer_lag(app.consumer, events_topic, (partition,), runtime.positions)
        except Exception:   # consumer not started or stopping
            return True
        return lags.get(partition, 1) > 0

    pipeline.clock.backlog = backlog

    # The hot loop: whole fetches go to the runtime (streaming/consumer.py), no faust agent.
    app.topics.add(source)
    install(app, events_topic, runtime, fetch_on_loop=worker.fetch_on_loop)

    @app.task  # type: ignore[untyped-decorator]
    async def quiet_logging() -> None:
        quiet_root_logger()     # logging is set up by now (the worker starts the app after)

    @app.task  # type: ignore[untyped-decorator]
    async def listen_for_reloads() -> None:
        reloader = runtime.reloader
        if reloader is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)

    @app.timer(worker.tick_interval)  # type: ignore[untyped-decorator]
    async def advance_stream_time() -> None:
        try:
            await runtime.tick()
        except Exception as exc:
            fatal(exc)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's signal typing
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        await runtime.revoke({tp.partition for tp in revoked if tp.topic == events_topic})

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == events_topic}
        total: int | None = app.consumer.topic_partitions(events_topic)
        if not total:
            total = await asyncio.to_thread(_partitions, kafka, events_topic)
        await runtime.assign(mine, total)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # in a thread: the store collector may read Redis
        text = await asyncio.to_thread(generate_latest, metrics.registry)
        return web.bytes(text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok, why = runtime.healthy()
        # Error texts come from libraries too: no secret may reach the page.
        return web.json({"status": "ok" if ok else "failing", "detail": mask(why)},
                        status=200 if ok else 503)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok, why = runtime.ready()
        if ok and not app.rebalancing:
            try:
                await asyncio.wait_for(asyncio.to_thread(store.watermark), timeout=2.0)
            except Exception as exc:
                ok, why = False, f"store: {exc}"
        elif ok:
            ok, why = False, "rebalancing"
        return web.json({"status": "ready" if ok else "not ready", "detail": mask(why),
                         "partitions": sorted(pipeline.clock.owned),
                         "batches": runtime.health.batches, "events": runtime.health.events,
                         "first_batch": runtime.health.first_batch,
                         "last_batch": runtime.health.last_batch,
                         # store commits (script calls) and the customer states they wrote
                         "commits": pipeline.scope.calls, "states": pipeline.scope.states,
                         "seconds": {k: round(v, 3) for k, v in runtime.health.seconds.items()},
                         **({"stages": runtime.stages.summary()} if runtime.stages else {})},
                        status=200 if ok else 503)

    return app


def consumer_lag(consumer: Any, topic: str, owned: Iterable[int],
                 positions: Mapping[int, int]) -> dict[int, int]:
    """Per owned partition: high watermark minus the next offset to process (the position
    after the last committed batch, else the consumer's fetch position)."""
    from aiokafka import TopicPartition

    out: dict[int, int] = {}
    for partition in owned:
        state = consumer.partition_state(TopicPartition(topic, partition))
        high = getattr(state, "highwater", None)
        position = positions.get(partition, getattr(state, "position", None))
        if high is not None and position is not None:
            out[partition] = max(0, high - position)
    return out


def _partitions(kafka: KafkaSettings, topic: str) -> int:
    from valeur_monitor.kafka.admin import open_admin, partition_count

    admin = open_admin(kafka.client_config())
    try:
        count = partition_count(admin, topic)
    finally:
        admin.close()
    if not count:
        raise BrokerError(f"topic {topic} does not exist: run `valeur-monitor topics apply`")
    return count


def __getattr__(name: str) -> Any:
    """``app`` for ``faust -A valeur_monitor.streaming.app``, created on first access."""
    if name == "app":
        created = create_app()
        globals()["app"] = created
        return created
    raise AttributeError(name)
