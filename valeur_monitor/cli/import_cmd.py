"""`valeur-monitor import SOURCE FILE...`: map helpdesk exports to canonical events (backfill)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from valeur_monitor.cli.common import err, print_error, refuse
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import SourceLoadError, ValeurError


def import_command(
    source: Annotated[str, typer.Argument(help="source name (zendesk, asterisk...)")],
    files: Annotated[list[str], typer.Argument(help="export files (.gz ok); '-' reads stdin")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="write canonical events as JSONL to this file")] = None,
    topic: Annotated[bool, typer.Option(
        "--topic", help="send the events to the events topic instead (Kafka, acks=all)")] = False,
    dead_letters: Annotated[str | None, typer.Option(
        help="dead letters JSONL (default: OUTPUT.dead.jsonl, or the dead-letter topic)")] = None,
    sources: Annotated[list[str] | None, typer.Option(
        "--sources", help="mapping files or directories (default: streams/sources)")] = None,
    identities: Annotated[str | None, typer.Option(
        help="identity CSV file, or 'redis' (default: the ingest.identities setting)")] = None,
    config: ConfigOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Map exports (Zendesk incremental export pages, queue_log files) to canonical events."""
    from valeur_monitor.settings import load_settings
    from valeur_monitor.sinks.files import DeadLetterWriter
    from valeur_monitor.sources.backfill import JsonlOutput, TopicOutput, map_files
    from valeur_monitor.sources.factory import load_configured_sources, open_mappers, open_resolver

    if (output is None) == (not topic):
        print_error("give exactly one of --output FILE or --topic")
        raise typer.Exit(2)
    try:
        settings = load_settings(config)
        loaded = load_configured_sources(settings, sources)
        if source not in loaded:
            raise ValeurError(f"unknown source {source!r} (known: {', '.join(sorted(loaded))})")
        mapper = open_mappers(settings, {source: loaded[source]},
                              open_resolver(settings, identities))[source]
        sink = TopicOutput(settings) if topic else JsonlOutput(Path(output or "-"))
    except SourceLoadError as exc:
        refuse("source mappings", exc.issues)
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    dead_path = dead_letters or (None if topic else f"{output}.dead.jsonl")
    dead = DeadLetterWriter(dead_path) if dead_path else None
    events = letters = payloads = ignored = 0
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), "{task.fields[events]:,} events", console=err,
                   disable=no_progress, transient=True)
    tasks: dict[str, Any] = {}
    try:
        with bar:
            for name in files:
                size = None if name == "-" else Path(name).stat().st_size
                tasks[name] = bar.add_task(name, total=size, events=events)

            def progress(name: str, consumed: int) -> None:
                bar.update(tasks[name], advance=consumed, events=events)

            for mapped in map_files(mapper, files, progress):
                sink.write(mapped.events)
                if mapped.dead_letters:
                    if dead is not None:
                        dead.write(mapped.dead_letters)
                    else:
                        sink.dead(mapped.dead_letters)
                events += len(mapped.events)
                letters += len(mapped.dead_letters)
                payloads += mapped.payloads
                ignored += mapped.ignored
            sink.close()
    except (OSError, ValeurError) as exc:
        print_error(f"after {events:,} events: {exc}")
        raise typer.Exit(1) from None
    finally:
        if dead is not None:
            dead.close()
    where = "the events topic" if topic else output
    print(f"{source}: {payloads:,} payloads -> {events:,} events, {letters:,} dead letters, "
          f"{ignored:,} ignored")
    print(f"  events: {where}")
    if letters:
        print(f"  dead letters: {dead_path or 'the dead-letter topic'}")
