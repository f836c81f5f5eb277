"""`valeur-monitor run FILE...`: the embedded runner over JSONL files or stdin."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.archive.files import expand_inputs
from valeur_monitor.cli.common import cli_errors, err, fail, rules_or_exit, stdout_console
from valeur_monitor.cli.report import print_report, report_dict
from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.doors import open_doors, serve_after
from valeur_monitor.runner.embedded import (
    BatchHook,
    EmbeddedRunner,
    RunReport,
    collector_paused,
)
from valeur_monitor.runner.inputs import input_size, open_input, read_batches
from valeur_monitor.runner.sharded import ShardedRunner
from valeur_monitor.settings import Settings, load_settings
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter, ScoresWriter, at_as_of
from valeur_monitor.store.base import ScoreView, Store
from valeur_monitor.store.factory import open_store

BATCH = 2000
After = Callable[[Store, RuleSet, RunReport], None]


def run_files(files: list[str], *, rules: list[str] | None = None, store_url: str = "memory",
              ledger: str | None = None, scores: str | None = None,
              dead_letters: str = "dead-letters.jsonl", until: str | None = None,
              progress: bool = True, hooks: list[BatchHook] | None = None,
              workers: int = 1, then: After | None = None,
              settings: Settings | None = None, follow: bool = False,
              pid_file: str | None = None) -> RunReport:
    """Run the embedded pipeline; returns the report (the CLI prints it).

    `then(store, rules, report)` runs after the input is drained, before the store closes
    (`run --serve` serves the final state from there; one process only).
    """
    ruleset = rules_or_exit(rules)
    if workers > 1:
        if store_url != "memory" or hooks or then or follow:
            raise ValueError("--workers runs on the memory store, without --metrics-port, "
                             "--notices, --outbox, --serve or --follow")
        return _run_sharded(files, ruleset, workers, ledger=ledger, scores=scores,
                            dead_letters=dead_letters, until=until, progress=progress)
    store = open_store(store_url, ledger_cap=ruleset.settings.ledger_cap,
                       ledger_max_age=ruleset.settings.ledger_max_age, cache=True,
                       options=settings.redis_options() if settings is not None else None)
    runner = EmbeddedRunner(
        ruleset, store, ledger=LedgerWriter(ledger) if ledger else None,
        dead_letters=DeadLetterWriter(dead_letters), on_batch=hooks or ())
    for hook in hooks or ():
        watch = getattr(hook, "watch", None)  # metrics read from the store at scrape time
        if watch is not None:
            watch(store)
    if follow:
        _follow(files, runner, rules, pid_file)
        report = runner.finish(until=parse_time(until) if until else None)
    else:
        with collector_paused():   # a run over files ends: no collections meanwhile
            _feed_files(files, runner, progress)
            report = runner.finish(until=parse_time(until) if until else None)
    state_as_of(report, ruleset)
    _write_scores(scores, runner.score_views(), ruleset, report.as_of)
    try:
        if then is not None:
            then(store, ruleset, report)
    finally:
        store.close()
    return report


def _follow(files: list[str], runner: EmbeddedRunner, rules: list[str] | None,
            pid_file: str | None) -> None:
    """Earlier files in full, then the last one followed until SIGINT/SIGTERM; SIGHUP reloads."""
    import os
    import signal
    import threading
    from pathlib import Path

    from valeur_monitor.cli.common import default_rules
    from valeur_monitor.reload import Reloader, write_pid_file
    from valeur_monitor.runner.follow import follow_file

    *first, last = files
    if last == "-" or last.endswith(".gz"):
        raise ValueError("--follow follows a plain growing file (not stdin or .gz)")
    _feed_files(first, runner, False)
    reloader = Reloader(rules or default_rules(), os.environ.get("VALEUR_RULES_LABEL"))
    reloader.install_sighup()
    if pid_file:
        write_pid_file(Path(pid_file))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"following {last} (SIGHUP reloads the rules, Ctrl-C ends)")
    follow_file(last, runner, reloader, stop, batch=BATCH)
    for switch in reloader.switches:
        err.print(f"rules reloaded {switch.old} -> {switch.new} after line {switch.positions[0]:,}")
    if reloader.failures:
        err.print(f"[red]{reloader.failures} reload(s) refused[/red]: {reloader.last_error}")


def _run_sharded(files: list[str], ruleset: RuleSet, workers: int, *, ledger: str | None,
                 scores: str | None, dead_letters: str, until: str | None,
                 progress: bool) -> RunReport:
    stop = parse_time(until) if until else None
    names = list(expand_inputs(files))   # an archive directory: its day files in order
    runner = ShardedRunner(ruleset, workers, ledger=LedgerWriter(ledger) if ledger else None,
                           dead_letters=DeadLetterWriter(dead_letters), views=bool(scores))
    sizes = [input_size(name) for name in names]
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=err, disable=not progress, transient=True)
    with bar:   # shard 0 reads every line: its bytes read are the run's progress
        task = bar.add_task(f"{len(names)} file(s), {workers} workers",
                            total=None if None in sizes else sum(s or 0 for s in sizes))
        report = runner.run(names, until=stop, progress=lambda n: bar.advance(task, n))
    state_as_of(report, ruleset)
    _write_scores(scores, runner.score_views() if scores else [], ruleset, report.as_of)
    return report


def _feed_files(files: list[str], runner: EmbeddedRunner, progress: bool) -> None:
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=err, disable=not progress, transient=True)
    with bar:
        for name in expand_inputs(files):   # an archive directory: its day files in order
            size = input_size(name)
            task = bar.add_task(name, total=size)
            with open_input(name) as stream:
                for batch in read_batches(stream, BATCH,
                                          lambda n, t=task: bar.advance(t, n)):  # type: ignore[misc]
                    runner.feed(batch)


def state_as_of(report: RunReport, rules: RuleSet) -> None:
    """Every score the run shows is seen at one instant: the run's stream time."""
    report.as_of = report.watermark
    report.worst = sorted((at_as_of(v, report.as_of, rules.settings.half_life)
                           for v in report.worst), key=lambda v: (v.total, v.customer))


