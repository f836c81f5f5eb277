"""`valeur-monitor run FILE...`: the embedded runner over JSONL files or stdin."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from valeur_monitor.cli.common import err, print_error, rules_or_exit
from valeur_monitor.cli.report import print_report
from valeur_monitor.engine.event import parse_time
from valeur_monitor.errors import ValeurError
from valeur_monitor.read.factory import reader_of
from valeur_monitor.runner.embedded import BatchHook, EmbeddedRunner, RunReport
from valeur_monitor.runner.inputs import input_size, open_input, read_batches
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter, ScoresWriter
from valeur_monitor.store.factory import open_store

BATCH = 2000


def run_files(files: list[str], *, rules: list[str] | None = None, store_url: str = "memory",
              ledger: str | None = None, scores: str | None = None,
              dead_letters: str = "dead-letters.jsonl", until: str | None = None,
              progress: bool = True, hooks: list[BatchHook] | None = None) -> RunReport:
    """Run the embedded pipeline; returns the report (the CLI prints it)."""
    ruleset = rules_or_exit(rules)
    store = open_store(store_url, ledger_cap=ruleset.settings.ledger_cap)
    runner = EmbeddedRunner(
        ruleset, store, ledger=LedgerWriter(ledger) if ledger else None,
        dead_letters=DeadLetterWriter(dead_letters), on_batch=hooks or ())
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=err, disable=not progress, transient=True)
    with bar:
        for name in files:
            size = input_size(name)
            task = bar.add_task(name, total=size)
            with open_input(name) as stream:
                for batch in read_batches(stream, BATCH,
                                          lambda n, t=task: bar.advance(t, n)):  # type: ignore[misc]
                    runner.feed(batch)
    report = runner.finish(until=parse_time(until) if until else None)
    if scores:
        writer = ScoresWriter(scores, ruleset.version)
        reader = reader_of(store)
        everyone = sorted(c for batch in reader.batches() for c in batch)
        writer.write(v for i in range(0, len(everyone), 1000)
                     for v in reader.scores(everyone[i:i + 1000]).values())
        writer.close()
    store.close()
    return report


def run_command(
    files: Annotated[list[str], typer.Argument(help="JSONL files (.gz ok); '-' reads stdin")],
    rules: Annotated[list[str] | None,
                     typer.Option("--rules", "-r", help="rule files/dirs")] = None,
    store: Annotated[str, typer.Option(help="'memory' or redis://host:port/db")] = "memory",
    ledger: Annotated[str | None, typer.Option(help="write the ledger (.jsonl or .csv)")] = None,
    scores: Annotated[str | None, typer.Option(help="write final scores (.jsonl or .csv)")] = None,
    dead_letters: Annotated[str, typer.Option(help="where refused records go")] = (
        "dead-letters.jsonl"),
    until: Annotated[str | None, typer.Option(
        help="advance stream time to this RFC 3339 instant at the end (default: last event)")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve /metrics on this port")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Apply the rules to events from files or stdin, no server needed; print a summary."""
    hooks: list[BatchHook] = []
    if metrics_port is not None:
        from valeur_monitor.runner.observe import metrics_hook

        hooks.append(metrics_hook(metrics_port, rules_or_exit(rules)))
    try:
        report = run_files(files, rules=rules, store_url=store, ledger=ledger, scores=scores,
                           dead_letters=dead_letters, until=until, progress=not no_progress,
                           hooks=hooks)
    except (ValeurError, OSError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    print_report(report, Console(), dead_letters)
