"""`valeur-monitor archive --dir DIR`: keep every event of the events topic in daily files."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from valeur_monitor.cli.common import err, print_error
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import ValeurError


def archive_command(
    folder: Annotated[Path, typer.Option("--dir", help="archive directory")],
    config: ConfigOption = None,
    topic: Annotated[str | None, typer.Option(
        help="topic to archive (default: the events topic of the settings/topology)")] = None,
    keep_days: Annotated[int, typer.Option(
        help="delete days older than this many days before the newest (0: keep all)")] = 0,
    seal_after: Annotated[float, typer.Option(
        help="hours after a day's end (in event time) before it is sealed (sorted)")] = 1.0,
    until_idle: Annotated[float | None, typer.Option(
        help="exit after this many seconds with nothing new, sealing every day")] = None,
) -> None:
    """Archive the events topic into daily gzip JSONL files, by event date.

    A sidecar of the Kafka offsets each file covers makes it restart-safe."""
    from kafka.errors import KafkaError

    from valeur_monitor.archive.consumer import Archiver, open_consumer
    from valeur_monitor.kafka.admin import load_topology
    from valeur_monitor.settings import load_settings

    try:
        settings = load_settings(config)
        target = topic or load_topology(settings.topology_path(),
                                        settings.topics.overrides()).name("events")
        consumer = open_consumer(settings.kafka.client_config())
    except (ValeurError, KafkaError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    archiver = Archiver(folder, target, consumer, seal_after_ms=int(seal_after * 3_600_000),
                        keep_days=keep_days)
    try:
        archiver.start()
        report = archiver.run(stop, until_idle=until_idle)
    except (ValeurError, KafkaError, OSError, RuntimeError) as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    finally:
        consumer.close()
    err.print(f"archived {report.archived:,} records ({report.skipped:,} already archived), "
              f"sealed {report.sealed} day(s), expired {report.expired} file(s) in {folder}")