def _write_scores(path: str | None, views: list[ScoreView], rules: RuleSet,
                  as_of: int) -> None:
    if path:
        writer = ScoresWriter(path, rules.version, as_of=as_of,
                              half_life=rules.settings.half_life)
        writer.write(views)
        writer.close()


def run_command(
    files: Annotated[list[str], typer.Argument(help="JSONL files (.gz ok); '-' reads stdin")],
    rules: Annotated[list[str] | None,
                     typer.Option("--rules", "-r", help="rule files/dirs")] = None,
    store: Annotated[str | None, typer.Option(
        help="'memory' or redis://host:port/db (default: VALEUR_REDIS_URL or the config "
             "file's redis_url, else memory); the password goes in VALEUR_REDIS_PASSWORD")
    ] = None,
    ledger: Annotated[str | None, typer.Option(help="write the ledger (.jsonl or .csv)")] = None,
    scores: Annotated[str | None, typer.Option(help="write final scores (.jsonl or .csv)")] = None,
    dead_letters: Annotated[str, typer.Option(help="where refused records go")] = (
        "dead-letters.jsonl"),
    until: Annotated[str | None, typer.Option(
        help="advance stream time to this RFC 3339 instant at the end (default: last event)")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve /metrics on this port")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="processes sharing out customers (memory store); same results as 1")] = 1,
    metrics_host: Annotated[str, typer.Option(
        help="address /metrics listens on (0.0.0.0: every interface)")] = "127.0.0.1",
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    notices: Annotated[str | None, typer.Option(
        help="write warnings and alerts to this JSONL file")] = None,
    outbox: Annotated[str | None, typer.Option(
        help="queue alerts and score changes for webhooks in this Redis (redis://...)")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="after the input, serve the API and pages on the final state")] = False,
    port: Annotated[int | None, typer.Option(help="port of --serve (default: api.port)")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="settings file (.toml, .yaml or .env): Redis, api, webhooks")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="print the summary as one JSON object instead of tables")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="keep reading lines appended to the last file until Ctrl-C; SIGHUP "
                         "(or `rules reload --pid-file`) reloads the rules")] = False,
    pid_file: Annotated[str | None, typer.Option(
        help="with --follow: write this process's pid here (for `rules reload`)")] = None,
) -> None:
    """Apply the rules to events from files or stdin, no server needed; print a summary."""
    hooks: list[BatchHook] = []
    if metrics_port is not None:
        from valeur_monitor.runner.observe import metrics_hook

        hooks.append(metrics_hook(metrics_port, rules_or_exit(rules), metrics_host))
    printed: list[RunReport] = []

    def show(report: RunReport) -> None:
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(report_dict(report, dead_letters),
                                                 option=orjson.OPT_INDENT_2) + b"\n")
            sys.stdout.flush()
        else:
            print_report(report, stdout_console(), dead_letters)
        printed.append(report)

    with cli_errors():
        settings = load_settings(config)
        event_catalogue.configure(settings.catalogue)   # shipped + the deployment's own types
        settings.input.apply()                          # record size/depth, future bound
        doors = open_doors(settings, notices=notices, outbox=outbox,
                           store=settings.store_url(store), serve=serve)
        then = serve_after(settings, port, show, doors.book) if serve else None
        try:
            report = run_files(files, rules=rules, store_url=settings.store_url(store),
                               ledger=ledger, scores=scores, dead_letters=dead_letters,
                               until=until, progress=not no_progress and not as_json,
                               hooks=hooks + doors.hooks, workers=workers, then=then,
                               settings=settings, follow=follow, pid_file=pid_file)
        except ValueError as exc:       # e.g. --until not RFC 3339, --workers with Redis
            fail(exc)
        finally:
            doors.close()
    if not printed:
        show(report)
