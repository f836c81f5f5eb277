"""`valeur-monitor produce FILE...`: replay JSONL events into the events topic (kafka-python)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from valeur_monitor.cli.common import err
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import ValeurError


def produce_command(
    files: Annotated[list[str], typer.Argument(help="JSONL files (.gz ok); '-' reads stdin")],
    rate: Annotated[float | None, typer.Option(
        help="at most this many records per second (default: as fast as possible)")] = None,
    topic: Annotated[str | None, typer.Option(
        help="target topic (default: the events topic of the settings/topology)")] = None,
    config: ConfigOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Replay JSONL events into the events topic, keyed by customer id.

    Every line is sent as is, bad lines too, so the workers dead-letter them with their reason.
    """
    from kafka.errors import KafkaError

    from valeur_monitor.kafka.admin import load_topology
    from valeur_monitor.kafka.produce import ProduceReport, finish, open_producer, produce_lines
    from valeur_monitor.runner.inputs import input_size, open_input, read_batches
    from valeur_monitor.settings import load_settings

    if rate is not None and rate <= 0:
        err.print("[red]error:[/red] --rate must be positive")
        raise typer.Exit(2)
    try:
        settings = load_settings(config)
        target = topic or load_topology(settings.topology_path(),
                                        settings.topics.overrides()).name("events")
        producer = open_producer(settings.kafka.client_config())
    except ValeurError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    report = ProduceReport()
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), "{task.fields[sent]:,} records", console=err,
                   disable=no_progress, transient=True)
    try:
        with bar:
            for name in files:
                task = bar.add_task(name, total=input_size(name), sent=report.sent)
                with open_input(name) as stream:
                    for batch in read_batches(stream, 1000,
                                              lambda n, t=task: bar.advance(t, n)):  # type: ignore[misc]
                        produce_lines(producer, target, batch, rate=rate, report=report)
                        bar.update(task, sent=report.sent)
            finish(producer, report)
    except (OSError, KafkaError) as exc:
        err.print(f"[red]error:[/red] after {report.sent:,} records: {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        finish(producer, report)
        err.print(f"interrupted after {report.sent:,} records (flushed)")
        raise typer.Exit(130) from None
    print(f"sent {report.sent:,} records ({report.keyed:,} keyed by customer, "
          f"{report.unkeyed:,} without key) to {target} in {report.seconds:.1f} s "
          f"({report.rate:,.0f}/s), {report.bytes:,} bytes; {report.failed:,} failed")
    if report.failed:
        for error in report.errors:
            err.print(f"  {error}", markup=False)
        raise typer.Exit(1)
