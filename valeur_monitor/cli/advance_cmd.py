"""`valeur-monitor advance --until T`: drain the shared store to a stream time (end of a replay)."""

from __future__ import annotations

from typing import Annotated

import typer

from valeur_monitor.cli.common import err, rules_or_exit
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.engine.event import format_time, parse_time
from valeur_monitor.errors import ValeurError
from valeur_monitor.settings import load_settings


def advance_command(
    until: Annotated[str, typer.Option(help="RFC 3339 instant to advance stream time to")],
    config: ConfigOption = None,
    publish: Annotated[bool, typer.Option(
        help="publish the resulting score updates, alerts and dead letters to Kafka")] = True,
) -> None:
    """Advance stream time in the store to UNTIL (end of an event-clock replay).

    Promises due by then break and buffered events are applied, as at the end of `run`.
    Run it with the workers idle or stopped.
    """
    from valeur_monitor.kafka.admin import load_topology
    from valeur_monitor.kafka.produce import open_producer
    from valeur_monitor.store.factory import open_store
    from valeur_monitor.streaming.drain import drain, drain_messages, send_messages
    from valeur_monitor.streaming.outputs import OutputTopics

    try:
        target = parse_time(until)
    except ValueError as exc:
        err.print(f"[red]error:[/red] --until: {exc}")
        raise typer.Exit(2) from None
    try:
        settings = load_settings(config)
        rules = rules_or_exit(settings.rule_paths())
        topology = load_topology(settings.topology_path(), settings.topics.overrides())
        store = open_store(settings.redis_url, ledger_cap=rules.settings.ledger_cap,
                           ledger_max_age=rules.settings.ledger_max_age,
                           options=settings.redis_options())
        try:
            result = drain(rules, store, target)
        finally:
            store.close()
        sent = 0
        if publish:
            messages = drain_messages(result, OutputTopics(
                topology.name("score-updates"), topology.name("customer-alerts"),
                topology.name("dead-letters"), topology.name("ledger")))
            if messages:
                producer = open_producer(settings.kafka.client_config())
                try:
                    send_messages(producer, messages)
                finally:
                    producer.close(timeout=10)
            sent = len(messages)
    except ValeurError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    alerts = sum(1 for n in result.notices if n.kind == "alert")
    print(f"stream time {format_time(result.watermark)}: {len(result.changed)} customer(s) "
          f"advanced, {len(result.entries)} ledger entries, {alerts} alert(s), "
          f"{sent} message(s) published")
