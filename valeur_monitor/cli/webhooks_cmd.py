"""`valeur-monitor webhooks send|feed|dead`: deliver the outbox, fill it from Kafka, inspect."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from valeur_monitor.cli.common import print_error
from valeur_monitor.errors import ValeurError
from valeur_monitor.settings import Settings, load_settings

webhooks_app = typer.Typer(no_args_is_help=True, help="Signed webhooks from the Redis outbox.")
Config = Annotated[str | None, typer.Option(help="settings file (TOML, YAML or .env)")]


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _outbox(settings: Settings) -> Any:
    from valeur_monitor.webhooks.outbox import Outbox

    wh = settings.webhooks
    return Outbox.from_url(settings.redis_url, settings.redis_options(), prefix=wh.redis_prefix,
                           maxlen=wh.outbox_maxlen)


@webhooks_app.command("send")
def send_command(config: Config = None,
                 metrics_port: Annotated[int | None, typer.Option(
                     help="serve /metrics on this port")] = None) -> None:
    """Deliver the outbox to every configured endpoint until interrupted."""
    from prometheus_client import REGISTRY, start_http_server

    from valeur_monitor.webhooks.sender import Sender, WebhookMetrics

    try:
        settings = load_settings(config)
        if not settings.webhooks.endpoints:
            raise ValeurError("no webhooks.endpoints configured")
        metrics = WebhookMetrics(REGISTRY)
        if metrics_port is not None:
            start_http_server(metrics_port, addr="127.0.0.1")
        stop = _stop_on_signals()
        threads = []
        for endpoint in settings.webhooks.endpoints:
            sender = Sender(_outbox(settings), endpoint, settings.webhooks, metrics)
            thread = threading.Thread(target=sender.run, args=(stop,), name=endpoint.name)
            thread.start()
            threads.append(thread)
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


@webhooks_app.command("feed")
def feed_command(config: Config = None,
                 group: Annotated[str, typer.Option(help="Kafka consumer group")] = (
                     "valeur-monitor-webhooks")) -> None:
    """Fill the outbox from the customer-alerts and score-updates topics until interrupted."""
    from kafka import KafkaConsumer

    from valeur_monitor.kafka.admin import load_topology
    from valeur_monitor.webhooks.changes import ScoreChanges
    from valeur_monitor.webhooks.feed import feed_from_kafka

    try:
        settings = load_settings(config)
        topology = load_topology(settings.topology_path(), settings.topics.overrides())
        alerts, scores = topology.name("customer-alerts"), topology.name("score-updates")
        consumer = KafkaConsumer(alerts, scores, group_id=group, enable_auto_commit=False,
                                 auto_offset_reset="earliest",
                                 **settings.kafka.client_config())
        outbox = _outbox(settings)
        wh = settings.webhooks
        changes = ScoreChanges(outbox, delta=wh.score_delta, debounce_s=wh.debounce_s)
        try:
            feed_from_kafka(consumer, outbox, changes, alerts_topic=alerts, scores_topic=scores,
                            stop=_stop_on_signals())
        finally:
            consumer.close()
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


@webhooks_app.command("dead")
def dead_command(config: Config = None,
                 limit: Annotated[int, typer.Option(help="how many")] = 50) -> None:
    """List dead-lettered webhook messages (endpoint, reason, attempts, id, type)."""
    try:
        rows = _outbox(load_settings(config)).dead(limit)
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    for row in rows:
        typer.echo(f"{row['endpoint']}\t{row['attempts']}\t{row['reason']}\t{row['id']}\t"
                   f"{row['type']}")
